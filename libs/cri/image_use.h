// Which containers use an image of a node's runtime, and whether the image may be removed: never
// one used by any container (running or exited), never one the runtime pins, never the sandbox
// (pause) image. The rule the agent's prune and `stowctl --cri-endpoint ... rmi` share.
//   const cri::ImageUse use = cri::image_use(image, client.list_containers(),
//   {"r.test/pause:3.9"}); if (!use.removable()) std::cerr << cri::describe_protections(use) <<
//   "\n";
// Pure functions of what ListImages and ListContainers returned; no I/O.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "cri/types.h"

namespace stowage::cri {

// Whether `value` names `image`: its ID, one of its repo digests or one of its repo tags. An
// empty value names nothing.
bool names_image(const Image& image, std::string_view value);

// Whether `container` uses `image`. containerd 1.6 leaves Container::image_id empty and puts the
// image ID in image_ref; other runtimes put a repo digest there; `image` is whatever the pod spec
// said (a tag, a digest reference or an ID). Any of the three naming the image counts.
bool container_uses(const Container& container, const Image& image);

// Why the runtime's `image` must stay.
struct ImageUse {
  std::vector<Container> containers;  // every container using it, in the order listed
  bool pinned = false;                // the runtime marks it pinned (Image::pinned)
  bool sandbox_image = false;         // it is one of the sandbox (pause) images given

  bool in_use() const { return !containers.empty(); }
  bool removable() const { return !pinned && !sandbox_image && containers.empty(); }
};

// The use of `image` among `containers` (every state), given the references, digests or IDs of
// the runtime's sandbox images in `sandbox_images` (compared exactly with the image's tags,
// digests and ID, so pass normalized references: "registry.k8s.io/pause:3.9").
ImageUse image_use(const Image& image, const std::vector<Container>& containers,
                   const std::vector<std::string>& sandbox_images);

// "container 3f2a... (web, running)": the container's ID, name and state.
std::string describe_container(const Container& container);

// One phrase per reason `use` protects its image, in the order pinned, sandbox image,
// containers: "pinned by the runtime", "the sandbox (pause) image", "used by container 3f2a...
// (web, running)". Empty when the image is removable.
std::vector<std::string> protections(const ImageUse& use);

}  // namespace stowage::cri
