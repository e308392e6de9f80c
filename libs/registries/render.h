// Renders a validated Config as files a node reads: the v2 drop-in 99-stowage.conf (the cluster
// format), a full v2 registries.conf, the legacy v1 format for old hosts, or containerd's
// certs.d/<host>/hosts.toml. Deterministic: the same Config gives the same bytes and hash. Pure.
#pragma once

#include <string>
#include <vector>

#include "registries/conf.h"

namespace stowage::registries {

enum class RenderFormat { kV2DropIn, kV2Full, kV1, kContainerd };

// Parses "v2", "v2-full", "v1", "containerd".
RenderFormat parse_render_format(const std::string& text);

inline constexpr const char* kDropInFileName = "99-stowage.conf";

struct RenderedFile {
  std::string path;  // relative: "99-stowage.conf", "registries.conf", "<host>/hosts.toml"
  std::string content;
  bool operator==(const RenderedFile&) const = default;
};

struct Rendering {
  std::vector<RenderedFile> files;    // sorted by path
  std::vector<std::string> warnings;  // what the format cannot express, deprecations
  std::string hash;                   // sha256 hex over paths and contents
};

Rendering render(const Config& config, RenderFormat format);

// The individual renderers. render_v1 throws InvalidArgument naming the first setting v1 cannot
// express.
std::string render_v2(const Config& config, bool full_file);
std::string render_v1(const Config& config);
std::vector<RenderedFile> render_containerd(const Config& config,
                                            std::vector<std::string>& warnings);

// A TOML basic string literal with escapes.
std::string toml_quote(const std::string& s);

}  // namespace stowage::registries
