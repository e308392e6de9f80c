#include "registries_cmd.h"

#include <filesystem>
#include <iostream>
#include <memory>

#include "base/error.h"
#include "base/files.h"
#include "registries/conf.h"
#include "registries/render.h"
#include "registries/spec.h"

namespace stowctl {
namespace {

namespace fs = std::filesystem;
namespace reg = stowage::registries;

struct RenderOptions {
  std::vector<std::string> files;
  std::string node_labels;
  bool node_labels_set = false;
  std::string format = "v2";
  std::string output;
};

struct ValidateOptions {
  std::string path;
  std::string as = "auto";
};

std::string read_input(const std::string& path) {
  if (path == "-") {
    return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  auto text = stowage::read_file(path);
  if (!text) throw stowage::Error(stowage::Code::kNotFound, path + ": no such file or directory");
  return *text;
}

void print_warnings(const std::vector<std::string>& warnings) {
  for (const auto& w : warnings) std::cerr << "warning: " << w << "\n";
}

int run_render(const RenderOptions& o) {
  std::vector<reg::NamedRegistryConfig> all;
  for (const auto& f : o.files) {
    auto got = reg::read_registry_configs(read_input(f), f);
    if (got.empty())
      throw stowage::Error(stowage::Code::kInvalidArgument, f + ": no RegistryConfig found");
    for (auto& rc : got) all.push_back(std::move(rc));
  }
  std::vector<reg::NamedRegistryConfig> chosen = all;
  if (o.node_labels_set) {
    chosen = reg::matching_configs(all, reg::parse_labels(o.node_labels));
    if (chosen.empty()) {
      std::cerr << "warning: no RegistryConfig matches the node labels; rendering an empty "
                   "configuration\n";
    }
  }
  const reg::Config config = reg::merge_registry_configs(std::move(chosen));
  const auto format = reg::parse_render_format(o.format);
  const reg::Rendering r = reg::render(config, format);
  print_warnings(r.warnings);
  if (o.output.empty()) {
    if (r.files.size() == 1 && format != reg::RenderFormat::kContainerd) {
      std::cout << r.files[0].content;
    } else {
      for (const auto& f : r.files) std::cout << "# ---- " << f.path << " ----\n" << f.content;
    }
    return 0;
  }
  if (format == reg::RenderFormat::kContainerd) {
    // -o is a certs.d directory: one <host>/hosts.toml per registry host.
    for (const auto& f : r.files) {
      const fs::path p = fs::path(o.output) / f.path;
      fs::create_directories(p.parent_path());
      stowage::atomic_write_file(p, f.content);
    }
    std::cerr << "wrote " << r.files.size() << " hosts.toml file(s) under " << o.output << "\n";
    return 0;
  }
  fs::path p = o.output;
  if (fs::is_directory(p)) p /= r.files[0].path;
  stowage::atomic_write_file(p, r.files[0].content);
  std::cerr << "wrote " << p.string() << "\n";
  return 0;
}

bool is_resource_file(const fs::path& p) {
  const auto ext = p.extension();
  return ext == ".yaml" || ext == ".yml" || ext == ".json";
}

int run_validate(const ValidateOptions& o) {
  std::vector<std::string> warnings;
  const fs::path p = o.path;
  std::error_code ec;
  if (o.as == "resource" || (o.as == "auto" && is_resource_file(p))) {
    auto rcs = reg::read_registry_configs(read_input(o.path), o.path);
    if (rcs.empty())
      throw stowage::Error(stowage::Code::kInvalidArgument, o.path + ": no RegistryConfig found");
    for (const auto& rc : rcs) reg::spec_to_config(rc);
    reg::merge_registry_configs(rcs);
    std::cout << o.path << ": valid (" << rcs.size() << " RegistryConfig"
              << (rcs.size() == 1 ? "" : "s") << ")\n";
    return 0;
  }
  reg::Config c;
  if (fs::is_directory(p, ec)) {
    c = reg::load_config({}, p, false, &warnings);
  } else if (o.as == "dropin") {
    c = reg::load_file(p, reg::FileRole::kDropIn, &warnings);
  } else {
    c = reg::load_file(p, reg::FileRole::kMain, &warnings);
  }
  print_warnings(warnings);
  const size_t search =
      c.unqualified_search_registries ? c.unqualified_search_registries->size() : 0;
  std::cout << o.path << ": valid (" << c.registries.size() << " [[registry]] table"
            << (c.registries.size() == 1 ? "" : "s") << ", " << search << " search registr"
            << (search == 1 ? "y" : "ies") << ", " << c.aliases.size() << " alias"
            << (c.aliases.size() == 1 ? "" : "es") << ")\n";
  return 0;
}

}  // namespace

void add_registries_command(CLI::App& app, int* exit_code) {
  auto* registries = app.add_subcommand(
      "registries", "Render and validate registries configuration (registries.conf, hosts.toml)");
  registries->require_subcommand(1);

  auto ro = std::make_shared<RenderOptions>();
  auto* render = registries->add_subcommand(
      "render",
      "Render RegistryConfig resources into registries configuration.\n"
      "Several RegistryConfigs merge by spec.priority (higher wins per registry prefix,\n"
      "ties by name), as the operator merges them for a node.");
  render
      ->add_option("-f,--filename", ro->files,
                   "RegistryConfig YAML or JSON file ('-' for stdin); repeatable")
      ->required();
  auto* labels = render->add_option(
      "--node-labels", ro->node_labels,
      "Render for a node with these labels (k=v,k2=v2): only RegistryConfigs whose\n"
      "nodeSelector matches are merged. Without it every RegistryConfig applies.");
  render
      ->add_option("--format", ro->format,
                   "v2: the drop-in 99-stowage.conf (default, what nodes receive)\n"
                   "v2-full: a complete registries.conf\n"
                   "v1: legacy [registries.search]/[registries.insecure]/[registries.block]\n"
                   "containerd: one <host>/hosts.toml per registry host")
      ->check(CLI::IsMember({"v2", "v2-full", "v1", "containerd"}));
  render->add_option("-o,--output", ro->output,
                     "Write to FILE (or into DIR); for containerd, DIR is a certs.d directory.\n"
                     "Default: stdout");
  render->footer(
      "Examples:\n"
      "  stowctl registries render -f manifests/samples/registryconfig-classic.yaml\n"
      "  stowctl registries render -f a.yaml -f b.yaml --node-labels "
      "node-role.kubernetes.io/worker=\n"
      "  stowctl registries render -f mirrors.yaml --format containerd -o /etc/containerd/certs.d");
  render->callback([ro, labels, exit_code] {
    ro->node_labels_set = labels->count() > 0;
    *exit_code = run_render(*ro);
  });

  auto vo = std::make_shared<ValidateOptions>();
  auto* validate = registries->add_subcommand(
      "validate",
      "Validate registries configuration with containers/image's rules and error texts.\n"
      "PATH is a registries.conf file, a registries.conf.d drop-in directory (every *.conf\n"
      "merged in lexical order), or RegistryConfig YAML/JSON (.yaml, .yml, .json).\n"
      "Exits 1 with the error on invalid input.");
  validate->add_option("PATH", vo->path, "File or directory to validate")->required();
  validate
      ->add_option("--as", vo->as,
                   "auto (by extension), main (a registries.conf), dropin (a registries.conf.d\n"
                   "file: v1 tables are refused), resource (RegistryConfig YAML/JSON)")
      ->check(CLI::IsMember({"auto", "main", "dropin", "resource"}));
  validate->callback([vo, exit_code] { *exit_code = run_validate(*vo); });
}

}  // namespace stowctl
