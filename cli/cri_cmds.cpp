#include "cri_cmds.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "base/error.h"
#include "cri/client.h"
#include "cri/image_use.h"
#include "reference/reference.h"

namespace stowctl {
namespace {

namespace cri = stowage::cri;
using nlohmann::json;
using stowage::Code;
using stowage::Error;

// Repositories whose images are the runtimes' default sandbox images.
constexpr const char* kDefaultSandboxRepositories[] = {"registry.k8s.io/pause", "k8s.gcr.io/pause"};

cri::Client connect(const GlobalOptions& g) {
  return cri::Client(cri::ClientOptions{.endpoint = g.cri_endpoint,
                                        .timeout = std::chrono::seconds(30),
                                        // The runtime cancels a pull that stalls (containerd: 5
                                        // minutes); this bounds one that crawls.
                                        .pull_timeout = std::chrono::hours(1),
                                        .max_receive_message_bytes = 64 * 1024 * 1024});
}

std::string strip_sha256(const std::string& id) {
  return id.starts_with("sha256:") ? id.substr(7) : id;
}

std::string shown_id(const std::string& id, bool no_trunc) {
  return no_trunc ? id : strip_sha256(id).substr(0, 12);
}

// The repository part of "repo:tag" or "repo@digest".
std::string repository_of(const std::string& name) {
  if (const auto at = name.find('@'); at != std::string::npos) return name.substr(0, at);
  return split_name(name).first;
}

// A user's reference as runtimes list it: "alpine" → "docker.io/library/alpine:latest"; nullopt
// when it is not a reference (an ID, say).
std::optional<std::string> normalized(const std::string& ref) {
  try {
    stowage::Reference r = stowage::Reference::parse_normalized(ref);
    if (r.digest) r.tag.reset();  // runtimes list "name@digest" among repo digests
    return r.with_default_tag().string();
  } catch (const Error&) {
    return std::nullopt;
  }
}

// What rmi and images protect as sandbox images: --sandbox-image (normalized), else every tag of
// the default sandbox repositories the runtime holds.
std::vector<std::string> sandbox_images(const GlobalOptions& g,
                                        const std::vector<cri::Image>& images) {
  std::vector<std::string> out;
  for (const auto& s : g.sandbox_images) {
    if (looks_like_id(s)) {
      out.push_back(s.starts_with("sha256:") ? s : "sha256:" + s);
    } else if (auto n = normalized(s)) {
      out.push_back(*n);
    } else {
      throw Error(Code::kInvalidArgument,
                  fmt::format("--sandbox-image {}: not an image reference or ID", s));
    }
  }
  if (!g.sandbox_images.empty()) return out;
  for (const auto& image : images) {
    for (const auto& tag : image.repo_tags) {
      const std::string repo = repository_of(tag);
      for (const char* known : kDefaultSandboxRepositories) {
        if (repo == known) out.push_back(tag);
      }
    }
  }
  return out;
}

// The image `ref` names: its ID (full or a prefix of at least 3 hex digits, "sha256:" optional),
// a repo tag or repo digest as given or normalized, or a bare manifest digest. Throws
// Error(kNotFound) naming `ref`, Error(kInvalidArgument) when it is ambiguous.
const cri::Image& resolve(const std::vector<cri::Image>& images, const std::string& ref) {
  if (ref.empty()) throw Error(Code::kInvalidArgument, "an image name or ID is required");
  for (const auto& image : images) {
    if (cri::names_image(image, ref)) return image;
  }
  if (const auto n = normalized(ref)) {
    for (const auto& image : images) {
      if (cri::names_image(image, *n)) return image;
    }
  }
  std::vector<const cri::Image*> found;
  if (looks_like_id(ref)) {
    const std::string hex = strip_sha256(ref);
    for (const auto& image : images) {
      bool match = strip_sha256(image.id).starts_with(hex);
      // A full manifest digest: any repository's repo digest.
      for (const auto& d : image.repo_digests) {
        const auto at = d.find('@');
        if (hex.size() == 64 && at != std::string::npos && strip_sha256(d.substr(at + 1)) == hex) {
          match = true;
        }
      }
      if (match) found.push_back(&image);
    }
  }
  if (found.size() == 1) return *found.front();
  if (found.size() > 1) {
    throw Error(Code::kInvalidArgument,
                fmt::format("{}: ambiguous image ID prefix: {} images match", ref, found.size()));
  }
  throw Error(Code::kNotFound, fmt::format("{}: image not known to the runtime", ref));
}

std::string join(const std::vector<std::string>& items, std::string_view sep) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += sep;
    out += item;
  }
  return out;
}

// The IN USE column: "-", or "pinned", "sandbox", "N container(s)" joined by ",".
std::string use_column(const cri::ImageUse& use) {
  std::vector<std::string> parts;
  if (use.pinned) parts.emplace_back("pinned");
  if (use.sandbox_image) parts.emplace_back("sandbox");
  if (use.in_use()) {
    parts.push_back(fmt::format("{} container{}", use.containers.size(),
                                use.containers.size() == 1 ? "" : "s"));
  }
  return parts.empty() ? "-" : join(parts, ",");
}

}  // namespace

void check_cri_command(const GlobalOptions& g, const std::string& command) {
  if (g.cri_endpoint.empty()) {
    if (!g.sandbox_images.empty()) {
      throw Error(Code::kInvalidArgument, "--sandbox-image needs --cri-endpoint");
    }
    return;
  }
  if (command != "images" && command != "pull" && command != "rmi") {
    throw Error(Code::kInvalidArgument,
                fmt::format("--cri-endpoint works with images, pull and rmi; {} works on the "
                            "local store only",
                            command));
  }
}

int run_cri_images(const GlobalOptions& g, const CriImagesOptions& o) {
  if (o.format != "table" && o.format != "json") {
    throw Error(Code::kInvalidArgument, fmt::format("--format {}: use table or json",
                                                    o.format.empty() ? "\"\"" : o.format));
  }
  const cri::Client client = connect(g);
  std::vector<cri::Image> images = client.list_images();
  const std::vector<cri::Container> containers = client.list_containers();
  const std::vector<std::string> sandbox = sandbox_images(g, images);
  std::sort(images.begin(), images.end(), [](const cri::Image& a, const cri::Image& b) {
    const std::string& an = a.repo_tags.empty() ? a.id : a.repo_tags.front();
    const std::string& bn = b.repo_tags.empty() ? b.id : b.repo_tags.front();
    return an < bn;
  });

  if (o.format == "json") {
    json out = json::array();
    for (const auto& image : images) {
      const cri::ImageUse use = cri::image_use(image, containers, sandbox);
      json users = json::array();
      for (const auto& c : use.containers) {
        users.push_back({{"Id", c.id},
                         {"Name", c.name},
                         {"State", std::string(cri::container_state_name(c.state))}});
      }
      out.push_back({{"Id", image.id},
                     {"RepoTags", image.repo_tags},
                     {"RepoDigests", image.repo_digests},
                     {"Size", image.size},
                     {"Pinned", use.pinned},
                     {"SandboxImage", use.sandbox_image},
                     {"InUse", use.in_use()},
                     {"Containers", users}});
    }
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  if (o.quiet) {
    for (const auto& image : images) std::cout << shown_id(image.id, o.no_trunc) << "\n";
    return 0;
  }
  struct Row {
    std::string repo, tag, digest, id, size, use;
  };
  std::vector<Row> rows;
  for (const auto& image : images) {
    const std::string id = shown_id(image.id, o.no_trunc);
    const std::string size = human_size(image.size);
    const std::string use = use_column(cri::image_use(image, containers, sandbox));
    const auto digest_of = [&](const std::string& repo) -> std::string {
      for (const auto& d : image.repo_digests) {
        if (repository_of(d) == repo) return d.substr(d.find('@') + 1);
      }
      return "<none>";
    };
    std::set<std::string> tagged_repos;
    for (const auto& tag : image.repo_tags) {
      auto [repo, t] = split_name(tag);
      tagged_repos.insert(repo);
      rows.push_back({repo, t, digest_of(repo), id, size, use});
    }
    // Repositories the image is held by digest only.
    for (const auto& d : image.repo_digests) {
      const std::string repo = repository_of(d);
      if (tagged_repos.insert(repo).second) {
        rows.push_back({repo, "<none>", d.substr(d.find('@') + 1), id, size, use});
      }
    }
    if (tagged_repos.empty()) rows.push_back({"<none>", "<none>", "<none>", id, size, use});
  }
  std::size_t w_repo = 10, w_tag = 3, w_digest = 6, w_id = 8, w_size = 4;
  for (const auto& r : rows) {
    w_repo = std::max(w_repo, r.repo.size());
    w_tag = std::max(w_tag, r.tag.size());
    w_digest = std::max(w_digest, r.digest.size());
    w_id = std::max(w_id, r.id.size());
    w_size = std::max(w_size, r.size.size());
  }
  const auto line = [&](const Row& r) {
    std::string out = fmt::format("{:<{}}  {:<{}}  ", r.repo, w_repo, r.tag, w_tag);
    if (o.digests) out += fmt::format("{:<{}}  ", r.digest, w_digest);
    out += fmt::format("{:<{}}  {:<{}}  {}", r.id, w_id, r.size, w_size, r.use);
    std::cout << out << "\n";
  };
  line({"REPOSITORY", "TAG", "DIGEST", "IMAGE ID", "SIZE", "IN USE"});
  for (const auto& r : rows) line(r);
  return 0;
}

int run_cri_pull(const GlobalOptions& g, const std::string& ref_text, bool quiet) {
  const std::string ref = ref_text.starts_with("docker://") ? ref_text.substr(9) : ref_text;
  if (ref.empty()) throw Error(Code::kInvalidArgument, "give the image to pull");
  (void)stowage::Reference::parse(ref);  // refuses what is not a reference, naming it
  // The runtime resolves short names itself (containerd: docker.io; CRI-O: its registries.conf),
  // so only a name that says its registry gets that registry's credentials.
  std::optional<cri::AuthConfig> auth;
  if (!stowage::is_short_name(ref)) {
    const stowage::Reference parsed = stowage::Reference::parse_normalized(ref);
    const stowage::oci::Credentials c = lookup_credentials(g, parsed.domain);
    if (!c.empty()) {
      auth = cri::AuthConfig{.username = c.username,
                             .password = c.password,
                             .auth = "",
                             .server_address = "",
                             .identity_token = c.identity_token,
                             .registry_token = ""};
    }
  }
  const cri::Client client = connect(g);
  const std::string image_ref = client.pull_image(ref, auth);
  const std::optional<cri::Image> image = client.image_status(image_ref);
  if (!image) {
    throw Error(Code::kNotFound,
                fmt::format("pulled {} but the runtime does not hold image {}", ref, image_ref));
  }
  if (quiet) {
    std::cout << image->id << "\n";
    return 0;
  }
  std::cout << "Image ID: " << image->id << "\n";
  // The repo digest of the repository pulled first, then the image's others.
  std::vector<std::string> digests = image->repo_digests;
  if (const auto n = normalized(ref)) {
    const std::string repo = repository_of(*n);
    std::stable_partition(digests.begin(), digests.end(),
                          [&](const std::string& d) { return repository_of(d) == repo; });
  }
  for (const auto& d : digests) std::cout << "Repo digest: " << d << "\n";
  return 0;
}

int run_cri_rmi(const GlobalOptions& g, const CriRmiOptions& o) {
  if (o.all == !o.refs.empty()) {
    throw Error(Code::kInvalidArgument, o.all ? "give image names or --all, not both"
                                              : "give at least one image name or ID, or --all");
  }
  const cri::Client client = connect(g);
  const std::vector<cri::Image> images = client.list_images();
  const std::vector<cri::Container> containers = client.list_containers();
  const std::vector<std::string> sandbox = sandbox_images(g, images);

  // What to remove, each image once, with the name it was asked by.
  std::vector<std::pair<std::string, const cri::Image*>> targets;
  std::set<std::string> chosen;
  int rc = 0;
  if (o.all) {
    for (const auto& image : images) {
      targets.emplace_back(image.repo_tags.empty() ? image.id : image.repo_tags.front(), &image);
    }
  }
  for (const auto& ref : o.refs) {
    try {
      const cri::Image& image = resolve(images, ref);
      if (chosen.insert(image.id).second) targets.emplace_back(ref, &image);
    } catch (const Error& e) {
      std::cerr << "Error: " << e.what() << "\n";
      rc = 1;
    }
  }
  for (const auto& [ref, image] : targets) {
    const cri::ImageUse use = cri::image_use(*image, containers, sandbox);
    const std::vector<std::string> reasons = cri::protections(use);
    if (!reasons.empty() && !o.force) {
      std::cerr << fmt::format(
          "Error: {}: not removing image {}: it is {} (use --force to remove it anyway)\n", ref,
          image->id, join(reasons, "; "));
      rc = 1;
      continue;
    }
    for (const auto& reason : reasons) {
      std::cerr << fmt::format("warning: --force: removing image {} although it is {}\n", image->id,
                               reason);
    }
    try {
      client.remove_image(image->id);
    } catch (const Error& e) {
      std::cerr << "Error: removing " << ref << ": " << e.what() << "\n";
      rc = 1;
      continue;
    }
    // CRI removes the image with every tag it has.
    for (const auto& tag : image->repo_tags) std::cout << "Untagged: " << tag << "\n";
    std::cout << "Deleted: " << image->id << "\n";
  }
  return rc;
}

}  // namespace stowctl
