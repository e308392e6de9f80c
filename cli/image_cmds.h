// The local-store image commands of stowctl: images, inspect, tag, rmi, save, load, prune, diff
// and fsck. They work on the store under --root and need no network.
#pragma once

#include <CLI/CLI.hpp>

#include "common.h"

namespace stowctl {

// Adds the commands to `app`; each runs from its callback and stores its exit code in
// `*exit_code`. `globals` must outlive the parse.
void add_image_commands(CLI::App& app, const GlobalOptions& globals, int* exit_code);

}  // namespace stowctl
