// Container image references ("quay.io/team/app:v1", "ubuntu@sha256:...") with the grammar and the
// Docker Hub normalization of distribution/reference. Users' input goes through
// Reference::parse_normalized(); names that are already canonical (from a registry, a CRD status)
// through Reference::parse(). Digest validates "algorithm:encoded" for every library that handles
// content digests. Pure value types and functions: no I/O, safe to use from any thread.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace stowage {

inline constexpr std::string_view kDefaultDomain = "docker.io";
inline constexpr std::string_view kLegacyDefaultDomain = "index.docker.io";
inline constexpr std::string_view kOfficialRepoPrefix = "library/";
inline constexpr std::string_view kDefaultTag = "latest";
// distribution/reference counts only the path (since v0.6.0); the domain is not counted.
inline constexpr std::size_t kPathMaxLength = 255;
inline constexpr std::size_t kTagMaxLength = 128;

// A content digest "algorithm:encoded". Registered algorithms are checked strictly (sha256 and
// blake3: 64 lowercase hex, sha512: 128); other well-formed algorithms pass, as image-spec asks.
struct Digest {
  std::string algorithm;
  std::string encoded;

  // Throws stowage::Error(kInvalidArgument) naming the input when it is not a valid digest.
  static Digest parse(std::string_view text);
  static bool is_valid(std::string_view text) noexcept;

  std::string string() const { return algorithm + ":" + encoded; }

  friend bool operator==(const Digest&, const Digest&) = default;
};

// name [":" tag] ["@" digest], name being [domain "/"] path. An empty domain means the reference
// names no registry (a short name); parse_normalized() never leaves it empty.
struct Reference {
  std::string domain;
  std::string path;
  std::optional<std::string> tag;
  std::optional<std::string> digest;

  // The input exactly as given, validated but not normalized: "ubuntu" has no domain, and
  // string() gives back the input. Throws stowage::Error(kInvalidArgument) when invalid.
  static Reference parse(std::string_view text);

  // Docker-style: no domain → docker.io, index.docker.io → docker.io, a single-component Docker Hub
  // path gets "library/". Adds no tag (see with_default_tag()). Refuses a bare 64-hex name.
  static Reference parse_normalized(std::string_view text);

  // domain "/" path, or just path when there is no domain.
  std::string name() const;
  // name [":" tag] ["@" digest].
  std::string string() const;
  // The short form docker prints: on docker.io, drops the domain and a "library/" before a single
  // component ("docker.io/library/ubuntu:22.04" → "ubuntu:22.04"), except where the shorter string
  // would normalize to another image (path starting with a host-like component, or a 64-hex name).
  std::string familiar() const;
  // A copy tagged "latest" when it has neither tag nor digest (distribution's TagNameOnly).
  Reference with_default_tag() const;

  friend bool operator==(const Reference&, const Reference&) = default;
};

// The registry part of a reference as docker decides it, as views into `text`: the first
// "/"-separated component when it is "localhost", contains "." or ":", or has uppercase letters;
// otherwise no domain (empty) and the whole input is the remainder. Does not validate.
struct DomainSplit {
  std::string_view domain;
  std::string_view remainder;
};
DomainSplit split_domain(std::string_view text);

// True when `text` names no registry (podman's "short name"), e.g. "ubuntu",
// "library/ubuntu:22.04"; false for "docker.io/ubuntu", "localhost/app". Does not validate.
bool is_short_name(std::string_view text);

}  // namespace stowage
