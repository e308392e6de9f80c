// images, pull and rmi against a node's CRI runtime (--cri-endpoint) instead of the local store:
// list what the runtime holds and what uses it, pull through CRI PullImage with the auth.json
// credentials stowctl uses for registry pulls, and remove images with the agent's protection
// (never one used by a container, running or exited, pinned, or the sandbox image) unless
// --force, which says what it overrides.
#pragma once

#include <string>
#include <vector>

#include "common.h"

namespace stowctl {

struct CriImagesOptions {
  bool quiet = false;
  bool no_trunc = false;
  bool digests = false;
  std::string format = "table";
};
int run_cri_images(const GlobalOptions& g, const CriImagesOptions& o);

// Prints the image ID and the repo digests the runtime reports for the pulled image.
int run_cri_pull(const GlobalOptions& g, const std::string& ref, bool quiet);

struct CriRmiOptions {
  std::vector<std::string> refs;
  bool all = false;
  bool force = false;
};
int run_cri_rmi(const GlobalOptions& g, const CriRmiOptions& o);

// Throws Error(kInvalidArgument) when --cri-endpoint is given to a command other than images,
// pull and rmi, or --sandbox-image without --cri-endpoint.
void check_cri_command(const GlobalOptions& g, const std::string& command);

}  // namespace stowctl
