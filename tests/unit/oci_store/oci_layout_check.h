// The one checker of the invariant "this directory is a valid OCI image layout" (image-spec
// image-layout.md, annotations.md), run against every producer of layouts: the content store's
// root, extracted oci-archives we write, and layouts written by podman and skopeo. It reads the
// files with nlohmann and OpenSSL only, independently of the libs/oci code it checks.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace stowage::oci::testing {

struct LayoutCheckOptions {
  // Every blob that index.json reaches must be present. The spec lets blobs be missing; a store
  // and an archive of whole images must not.
  bool require_complete = true;
};

// What is wrong with the layout at `dir`, one line per problem; empty when it is valid.
std::vector<std::string> oci_layout_problems(const std::filesystem::path& dir,
                                             const LayoutCheckOptions& options = {});

}  // namespace stowage::oci::testing
