#include "image_cmds.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "base/error.h"
#include "cri_cmds.h"
#include "oci/archive.h"
#include "oci/image_fs.h"
#include "oci/manifest.h"
#include "oci/tar_reader.h"

namespace stowctl {
namespace {

namespace fs = std::filesystem;
namespace oci = stowage::oci;
using nlohmann::json;
using stowage::Code;
using stowage::Error;

std::string short_id(const std::string& id, bool no_trunc) {
  return no_trunc ? "sha256:" + id : id.substr(0, 12);
}

void check_format(const std::string& format) {
  if (format != "table" && format != "json") {
    throw Error(Code::kInvalidArgument,
                fmt::format("--format {}: use table or json", format.empty() ? "\"\"" : format));
  }
}

// ---- images ------------------------------------------------------------------------------------

struct ImagesOptions {
  bool quiet = false;
  bool no_trunc = false;
  bool digests = false;
  bool verify = false;
  std::string format = "table";
};

int print_verify(const oci::Store& store) {
  const auto report = store.verify();
  for (const auto& d : report.corrupt) std::cout << "corrupt: " << d << "\n";
  for (const auto& d : report.missing) std::cout << "missing: " << d << "\n";
  if (report.clean()) {
    std::cerr << "store " << store.root().string() << ": every blob matches its digest\n";
    return 0;
  }
  std::cerr << fmt::format(
      "store {}: {} corrupt, {} missing blobs; pull the affected images "
      "again ('stowctl prune' removes corrupt leftovers)\n",
      store.root().string(), report.corrupt.size(), report.missing.size());
  return 1;
}

int run_images(const GlobalOptions& g, const ImagesOptions& o) {
  check_format(o.format);
  const auto store = open_store(g);
  if (o.verify) return print_verify(*store);
  const auto images = list_local_images(*store, chosen_platform(g));
  const auto now = std::chrono::system_clock::now();
  if (o.format == "json") {
    json out = json::array();
    for (const auto& image : images) {
      out.push_back({{"Id", image.id},
                     {"Digest", image.top.digest},
                     {"Names", image.names},
                     {"Created", image.config.created},
                     {"Size", image.size},
                     {"Os", image.config.os},
                     {"Architecture", image.config.architecture}});
    }
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  if (o.quiet) {
    std::set<std::string> seen;
    for (const auto& image : images) {
      if (seen.insert(image.id).second) std::cout << short_id(image.id, o.no_trunc) << "\n";
    }
    return 0;
  }
  struct Row {
    std::string repo, tag, digest, id, created, size;
  };
  std::vector<Row> rows;
  for (const auto& image : images) {
    std::vector<std::string> names = image.names;
    if (names.empty()) names.push_back("");
    for (const auto& name : names) {
      auto [repo, tag] =
          name.empty() ? std::pair<std::string, std::string>{"<none>", "<none>"} : split_name(name);
      rows.push_back({repo, tag, image.top.digest, short_id(image.id, o.no_trunc),
                      human_age(image.config.created, now), human_size(image.size)});
    }
  }
  std::size_t w_repo = 10, w_tag = 3, w_digest = 6, w_id = 8, w_created = 7;
  for (const auto& r : rows) {
    w_repo = std::max(w_repo, r.repo.size());
    w_tag = std::max(w_tag, r.tag.size());
    w_digest = std::max(w_digest, r.digest.size());
    w_id = std::max(w_id, r.id.size());
    w_created = std::max(w_created, r.created.size());
  }
  const auto line = [&](const std::string& repo, const std::string& tag, const std::string& digest,
                        const std::string& id, const std::string& created,
                        const std::string& size) {
    std::string out = fmt::format("{:<{}}  {:<{}}  ", repo, w_repo, tag, w_tag);
    if (o.digests) out += fmt::format("{:<{}}  ", digest, w_digest);
    out += fmt::format("{:<{}}  {:<{}}  {}", id, w_id, created, w_created, size);
    std::cout << out << "\n";
  };
  line("REPOSITORY", "TAG", "DIGEST", "IMAGE ID", "CREATED", "SIZE");
  for (const auto& r : rows) line(r.repo, r.tag, r.digest, r.id, r.created, r.size);
  return 0;
}

// ---- inspect -----------------------------------------------------------------------------------

json inspect_json(const oci::Store& store, const LocalImage& image) {
  json config = json::parse(store.read(image.parsed.config.digest));
  json repo_digests = json::array();
  for (const auto& name : image.names) {
    repo_digests.push_back(split_name(name).first + "@" + image.top.digest);
  }
  json layers = json::array();
  for (const auto& l : image.parsed.layers) layers.push_back(l.digest);
  return {{"Id", image.id},
          {"Digest", image.top.digest},
          {"RepoTags", image.names},
          {"RepoDigests", repo_digests},
          {"Created", image.config.created},
          {"Author", image.config.author},
          {"Architecture", image.config.architecture},
          {"Variant", image.config.variant},
          {"Os", image.config.os},
          {"Size", image.size},
          {"Config", config.value("config", json::object())},
          {"RootFS", config.value("rootfs", json::object())},
          {"History", config.value("history", json::array())},
          {"Labels", config.value("config", json::object()).value("Labels", json::object())},
          {"ManifestType", image.manifest.media_type},
          {"ManifestDigest", image.manifest.digest},
          {"Layers", layers}};
}

int run_inspect(const GlobalOptions& g, const std::vector<std::string>& refs) {
  const auto store = open_store(g);
  const auto platform = chosen_platform(g);
  json out = json::array();
  int rc = 0;
  for (const auto& ref : refs) {
    try {
      out.push_back(inspect_json(*store, find_local_image(*store, ref, platform)));
    } catch (const Error& e) {
      std::cerr << "Error: " << e.what() << "\n";
      rc = 1;
    }
  }
  std::cout << out.dump(4) << "\n";
  return rc;
}

// ---- tag ---------------------------------------------------------------------------------------

int run_tag(const GlobalOptions& g, const std::string& source,
            const std::vector<std::string>& targets) {
  const auto store = open_store(g);
  const LocalImage image = find_local_image(*store, source, chosen_platform(g));
  for (const auto& target : targets) {
    if (looks_like_id(target) && target.size() == 64) {
      throw Error(Code::kInvalidArgument, target + ": a 64-digit hex name would read as an ID");
    }
    store->tag(target, image.top);
  }
  return 0;
}

// ---- rmi ---------------------------------------------------------------------------------------

struct RmiOptions {
  std::vector<std::string> refs;
  bool all = false;
  bool force = false;
};

int run_rmi(const GlobalOptions& g, const RmiOptions& o) {
  if (o.all == !o.refs.empty()) {
    throw Error(Code::kInvalidArgument, o.all ? "give image names or --all, not both"
                                              : "give at least one image name or ID, or --all");
  }
  const auto store = open_store(g);
  const auto platform = chosen_platform(g);
  int rc = 0;
  std::map<std::string, std::string> untagged_tops;  // top digest → image ID
  const auto remove_image = [&](const LocalImage& image) {
    for (const auto& name : store->remove_roots(image.top.digest)) {
      if (!name.empty()) std::cout << "Untagged: " << name << "\n";
    }
    untagged_tops.emplace(image.top.digest, image.id);
  };
  if (o.all) {
    for (const auto& image : list_local_images(*store, platform)) remove_image(image);
  }
  for (const auto& ref : o.refs) {
    try {
      const LocalImage image = find_local_image(*store, ref, platform);
      if (!image.matched.empty()) {
        // By name: only that name goes.
        if (store->untag(image.matched)) std::cout << "Untagged: " << image.matched << "\n";
        untagged_tops.emplace(image.top.digest, image.id);
        continue;
      }
      if (image.names.size() > 1 && !o.force) {
        std::string names;
        for (const auto& n : image.names) names += (names.empty() ? "" : ", ") + n;
        throw Error(Code::kConflict,
                    fmt::format("{}: image has several names ({}); remove them one by one or "
                                "use --force",
                                ref, names));
      }
      remove_image(image);
    } catch (const Error& e) {
      std::cerr << "Error: " << e.what() << "\n";
      rc = 1;
    }
  }
  // An image is deleted once nothing names it; its blobs go when no other image uses them.
  std::set<std::string> still_named;
  for (const auto& s : store->list()) still_named.insert(s.descriptor.digest);
  for (const auto& [top, id] : untagged_tops) {
    if (!still_named.contains(top)) std::cout << "Deleted: " << id << "\n";
  }
  store->prune();
  return rc;
}

// ---- save / load -------------------------------------------------------------------------------

struct SaveOptions {
  std::vector<std::string> refs;
  std::string output;
  std::string format = "docker-archive";
};

int run_save(const GlobalOptions& g, const SaveOptions& o) {
  if (o.format != "docker-archive" && o.format != "oci-archive") {
    throw Error(Code::kInvalidArgument,
                fmt::format("--format {}: use docker-archive or oci-archive", o.format));
  }
  if (o.output.empty()) {
    throw Error(Code::kInvalidArgument, "give the tar file to write with -o/--output");
  }
  const auto store = open_store(g);
  const auto platform = chosen_platform(g);
  std::vector<oci::ArchiveImage> images;
  for (const auto& ref : o.refs) {
    const LocalImage image = find_local_image(*store, ref, platform);
    oci::ArchiveImage a;
    // docker-archive holds one platform; an oci-archive keeps an index as it is.
    a.manifest = o.format == "oci-archive" ? image.top : image.manifest;
    // Saved by name: under that name; by ID: under all its names, as podman does.
    if (!image.matched.empty()) {
      a.names.push_back(image.matched);
    } else {
      a.names = image.names;
    }
    images.push_back(std::move(a));
  }
  if (o.format == "oci-archive") {
    oci::write_oci_archive(*store, images, o.output);
  } else {
    oci::write_docker_archive(*store, images, o.output);
  }
  return 0;
}

int run_load(const GlobalOptions& g, const std::string& input) {
  const auto store = open_store(g);
  oci::ImportResult result;
  if (input.empty() || input == "-") {
    if (::isatty(STDIN_FILENO) != 0) {
      throw Error(Code::kInvalidArgument,
                  "give the archive with -i/--input, or pipe it into standard input");
    }
    oci::TarReader reader = oci::TarReader::open_source(
        [](char* buffer, std::size_t size) -> std::size_t {
          std::cin.read(buffer, static_cast<std::streamsize>(size));
          if (std::cin.bad()) throw Error(Code::kUnavailable, "cannot read standard input");
          return static_cast<std::size_t>(std::cin.gcount());
        },
        "standard input");
    result = oci::import_archive(*store, reader);
  } else {
    if (!fs::exists(input)) throw Error(Code::kNotFound, input + ": no such file");
    result = oci::import_archive(*store, input);
  }
  for (const auto& image : result.images) {
    if (image.names.empty()) {
      std::cout << "Loaded image: "
                << (image.config_digest.empty() ? image.manifest.digest : image.config_digest)
                << "\n";
    }
    for (const auto& name : image.names) std::cout << "Loaded image: " << name << "\n";
  }
  return 0;
}

// ---- prune -------------------------------------------------------------------------------------

int run_prune(const GlobalOptions& g) {
  const auto store = open_store(g);
  const auto report = store->prune();
  std::cout << fmt::format("Removed {} blobs ({}), {} abandoned downloads\n",
                           report.removed_blobs.size(), human_size(report.removed_bytes),
                           report.removed_ingests);
  return 0;
}

// ---- diff --------------------------------------------------------------------------------------

int run_diff(const GlobalOptions& g, const std::string& from, const std::string& to,
             const std::string& format) {
  check_format(format);
  const auto store = open_store(g);
  const auto platform = chosen_platform(g);
  const LocalImage a = find_local_image(*store, from, platform);
  const LocalImage b = find_local_image(*store, to, platform);
  // As podman: what IMAGE1 changed relative to IMAGE2.
  const auto changes = oci::diff_fs_trees(oci::build_fs_tree(*store, b.parsed.layers),
                                          oci::build_fs_tree(*store, a.parsed.layers));
  if (format == "json") {
    json out = {{"added", json::array()}, {"changed", json::array()}, {"deleted", json::array()}};
    for (const auto& c : changes) {
      const char* key = c.kind == oci::ChangeKind::kAdded     ? "added"
                        : c.kind == oci::ChangeKind::kChanged ? "changed"
                                                              : "deleted";
      out[key].push_back(c.path);
    }
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  for (const auto& c : changes) std::cout << oci::change_letter(c.kind) << " " << c.path << "\n";
  return 0;
}

}  // namespace

void add_image_commands(CLI::App& app, const GlobalOptions& globals, int* exit_code) {
  const GlobalOptions* g = &globals;

  auto io = std::make_shared<ImagesOptions>();
  auto* images = app.add_subcommand("images", "List the images of the local store");
  images->add_flag("-q,--quiet", io->quiet, "Print image IDs only");
  images->add_flag("--no-trunc", io->no_trunc, "Print full image IDs");
  images->add_flag("--digests", io->digests, "Show the manifest digest of each image");
  images->add_flag("--verify", io->verify,
                   "Re-hash every blob of the store and report corrupt or missing ones (exit 1)");
  images->add_option("--format", io->format, "table or json");
  images->footer(
      "With --cri-endpoint: the images of that runtime, with an IN USE column (containers using "
      "each image, pinned, sandbox image); --verify does not apply.");
  images->callback([g, io, exit_code] {
    if (!g->cri_endpoint.empty()) {
      if (io->verify) {
        throw Error(Code::kInvalidArgument, "--verify checks the local store, not --cri-endpoint");
      }
      *exit_code = run_cri_images(*g, {.quiet = io->quiet,
                                       .no_trunc = io->no_trunc,
                                       .digests = io->digests,
                                       .format = io->format});
      return;
    }
    *exit_code = run_images(*g, *io);
  });

  auto inspect_refs = std::make_shared<std::vector<std::string>>();
  auto* inspect = app.add_subcommand("inspect", "Show images of the local store as JSON");
  inspect->add_option("IMAGE", *inspect_refs, "Image names or IDs")->required();
  inspect->callback([g, inspect_refs, exit_code] { *exit_code = run_inspect(*g, *inspect_refs); });

  auto tag_args = std::make_shared<std::vector<std::string>>();
  auto* tag = app.add_subcommand("tag", "Give a local image more names");
  tag->add_option("IMAGE TARGET", *tag_args, "The image, then one or more new names")
      ->required()
      ->expected(2, -1);
  tag->callback([g, tag_args, exit_code] {
    *exit_code = run_tag(*g, tag_args->front(), {tag_args->begin() + 1, tag_args->end()});
  });

  auto ro = std::make_shared<RmiOptions>();
  auto* rmi = app.add_subcommand(
      "rmi", "Remove names of local images; an image and its unshared blobs go with its last name");
  rmi->add_option("IMAGE", ro->refs, "Image names or IDs");
  rmi->add_flag("-a,--all", ro->all, "Remove every image");
  rmi->add_flag("-f,--force", ro->force,
                "Remove an image given by ID even if it has several names; with --cri-endpoint, "
                "remove it even if a container uses it, it is pinned or it is the sandbox image");
  rmi->footer(
      "Blobs committed in the last 10 minutes stay until the next 'stowctl prune', so that a pull "
      "running at the same time never loses what it has fetched.\n"
      "With --cri-endpoint: removes the image from that runtime with every tag it has, and "
      "refuses an image used by any container (running or exited), pinned by the runtime, or "
      "the sandbox image, naming why.");
  rmi->callback([g, ro, exit_code] {
    if (!g->cri_endpoint.empty()) {
      *exit_code = run_cri_rmi(*g, {.refs = ro->refs, .all = ro->all, .force = ro->force});
      return;
    }
    *exit_code = run_rmi(*g, *ro);
  });

  auto so = std::make_shared<SaveOptions>();
  auto* save = app.add_subcommand("save", "Write local images to a tar archive");
  save->add_option("IMAGE", so->refs, "Image names or IDs")->required();
  save->add_option("-o,--output", so->output, "The tar file to write (written atomically)")
      ->required();
  save->add_option("--format", so->format,
                   "docker-archive (what docker load and podman load take) or oci-archive");
  save->callback([g, so, exit_code] { *exit_code = run_save(*g, *so); });

  auto load_input = std::make_shared<std::string>();
  auto* load = app.add_subcommand(
      "load", "Read images from a docker-archive, oci-archive or docker/podman save tar");
  load->add_option("-i,--input", *load_input,
                   "The tar file (plain, gzip, zstd, bzip2 or xz); default: standard input");
  load->callback([g, load_input, exit_code] { *exit_code = run_load(*g, *load_input); });

  auto* prune = app.add_subcommand(
      "prune", "Remove blobs no image uses (older than 10 minutes) and abandoned downloads");
  prune->callback([g, exit_code] { *exit_code = run_prune(*g); });

  auto diff_args = std::make_shared<std::vector<std::string>>();
  auto diff_format = std::make_shared<std::string>("table");
  auto* diff = app.add_subcommand(
      "diff", "Files IMAGE1 added (A), changed (C) and deleted (D) relative to IMAGE2");
  diff->add_option("IMAGE1 IMAGE2", *diff_args, "The two images")->required()->expected(2);
  diff->add_option("--format", *diff_format, "table or json");
  diff->callback([g, diff_args, diff_format, exit_code] {
    *exit_code = run_diff(*g, (*diff_args)[0], (*diff_args)[1], *diff_format);
  });

  auto* fsck =
      app.add_subcommand("fsck", "Re-hash every blob of the local store (images --verify)");
  fsck->callback([g, exit_code] { *exit_code = print_verify(*open_store(*g)); });
}

}  // namespace stowctl
