#include "remote_cmds.h"

#include <fmt/format.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "base/clock.h"
#include "base/error.h"
#include "cri_cmds.h"
#include "http/client.h"
#include "oci/auth.h"
#include "oci/copy.h"
#include "oci/distribution.h"
#include "oci/registry_client.h"
#include "oci/resolve.h"
#include "reference/reference.h"
#include "registries/conf.h"

namespace stowctl {
namespace {

namespace fs = std::filesystem;
namespace oci = stowage::oci;
namespace reg = stowage::registries;
using nlohmann::json;
using stowage::Code;
using stowage::Error;

// ---- what every registry command needs ---------------------------------------------------------

struct Registries {
  reg::Config config;
  oci::ConfigOrigin origin;
};

Registries load_registries(const GlobalOptions& g) {
  Registries r;
  std::vector<std::string> warnings;
  if (!g.registries_conf.empty()) {
    // An explicit file is the whole configuration, as CONTAINERS_REGISTRIES_CONF is for podman.
    r.config = reg::load_config(g.registries_conf, {}, true, &warnings);
    r.origin.conf_path = g.registries_conf;
    r.origin.conf_dir = "";
  } else {
    r.config = reg::load_config("/etc/containers/registries.conf",
                                "/etc/containers/registries.conf.d", false, &warnings);
  }
  r.origin.search_registries_origin = r.origin.conf_path;
  r.origin.aliases_origin = r.origin.conf_path;
  for (const auto& w : warnings) std::cerr << "warning: " << w << "\n";
  return r;
}

bool registry_insecure(const GlobalOptions& g, const reg::Config& config, const std::string& host) {
  if (g.tls_verify && !*g.tls_verify) return true;
  const reg::Registry* r = reg::find_registry(config, host);
  return r != nullptr && r->insecure;
}

oci::AuthEnvironment auth_environment() {
  return oci::AuthEnvironment::from_process();
}

// A connector over one process-wide libcurl client.
struct Remote {
  explicit Remote(const GlobalOptions& g)
      : http({.user_agent = "stowctl/0.1",
              .max_idle_handles = 16,
              .proxy = std::nullopt,
              .receive_buffer_bytes = 512 * 1024}),
        connector(http, stowage::real_clock(), connect_options(g)) {}

  static oci::ConnectOptions connect_options(const GlobalOptions& g) {
    oci::ConnectOptions o;
    o.certs_dir = g.cert_dir.empty() ? "/etc/containers/certs.d" : g.cert_dir;
    o.tls_verify = !g.tls_verify || *g.tls_verify;
    o.credentials = [g](std::string_view registry) { return lookup_credentials(g, registry); };
    o.retry.max_attempts = g.retry + 1;
    o.stall_timeout = std::chrono::seconds(g.stall_timeout);
    return o;
  }

  stowage::http::Client http;
  oci::RegistryConnector connector;
};

// ---- progress ----------------------------------------------------------------------------------

// One status line on a terminal (stderr), redrawn at most ten times a second; nothing otherwise.
class ProgressLine {
 public:
  ProgressLine(std::string verb, bool enabled) : verb_(std::move(verb)), enabled_(enabled) {}

  void update(const oci::BlobProgress& p) {
    if (!enabled_) return;
    std::lock_guard lock(mu_);
    Blob& b = blobs_[p.digest];
    b.done = p.done;
    b.total = std::max(p.total, p.done);
    b.finished = p.finished;
    b.skipped = p.skipped;
    const auto now = std::chrono::steady_clock::now();
    if (!p.finished && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    draw();
  }

  void finish() {
    if (!enabled_) return;
    std::lock_guard lock(mu_);
    draw();
    std::cerr << "\n";
  }

 private:
  struct Blob {
    std::uint64_t done = 0, total = 0;
    bool finished = false, skipped = false;
  };

  void draw() {
    std::uint64_t done = 0, total = 0;
    std::size_t finished = 0, skipped = 0;
    for (const auto& [digest, b] : blobs_) {
      done += b.done;
      total += b.total;
      finished += b.finished ? 1 : 0;
      skipped += b.skipped ? 1 : 0;
    }
    std::string line = fmt::format("{} {}/{} blobs", verb_, finished, blobs_.size());
    if (skipped > 0) line += fmt::format(" ({} already there)", skipped);
    line += fmt::format("  {} / {}", human_size(done), human_size(total));
    if (total > 0) line += fmt::format("  {:3d}%", static_cast<int>(done * 100 / total));
    std::cerr << "\r" << line << "\033[K" << std::flush;
  }

  std::string verb_;
  bool enabled_;
  std::mutex mu_;
  std::map<std::string, Blob> blobs_;
  std::chrono::steady_clock::time_point last_{};
};

// ---- pull --------------------------------------------------------------------------------------

struct PullOptions {
  std::string ref;
  bool quiet = false;
  int parallel = 4;
};

int run_pull(const GlobalOptions& g, const PullOptions& o) {
  if (o.parallel < 1 || o.parallel > 64) {
    throw Error(Code::kInvalidArgument, "--parallel must be between 1 and 64");
  }
  const Registries regs = load_registries(g);
  oci::ResolveOptions ro;
  ro.origin = regs.origin;
  ro.tty = false;  // no interactive choice: permissive tries every candidate in order
  const std::string ref = o.ref.starts_with("docker://") ? o.ref.substr(9) : o.ref;
  const oci::ResolvedName resolved = oci::resolve_image_name(ref, regs.config, ro);
  if (!resolved.description.empty() && !o.quiet) std::cerr << resolved.description << "\n";

  const auto store = open_store(g);
  Remote remote(g);
  std::vector<std::string> failures;
  for (const auto& candidate : resolved.candidates) {
    std::vector<oci::PullSource> sources;
    try {
      sources = oci::pull_sources(candidate, regs.config, regs.origin);
    } catch (const Error& e) {
      failures.push_back(fmt::format("{}: {}", candidate.string(), e.what()));
      continue;
    }
    if (g.tls_verify && !*g.tls_verify) {
      for (auto& s : sources) s.insecure = true;
    }
    ProgressLine progress("Pulling " + candidate.string() + ":",
                          !o.quiet && ::isatty(STDERR_FILENO) != 0);
    oci::PullOptions po;
    if (!g.platform.empty()) po.platform = oci::parse_platform(g.platform);
    po.max_parallel_layers = o.parallel;
    po.progress = [&progress](const oci::BlobProgress& p) { progress.update(p); };
    try {
      const oci::PullResult result = oci::pull_image(*store, sources, remote.connector, po);
      progress.finish();
      for (const auto& e : result.source_errors) std::cerr << "warning: " << e << "\n";
      if (!o.quiet) {
        std::cerr << fmt::format(
            "Pulled {}{}\n", result.name,
            result.from_mirror ? " (from mirror " + result.source_location + ")" : "");
      }
      std::cout << result.digest << "\n";
      return 0;
    } catch (const Error& e) {
      progress.finish();
      if (resolved.candidates.size() == 1) throw;
      failures.push_back(fmt::format("{}: {}", candidate.string(), e.what()));
    }
  }
  std::string message = fmt::format("{}: no candidate could be pulled", ref);
  for (const auto& f : failures) message += "\n  " + f;
  throw Error(Code::kNotFound, message);
}

// ---- push --------------------------------------------------------------------------------------

struct PushOptions {
  std::string source;
  std::string destination;
  std::uint64_t chunk_size = 0;
  bool quiet = false;
};

int run_push(const GlobalOptions& g, const PushOptions& o) {
  const auto store = open_store(g);
  const LocalImage image = find_local_image(*store, o.source, chosen_platform(g));
  std::string dest_text = o.destination.empty() ? image.matched : o.destination;
  if (dest_text.starts_with("docker://")) dest_text = dest_text.substr(9);
  if (dest_text.empty()) {
    throw Error(Code::kInvalidArgument,
                o.source + ": an image given by ID needs a destination: stowctl push ID DEST");
  }
  if (stowage::is_short_name(dest_text)) {
    throw Error(Code::kInvalidArgument,
                dest_text + ": give the destination with its registry, e.g. quay.io/team/app:1");
  }
  const stowage::Reference dest = stowage::Reference::parse_normalized(dest_text);
  const Registries regs = load_registries(g);
  if (const reg::Registry* r = reg::find_registry(regs.config, dest.name()); r && r->blocked) {
    throw Error(Code::kPermissionDenied,
                fmt::format("registry {} is blocked in {}", r->prefix, regs.origin.conf_path));
  }
  Remote remote(g);
  ProgressLine progress("Pushing " + dest.string() + ":", !o.quiet && ::isatty(STDERR_FILENO) != 0);
  oci::PushOptions po;
  po.chunk_size = o.chunk_size;
  po.insecure = registry_insecure(g, regs.config, dest.domain);
  po.progress = [&progress](const oci::BlobProgress& p) { progress.update(p); };
  // The store names the image by what matched, or by one of its names for an ID.
  const std::string local = !image.matched.empty() ? image.matched
                            : !image.names.empty() ? image.names.front()
                                                   : image.top.digest;
  std::string digest;
  try {
    digest = oci::push_image(*store, local, dest, remote.connector, po);
  } catch (...) {
    progress.finish();
    throw;
  }
  progress.finish();
  if (!o.quiet) std::cerr << "Pushed " << dest.string() << "\n";
  std::cout << digest << "\n";
  return 0;
}

// ---- login / logout ----------------------------------------------------------------------------

struct LoginOptions {
  std::string registry;
  std::string username;
  std::string password;
  bool password_stdin = false;
  bool get_login = false;
};

std::string read_line_from_terminal(const std::string& prompt, bool echo) {
  std::cerr << prompt << std::flush;
  termios saved{};
  const bool tty = ::tcgetattr(STDIN_FILENO, &saved) == 0;
  if (tty && !echo) {
    termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
  }
  std::string line;
  std::getline(std::cin, line);
  if (tty && !echo) {
    ::tcsetattr(STDIN_FILENO, TCSANOW, &saved);
    std::cerr << "\n";
  }
  return line;
}

// "https://quay.io/v2/" → "quay.io", as podman accepts; a repository path is kept.
std::string auth_key_of(std::string registry) {
  for (const char* scheme : {"https://", "http://"}) {
    if (registry.starts_with(scheme)) registry = registry.substr(std::string_view(scheme).size());
  }
  while (registry.ends_with("/")) registry.pop_back();
  for (const char* suffix : {"/v2", "/v1"}) {
    if (registry.ends_with(suffix)) registry.resize(registry.size() - 3);
  }
  if (registry == "index.docker.io" || registry == "registry-1.docker.io") registry = "docker.io";
  return registry;
}

int run_login(const GlobalOptions& g, LoginOptions o) {
  const std::string key = auth_key_of(o.registry);
  if (key.empty()) throw Error(Code::kInvalidArgument, "give the registry to log in to");
  const oci::AuthEnvironment env = auth_environment();
  oci::check_runtime_dir(env);
  const oci::AuthFileLocation where = oci::auth_write_location(env, g.authfile);
  if (o.get_login) {
    const auto file = oci::load_auth_file(where);
    const auto match = file ? file->find_registry(key) : std::nullopt;
    if (!match || match->credentials.username.empty()) {
      throw Error(Code::kNotFound, "not logged into " + key);
    }
    std::cout << match->credentials.username << "\n";
    return 0;
  }
  if (o.password_stdin && !o.password.empty()) {
    throw Error(Code::kInvalidArgument, "--password and --password-stdin are mutually exclusive");
  }
  const bool tty = ::isatty(STDIN_FILENO) != 0;
  if (o.password_stdin) {
    if (o.username.empty()) {
      throw Error(Code::kInvalidArgument, "--password-stdin needs the user name: give -u USER");
    }
    std::getline(std::cin, o.password);
    while (!o.password.empty() && (o.password.back() == '\n' || o.password.back() == '\r')) {
      o.password.pop_back();
    }
  } else {
    if (!o.password.empty()) {
      std::cerr << "warning: a password on the command line is visible to other users; prefer "
                   "--password-stdin\n";
    }
    if (o.username.empty()) {
      if (!tty)
        throw Error(Code::kInvalidArgument, "no terminal to ask for the user name: give -u");
      o.username = read_line_from_terminal("Username: ", true);
    }
    if (o.password.empty()) {
      if (!tty) {
        throw Error(Code::kInvalidArgument,
                    "no terminal to ask for the password: use --password-stdin");
      }
      o.password = read_line_from_terminal("Password: ", false);
    }
  }
  if (o.username.empty() || o.password.empty()) {
    throw Error(Code::kInvalidArgument, "user name and password must not be empty");
  }
  const std::string host = key.substr(0, key.find('/'));
  const Registries regs = load_registries(g);
  Remote remote(g);
  const oci::Credentials credentials{o.username, o.password, ""};
  oci::login_check(remote.connector, host, credentials, registry_insecure(g, regs.config, host));
  oci::AuthFile file = oci::load_auth_file(where).value_or(oci::AuthFile(where.format));
  file.set(key, credentials);
  oci::save_auth_file(where, file);
  std::cout << "Login Succeeded!\n";
  return 0;
}

int run_logout(const GlobalOptions& g, const std::string& registry, bool all) {
  const oci::AuthEnvironment env = auth_environment();
  const oci::AuthFileLocation where = oci::auth_write_location(env, g.authfile);
  auto file = oci::load_auth_file(where);
  if (all) {
    if (registry.size() > 0) throw Error(Code::kInvalidArgument, "give a registry or --all");
    if (file) {
      for (const auto& key : file->keys()) file->remove(key);
      oci::save_auth_file(where, *file);
    }
    std::cout << "Removed login credentials for all registries\n";
    return 0;
  }
  const std::string key = auth_key_of(registry);
  if (key.empty()) throw Error(Code::kInvalidArgument, "give the registry to log out of, or --all");
  if (!file || !file->remove(key)) throw Error(Code::kNotFound, "not logged into " + key);
  oci::save_auth_file(where, *file);
  std::cout << "Removed login credentials for " << key << "\n";
  return 0;
}

// ---- search ------------------------------------------------------------------------------------

struct SearchOptions {
  std::string term;
  int limit = 25;
  std::vector<std::string> filters;
  bool no_trunc = false;
  bool list_tags = false;
  std::string format = "table";
};

struct SearchFilter {
  std::optional<bool> official;
  std::optional<bool> automated;
  std::uint64_t min_stars = 0;

  bool accepts(const oci::SearchResult& r) const {
    if (official && r.is_official != *official) return false;
    if (automated && r.is_automated != *automated) return false;
    return r.star_count >= min_stars;
  }
};

SearchFilter parse_filters(const std::vector<std::string>& filters) {
  SearchFilter f;
  const auto boolean = [](const std::string& key, const std::string& value) {
    if (value == "true") return true;
    if (value == "false") return false;
    throw Error(Code::kInvalidArgument,
                fmt::format("--filter {}={}: the value must be true or false", key, value));
  };
  for (const auto& text : filters) {
    const auto eq = text.find('=');
    if (eq == std::string::npos) {
      throw Error(
          Code::kInvalidArgument,
          fmt::format("--filter {}: use KEY=VALUE (is-official, is-automated, stars)", text));
    }
    const std::string key = text.substr(0, eq), value = text.substr(eq + 1);
    if (key == "is-official") {
      f.official = boolean(key, value);
    } else if (key == "is-automated") {
      f.automated = boolean(key, value);
    } else if (key == "stars") {
      try {
        std::size_t used = 0;
        const long long n = std::stoll(value, &used);
        if (used != value.size() || n < 0) throw std::invalid_argument(value);
        f.min_stars = static_cast<std::uint64_t>(n);
      } catch (const std::logic_error&) {
        throw Error(
            Code::kInvalidArgument,
            fmt::format("--filter stars={}: the value must be a non-negative number", value));
      }
    } else {
      throw Error(
          Code::kInvalidArgument,
          fmt::format("--filter {}: unknown filter (is-official, is-automated, stars)", key));
    }
  }
  return f;
}

struct Found {
  std::string index;  // the registry
  std::string name;   // registry/repository
  oci::SearchResult result;
};

std::vector<Found> search_registry(Remote& remote, const std::string& registry, bool insecure,
                                   const std::string& term, int limit, const SearchFilter& filter) {
  auto client = remote.connector.connect(registry, insecure);
  std::vector<oci::SearchResult> results;
  try {
    results = client->search_v1(term, limit);
  } catch (const Error& e) {
    if (e.code() != Code::kNotFound) throw;
    // No search API: match the catalog, as podman does.
    for (const auto& repo : client->catalog()) {
      if (repo.find(term) != std::string::npos) results.push_back({repo, "", 0, false, false});
    }
  }
  // As podman: the first `limit` results, then the filters (so fewer than `limit` may remain).
  if (results.size() > static_cast<std::size_t>(limit)) results.resize(limit);
  std::vector<Found> out;
  for (auto& r : results) {
    if (!filter.accepts(r)) continue;
    std::string name = r.name;
    // As podman: a description is one line, in every format.
    std::replace(r.description.begin(), r.description.end(), '\n', ' ');
    // Docker Hub lists official images without "library/".
    if ((registry == "docker.io") && name.find('/') == std::string::npos) name = "library/" + name;
    out.push_back({registry, registry + "/" + name, r});
  }
  return out;
}

int run_search(const GlobalOptions& g, const SearchOptions& o) {
  if (o.format != "table" && o.format != "json") {
    throw Error(Code::kInvalidArgument, "--format: use table or json");
  }
  if (o.limit < 1) throw Error(Code::kInvalidArgument, "--limit must be at least 1");
  if (o.term.empty()) throw Error(Code::kInvalidArgument, "give a search term");
  const SearchFilter filter = parse_filters(o.filters);
  const Registries regs = load_registries(g);
  // "quay.io/term" searches that registry only; otherwise every search registry.
  std::vector<std::string> registries;
  std::string term = o.term;
  const auto split = stowage::split_domain(o.term);
  if (!split.domain.empty()) {
    registries.push_back(std::string(split.domain));
    term = std::string(split.remainder);
  } else {
    registries = regs.config.unqualified_search_registries.value_or(std::vector<std::string>{});
    if (registries.empty()) {
      throw Error(Code::kInvalidArgument,
                  fmt::format("no unqualified-search-registries are defined in {}: give the "
                              "registry in the term, e.g. quay.io/{}",
                              regs.origin.conf_path, o.term));
    }
  }
  Remote remote(g);
  std::vector<Found> found;
  int failed = 0;
  for (const auto& registry : registries) {
    try {
      auto got = search_registry(remote, registry, registry_insecure(g, regs.config, registry),
                                 term, o.limit, filter);
      found.insert(found.end(), got.begin(), got.end());
    } catch (const Error& e) {
      ++failed;
      std::cerr << "Error: searching " << registry << ": " << e.what() << "\n";
    }
  }
  if (o.format == "json") {
    json out = json::array();
    for (const auto& f : found) {
      out.push_back({{"Index", f.index},
                     {"Name", f.name},
                     {"Description", f.result.description},
                     {"Stars", f.result.star_count},
                     {"Official", f.result.is_official ? "[OK]" : ""},
                     {"Automated", f.result.is_automated ? "[OK]" : ""},
                     {"Tag", ""}});
    }
    std::cout << out.dump(4) << "\n";
  } else if (!found.empty()) {  // podman prints no header either when nothing matched
    std::size_t w_name = 4;
    for (const auto& f : found) w_name = std::max(w_name, f.name.size());
    std::cout << fmt::format("{:<{}}  {}\n", "NAME", w_name, "DESCRIPTION");
    for (const auto& f : found) {
      std::string description = f.result.description;
      for (char& c : description) {
        if (c == '\n' || c == '\r' || c == '\t') c = ' ';
      }
      if (!o.no_trunc && description.size() > 44) description = description.substr(0, 44) + "...";
      std::cout << fmt::format("{:<{}}  {}\n", f.name, w_name, description);
    }
  }
  return failed == static_cast<int>(registries.size()) ? 1 : 0;
}

}  // namespace

void add_remote_commands(CLI::App& app, const GlobalOptions& globals, int* exit_code) {
  const GlobalOptions* g = &globals;

  auto po = std::make_shared<PullOptions>();
  auto* pull = app.add_subcommand("pull", "Pull an image into the local store; prints its digest");
  pull->add_option("IMAGE", po->ref,
                   "Image reference; short names resolve through registries.conf "
                   "(aliases, unqualified-search-registries)")
      ->required();
  pull->add_flag("-q,--quiet", po->quiet, "No progress or messages, only the digest");
  pull->add_option("--parallel", po->parallel, "Layers fetched at once (default 4)");
  pull->footer(
      "With --cri-endpoint: pulls into that runtime through CRI PullImage, with the auth file's "
      "credentials for the image's registry, and prints the image ID and repo digests.");
  pull->callback([g, po, exit_code] {
    if (!g->cri_endpoint.empty()) {
      *exit_code = run_cri_pull(*g, po->ref, po->quiet);
      return;
    }
    *exit_code = run_pull(*g, *po);
  });

  auto pu = std::make_shared<PushOptions>();
  auto* push = app.add_subcommand(
      "push", "Push a local image to a registry (to DESTINATION, else under its own name)");
  push->add_option("IMAGE", pu->source, "Local image name or ID")->required();
  push->add_option("DESTINATION", pu->destination,
                   "Where to push, e.g. quay.io/team/app:1 (docker:// accepted)");
  push->add_option("--chunk-size", pu->chunk_size,
                   "Upload layers in chunks of this many bytes (default: one request per blob)");
  push->add_flag("-q,--quiet", pu->quiet, "No progress or messages, only the digest");
  push->callback([g, pu, exit_code] { *exit_code = run_push(*g, *pu); });

  auto lo = std::make_shared<LoginOptions>();
  auto* login = app.add_subcommand(
      "login", "Check credentials against a registry, then store them in the auth file");
  login->add_option("REGISTRY", lo->registry, "Registry host, e.g. quay.io or localhost:5000")
      ->required();
  login->add_option("-u,--username", lo->username, "User name");
  login->add_option("-p,--password", lo->password,
                    "Password (visible to others; prefer --password-stdin)");
  login->add_flag("--password-stdin", lo->password_stdin, "Read the password from standard input");
  login->add_flag("--get-login", lo->get_login, "Print the user name stored for the registry");
  login->callback([g, lo, exit_code] { *exit_code = run_login(*g, *lo); });

  auto logout_registry = std::make_shared<std::string>();
  auto logout_all = std::make_shared<bool>(false);
  auto* logout = app.add_subcommand("logout", "Remove stored credentials of a registry");
  logout->add_option("REGISTRY", *logout_registry, "Registry host");
  logout->add_flag("-a,--all", *logout_all, "Remove the credentials of every registry");
  logout->callback([g, logout_registry, logout_all, exit_code] {
    *exit_code = run_logout(*g, *logout_registry, *logout_all);
  });

  auto so = std::make_shared<SearchOptions>();
  auto* search = app.add_subcommand(
      "search", "Search registries for images (Docker Hub style search API, else the catalog)");
  search
      ->add_option("TERM", so->term, "What to look for; REGISTRY/TERM searches that registry only")
      ->required();
  search->add_option("--limit", so->limit, "Results per registry (default 25)");
  search->add_option("-f,--filter", so->filters,
                     "is-official=true|false, is-automated=true|false, stars=N (at least N)");
  search->add_flag("--no-trunc", so->no_trunc, "Do not shorten descriptions");
  search->add_option("--format", so->format, "table or json");
  search->callback([g, so, exit_code] { *exit_code = run_search(*g, *so); });
}

}  // namespace stowctl
