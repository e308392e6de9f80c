// `stowctl registries render|validate`: the registries.conf engine by hand. Renders
// RegistryConfig resources to registries.conf (v2 drop-in or full, v1) or containerd hosts.toml,
// and validates registries.conf files, drop-in directories and RegistryConfig YAML.
#pragma once

#include <CLI/CLI.hpp>

namespace stowctl {

// Adds the `registries` subcommand tree to `app`; the chosen command runs from its callback and
// stores its exit code in `*exit_code`.
void add_registries_command(CLI::App& app, int* exit_code);

}  // namespace stowctl
