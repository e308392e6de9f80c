// The containers registries.conf model (v2, and the legacy v1 format): parse from TOML, validate
// with containers/image's rules and its exact error texts, merge drop-in directories, and match a
// reference to its [[registry]] table. Pure except load_file()/load_config(), which read files.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace stowage::registries {

struct Mirror {
  std::string location;
  bool insecure = false;
  std::string pull_from_mirror;  // "", "all", "digest-only", "tag-only"
  bool operator==(const Mirror&) const = default;
};

struct Registry {
  std::string prefix;  // defaults to location after validation
  std::string location;
  bool insecure = false;
  bool blocked = false;
  bool mirror_by_digest_only = false;
  std::string pull_from_mirror;  // only to report the error: not allowed on a registry
  std::vector<Mirror> mirrors;
  bool operator==(const Registry&) const = default;
};

// One v2 file (or the merged result). Optional globals record whether a file set the key, which
// matters when drop-ins merge: a present key replaces, an absent one keeps the earlier value.
struct Config {
  std::optional<std::vector<std::string>> unqualified_search_registries;
  std::optional<std::vector<std::string>> credential_helpers;
  std::optional<std::string> short_name_mode;  // "enforcing" | "permissive" | "disabled"
  std::string additional_layer_store_auth_helper;
  std::vector<Registry> registries;
  // Ordered by key; an empty value erases an alias set by an earlier file.
  std::map<std::string, std::string> aliases;
  bool operator==(const Config&) const = default;
};

// The legacy v1 tables; nullopt when the key is absent (an empty array is "present").
struct V1Config {
  std::optional<std::vector<std::string>> search;
  std::optional<std::vector<std::string>> insecure;
  std::optional<std::vector<std::string>> block;
  bool present() const { return search || insecure || block; }
  bool nonempty() const;  // podman 4.3's test: some list has an entry
};

// A file as decoded, before validation.
struct ParsedFile {
  Config v2;
  V1Config v1;
  bool v2_present = false;                // any v2 key was set (even to an empty list)
  bool v2_nonempty = false;               // podman 4.3's test: a v2 list has entries
  std::vector<std::string> unknown_keys;  // dotted paths, for warnings
};

// Decodes TOML text. Throws InvalidArgument on TOML syntax or type errors.
ParsedFile parse_toml(std::string_view text, std::string_view source_name = "registries.conf");

enum class FileRole { kMain, kDropIn };

// Validates and normalizes one decoded file the way containers/image does (post-processing:
// prefixes default to locations, trailing '/' trimmed, duplicate prefixes dropped, sorted by
// prefix), plus the stricter rules newer versions enforce. v1 content is converted to v2 (main
// file only). Throws InvalidArgument with containers/image's message text, unwrapped.
Config validate(ParsedFile file, FileRole role, std::vector<std::string>* warnings = nullptr);

// parse_toml + validate, with the message wrapped as containers/image wraps it:
// `loading registries configuration "<name>": ...` or `loading drop-in registries ...`.
Config load_text(std::string_view text, std::string_view name, FileRole role,
                 std::vector<std::string>* warnings = nullptr);

// Reads and loads one file.
Config load_file(const std::filesystem::path& path, FileRole role,
                 std::vector<std::string>* warnings = nullptr);

// Merges a later file over an earlier one (containers-registries.conf.d(5)): [[registry]]
// replaced per prefix as a whole table, search list / credential helpers replaced when present,
// short-name mode replaced when set, aliases merged per key (an empty value erases).
void merge_into(Config& base, const Config& later);

// Loads a main file (may be absent when `main_must_exist` is false) and then every *.conf
// regular file of `dropin_dir` in lexical order, merged. Either path may be empty.
Config load_config(const std::filesystem::path& main_file, const std::filesystem::path& dropin_dir,
                   bool main_must_exist, std::vector<std::string>* warnings = nullptr);

// load_config with the drop-in `dropin_name` (a file name ending in .conf) of `dropin_dir` taken
// as `dropin_text` instead of from disk, whether or not that file exists: what containers/image
// would load once that drop-in is written. Errors name the drop-in's path as load_config does.
Config load_config_with_dropin(const std::filesystem::path& main_file,
                               const std::filesystem::path& dropin_dir, bool main_must_exist,
                               std::string_view dropin_name, std::string_view dropin_text,
                               std::vector<std::string>* warnings = nullptr);

// The [[registry]] table whose prefix is the longest match for `ref` (a fully qualified name or
// reference string), or nullptr.
const Registry* find_registry(const Config& config, std::string_view ref);

// containers/image prefix matching, non-wildcard and `*.host` forms.
bool ref_matches_prefix(std::string_view ref, std::string_view prefix);

// The effective short-name mode ("permissive" when unset).
std::string effective_short_name_mode(const Config& config);

// The "registries" object of `podman info --format json` for this config, as Go encodes it
// (registry tables keyed by prefix, plus "search" when non-empty), as JSON text.
std::string podman_info_registries_json(const Config& config);

}  // namespace stowage::registries
