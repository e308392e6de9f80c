#include "cri/image_use.h"

#include <algorithm>

namespace stowage::cri {

bool names_image(const Image& image, std::string_view value) {
  if (value.empty()) return false;
  const auto in = [&](const std::vector<std::string>& list) {
    return std::find(list.begin(), list.end(), value) != list.end();
  };
  return image.id == value || in(image.repo_digests) || in(image.repo_tags);
}

bool container_uses(const Container& container, const Image& image) {
  return names_image(image, container.image) || names_image(image, container.image_ref) ||
         names_image(image, container.image_id);
}

ImageUse image_use(const Image& image, const std::vector<Container>& containers,
                   const std::vector<std::string>& sandbox_images) {
  ImageUse use;
  use.pinned = image.pinned;
  use.sandbox_image = std::any_of(sandbox_images.begin(), sandbox_images.end(),
                                  [&](const std::string& s) { return names_image(image, s); });
  for (const auto& c : containers) {
    if (container_uses(c, image)) use.containers.push_back(c);
  }
  return use;
}

std::string describe_container(const Container& container) {
  std::string out = "container " + container.id + " (";
  out += container.name.empty() ? std::string("unnamed") : container.name;
  out += ", ";
  out += container_state_name(container.state);
  out += ")";
  return out;
}

std::vector<std::string> protections(const ImageUse& use) {
  std::vector<std::string> out;
  if (use.pinned) out.emplace_back("pinned by the runtime");
  if (use.sandbox_image) out.emplace_back("the sandbox (pause) image");
  for (const auto& c : use.containers) out.push_back("used by " + describe_container(c));
  return out;
}

}  // namespace stowage::cri
