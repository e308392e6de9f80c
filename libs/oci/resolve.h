// Image name resolution with registries.conf semantics, as containers/image does it: user input →
// fully qualified candidates (pkg/shortnames Resolve: aliases, unqualified-search registries,
// short-name modes), and a candidate → the endpoints to pull it from (sysregistriesv2
// PullSourcesFromReference: allowed mirrors in order, then the primary location, each with the
// rewritten reference). Error texts are containers/image's. Pure functions; no prompting, no I/O.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "reference/reference.h"
#include "registries/conf.h"

namespace stowage::oci {

enum class ShortNameMode { kDisabled, kPermissive, kEnforcing };

// "disabled" | "permissive" | "enforcing"; else InvalidArgument `invalid short-name mode: "<v>"`.
ShortNameMode parse_short_name_mode(std::string_view text);

// Where the configuration came from, for messages (containers/image names its files).
struct ConfigOrigin {
  std::string conf_path = "/etc/containers/registries.conf";
  std::string conf_dir = "/etc/containers/registries.conf.d";
  // The file that set unqualified-search-registries; empty when no configuration file was found.
  std::string search_registries_origin = "/etc/containers/registries.conf";
  // The file that defined the aliases, for Description().
  std::string aliases_origin = "/etc/containers/registries.conf";
};

struct ResolveOptions {
  // Overrides the configuration's short-name-mode (CRI-O's short_name_mode does).
  std::optional<ShortNameMode> mode;
  // Whether stdin and stdout are terminals, so that an ambiguous short name can be prompted for.
  bool tty = false;
  ConfigOrigin origin;
};

enum class Rationale { kFullyQualified, kAlias, kSearchRegistries };

struct ResolvedName {
  // Fully qualified, docker.io-normalized, tagged "latest" when the input had no tag or digest.
  std::vector<Reference> candidates;
  Rationale rationale = Rationale::kFullyQualified;
  // A TTY and several candidates outside "disabled" mode: the caller prompts for one of them.
  bool needs_selection = false;
  // containers/image's Resolved.Description(), "" when there is nothing to say.
  std::string description;
};

// Resolves user input. Fully qualified names are used as they are (docker.io/alpine →
// docker.io/library/alpine). For a short name (no registry: "fedora", "library/fedora:39",
// "app@sha256:…") an alias always wins, with the input's tag/digest carried over; otherwise one
// candidate per unqualified-search registry, in order. Then the mode: disabled → all candidates;
// one candidate → no ambiguity; no TTY: permissive → all, enforcing → InvalidArgument
// `short-name resolution enforced but cannot prompt without a TTY`. Also InvalidArgument for bad
// input and for `short-name "<in>" did not resolve to an alias and no unqualified-search
// registries are defined in "<origin>"`.
ResolvedName resolve_image_name(std::string_view input, const registries::Config& config,
                                const ResolveOptions& options = {});

struct PullSource {
  Reference reference;   // what to ask this endpoint for
  std::string location;  // the endpoint as configured (the registry itself when unconfigured)
  bool insecure = false;
  bool mirror = false;  // false for the primary location
  bool operator==(const PullSource&) const = default;
};

// Where to pull a fully qualified `ref` from, in order: the mirrors allowed for its kind (a
// reference with a digest vs a tag only: `mirror-by-digest-only` on the registry, else each
// mirror's `pull-from-mirror` all/digest-only/tag-only), then the primary location. Each
// reference is rewritten as `location + ref[len(prefix):]`; a `*.host` prefix matches the host
// part, and with an empty location the reference is kept as is. The table is the longest matching
// prefix of ref's name (registries::find_registry); no table → ref itself. Throws
// PermissionDenied `registry <prefix> is blocked in <conf> or <conf.d>` (containers/image
// docker_client.go), InvalidArgument for a short name or `rewriting reference: …`.
std::vector<PullSource> pull_sources(const Reference& ref, const registries::Config& config,
                                     const ConfigOrigin& origin = {});

// Go's %q for the ASCII inputs these messages quote: "..." with \" \\ \n \t \r \xNN escapes.
std::string go_quote(std::string_view s);

}  // namespace stowage::oci
