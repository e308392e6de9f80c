// The registry commands of stowctl: pull, push, login, logout and search. They honour the
// registries configuration (search registries, aliases, short-name mode, insecure, blocked,
// mirrors), the containers auth files and certs.d, like podman.
#pragma once

#include <CLI/CLI.hpp>

#include "common.h"

namespace stowctl {

// Adds the commands to `app`; each runs from its callback and stores its exit code in
// `*exit_code`. `globals` must outlive the parse.
void add_remote_commands(CLI::App& app, const GlobalOptions& globals, int* exit_code);

}  // namespace stowctl
