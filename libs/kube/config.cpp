#include "kube/config.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <set>

#include "base/error.h"
#include "base/files.h"
#include "base/text.h"
#include "kube/encoding.h"

namespace stowage::kube {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr std::size_t kMaxKubeconfigBytes = 4u << 20;
constexpr int kMaxFlowDepth = 64;
constexpr int kMaxDepth = 64;
// Nodes the walk may visit, aliases expanded: a kubeconfig has a few hundred.
constexpr std::size_t kNodeBudget = 200'000;
constexpr std::string_view kExecExtension = "client.authentication.k8s.io/exec";

bool has_control_char(std::string_view s) {
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      return true;
    }
  }
  return false;
}

// Walks the YAML tree of one file, reading known fields; every message starts with the file and
// the path of the field.
class Walker {
 public:
  Walker(std::string file, fs::path dir) : file_(std::move(file)), dir_(std::move(dir)) {}

  [[noreturn]] void fail(const std::string& where, std::string_view what) const {
    throw_invalid(fmt::format("{}: {}: {}", file_, where, what));
  }

  void spend(const std::string& where) {
    if (budget_ == 0) {
      fail(where, "too many nodes (after expanding aliases)");
    }
    --budget_;
  }

  // The entries of a map by key; an absent or null node is an empty map.
  std::vector<std::pair<std::string, YAML::Node>> entries(const YAML::Node& n,
                                                          const std::string& where) {
    std::vector<std::pair<std::string, YAML::Node>> out;
    if (!n.IsDefined() || n.IsNull()) {
      return out;
    }
    if (!n.IsMap()) {
      fail(where, "must be a mapping");
    }
    std::set<std::string> seen;
    for (auto it = n.begin(); it != n.end(); ++it) {
      spend(where);
      if (!it->first.IsScalar()) {
        fail(where, "a mapping key must be a string");
      }
      const std::string key = it->first.Scalar();
      if (!seen.insert(key).second) {
        fail(where, fmt::format("duplicate key \"{}\"", key));
      }
      out.emplace_back(key, it->second);
    }
    return out;
  }

  // The elements of a sequence; an absent or null node is empty.
  std::vector<YAML::Node> elements(const YAML::Node& n, const std::string& where) {
    std::vector<YAML::Node> out;
    if (!n.IsDefined() || n.IsNull()) {
      return out;
    }
    if (!n.IsSequence()) {
      fail(where, "must be a list");
    }
    for (auto it = n.begin(); it != n.end(); ++it) {
      spend(where);
      out.push_back(*it);
    }
    return out;
  }

  std::string str(const YAML::Node& n, const std::string& where) {
    spend(where);
    if (n.IsNull()) {
      return {};
    }
    if (!n.IsScalar()) {
      fail(where, "must be a string");
    }
    return n.Scalar();
  }

  // A string that ends up in an HTTP header or a command line: no control characters.
  std::string clean_str(const YAML::Node& n, const std::string& where) {
    std::string s = str(n, where);
    if (has_control_char(s)) {
      fail(where, "contains control characters");
    }
    return s;
  }

  bool boolean(const YAML::Node& n, const std::string& where) {
    spend(where);
    if (n.IsNull()) {
      return false;
    }
    if (n.IsScalar()) {
      const std::string& s = n.Scalar();
      if (s == "true" || s == "True" || s == "TRUE") {
        return true;
      }
      if (s == "false" || s == "False" || s == "FALSE") {
        return false;
      }
    }
    fail(where, "must be true or false");
  }

  std::vector<std::string> strings(const YAML::Node& n, const std::string& where) {
    std::vector<std::string> out;
    const auto items = elements(n, where);
    for (std::size_t i = 0; i < items.size(); ++i) {
      out.push_back(clean_str(items[i], fmt::format("{}[{}]", where, i)));
    }
    return out;
  }

  // base64 → bytes; the message never shows the value.
  std::string data(const YAML::Node& n, const std::string& where) {
    const std::string text = str(n, where);
    auto decoded = base64_decode(text);
    if (!decoded) {
      fail(where, "invalid base64");
    }
    return std::move(*decoded);
  }

  std::string path(const YAML::Node& n, const std::string& where) {
    const std::string p = clean_str(n, where);
    return resolve(p);
  }

  std::string resolve(const std::string& p) const {
    if (p.empty()) {
      return p;
    }
    const fs::path fp(p);
    if (fp.is_absolute()) {
      return p;
    }
    return (dir_ / fp).lexically_normal().string();
  }

  json to_json(const YAML::Node& n, const std::string& where, int depth) {
    if (depth > kMaxDepth) {
      fail(where, fmt::format("nested deeper than {} levels", kMaxDepth));
    }
    spend(where);
    switch (n.Type()) {
      case YAML::NodeType::Null:
      case YAML::NodeType::Undefined: return nullptr;
      case YAML::NodeType::Sequence: {
        json a = json::array();
        for (const auto& e : n) {
          a.push_back(to_json(e, where, depth + 1));
        }
        return a;
      }
      case YAML::NodeType::Map: {
        json o = json::object();
        for (const auto& kv : n) {
          if (!kv.first.IsScalar()) {
            fail(where, "a mapping key must be a string");
          }
          o[kv.first.Scalar()] = to_json(kv.second, where, depth + 1);
        }
        return o;
      }
      case YAML::NodeType::Scalar: {
        const std::string& s = n.Scalar();
        if (n.Tag() == "!") {
          return s;  // quoted: a string
        }
        if (s == "true" || s == "True" || s == "TRUE") {
          return true;
        }
        if (s == "false" || s == "False" || s == "FALSE") {
          return false;
        }
        if (s == "null" || s == "Null" || s == "NULL" || s == "~") {
          return nullptr;
        }
        if (!s.empty() && s.size() < 19 &&
            s.find_first_not_of("-0123456789") == std::string::npos &&
            s.find('-', 1) == std::string::npos && s != "-") {
          return std::stoll(s);
        }
        return s;
      }
    }
    return nullptr;
  }

  KubeconfigCluster cluster(const YAML::Node& n, const std::string& where) {
    KubeconfigCluster c;
    for (const auto& [k, v] : entries(n, where)) {
      const std::string f = fmt::format("{}.{}", where, k);
      if (k == "server") {
        c.server = clean_str(v, f);
      } else if (k == "tls-server-name") {
        c.tls_server_name = clean_str(v, f);
      } else if (k == "insecure-skip-tls-verify") {
        c.insecure_skip_tls_verify = boolean(v, f);
      } else if (k == "certificate-authority") {
        c.certificate_authority = path(v, f);
      } else if (k == "certificate-authority-data") {
        c.certificate_authority_data = data(v, f);
      } else if (k == "proxy-url") {
        c.proxy_url = clean_str(v, f);
      } else if (k == "disable-compression") {
        c.disable_compression = boolean(v, f);
      } else if (k == "extensions") {
        const auto items = elements(v, f);
        for (std::size_t i = 0; i < items.size(); ++i) {
          const std::string fi = fmt::format("{}[{}]", f, i);
          std::string name;
          YAML::Node extension;
          for (const auto& [ek, ev] : entries(items[i], fi)) {
            if (ek == "name") {
              name = str(ev, fi + ".name");
            }
            if (ek == "extension") {
              extension = ev;
            }
          }
          if (name == kExecExtension) {
            c.exec_extension = to_json(extension, fi + ".extension", 0);
          }
        }
      }
    }
    return c;
  }

  ExecConfig exec(const YAML::Node& n, const std::string& where) {
    ExecConfig e;
    for (const auto& [k, v] : entries(n, where)) {
      const std::string f = fmt::format("{}.{}", where, k);
      if (k == "apiVersion") {
        e.api_version = str(v, f);
      } else if (k == "command") {
        e.command = clean_str(v, f);
        if (e.command.find('/') != std::string::npos) {
          e.command = resolve(e.command);
        }
      } else if (k == "args") {
        e.args = strings(v, f);
      } else if (k == "env") {
        const auto items = elements(v, f);
        for (std::size_t i = 0; i < items.size(); ++i) {
          const std::string fi = fmt::format("{}[{}]", f, i);
          ExecEnvVar var;
          for (const auto& [ek, ev] : entries(items[i], fi)) {
            if (ek == "name") {
              var.name = clean_str(ev, fi + ".name");
            }
            if (ek == "value") {
              var.value = str(ev, fi + ".value");
            }
          }
          if (var.value.find('\0') != std::string::npos) {
            fail(fi + ".value", "contains NUL");
          }
          e.env.push_back(std::move(var));
        }
      } else if (k == "installHint") {
        e.install_hint = str(v, f);
      } else if (k == "provideClusterInfo") {
        e.provide_cluster_info = boolean(v, f);
      } else if (k == "interactiveMode") {
        e.interactive_mode = str(v, f);
      }
    }
    try {
      validate_exec_config(e, where);
    } catch (const Error& err) {
      throw err.wrap(file_);
    }
    return e;
  }

  KubeconfigUser user(const YAML::Node& n, const std::string& where) {
    KubeconfigUser u;
    for (const auto& [k, v] : entries(n, where)) {
      const std::string f = fmt::format("{}.{}", where, k);
      if (k == "client-certificate") {
        u.client_certificate = path(v, f);
      } else if (k == "client-certificate-data") {
        u.client_certificate_data = data(v, f);
      } else if (k == "client-key") {
        u.client_key = path(v, f);
      } else if (k == "client-key-data") {
        u.client_key_data = data(v, f);
      } else if (k == "token") {
        u.token = clean_str(v, f);
      } else if (k == "tokenFile") {
        u.token_file = path(v, f);
      } else if (k == "username") {
        u.username = str(v, f);
      } else if (k == "password") {
        u.password = str(v, f);
      } else if (k == "auth-provider") {
        u.auth_provider = "unnamed";
        for (const auto& [pk, pv] : entries(v, f)) {
          if (pk == "name" && pv.IsScalar() && !pv.Scalar().empty()) {
            u.auth_provider = pv.Scalar();
          }
        }
      } else if (k == "exec") {
        if (!v.IsNull()) {
          u.exec = exec(v, f);
        }
      } else if (k == "as") {
        u.impersonate.user = clean_str(v, f);
      } else if (k == "as-uid") {
        u.impersonate.uid = clean_str(v, f);
      } else if (k == "as-groups") {
        u.impersonate.groups = strings(v, f);
      } else if (k == "as-user-extra") {
        for (const auto& [ek, ev] : entries(v, f)) {
          if (ek.empty() || has_control_char(ek)) {
            fail(f, "invalid key");
          }
          u.impersonate.extra[ek] = strings(ev, fmt::format("{}.{}", f, ek));
        }
      }
    }
    return u;
  }

  KubeconfigContext context(const YAML::Node& n, const std::string& where) {
    KubeconfigContext c;
    for (const auto& [k, v] : entries(n, where)) {
      const std::string f = fmt::format("{}.{}", where, k);
      if (k == "cluster") {
        c.cluster = str(v, f);
      }
      if (k == "user") {
        c.user = str(v, f);
      }
      if (k == "namespace") {
        c.namespace_ = clean_str(v, f);
      }
    }
    return c;
  }

  // clusters / users / contexts: a list of {name, <item>}; names are unique within a file.
  template <typename T, typename Fn>
  void named_list(const YAML::Node& n, const std::string& list, const char* item,
                  std::map<std::string, T>& out, Fn&& parse) {
    const auto items = elements(n, list);
    for (std::size_t i = 0; i < items.size(); ++i) {
      const std::string where = fmt::format("{}[{}]", list, i);
      std::string name;
      bool has_name = false;
      YAML::Node body;
      for (const auto& [k, v] : entries(items[i], where)) {
        if (k == "name") {
          name = str(v, where + ".name");
          has_name = true;
        } else if (k == item) {
          body = v;
        }
      }
      if (!has_name || name.empty()) {
        fail(where + ".name", "required");
      }
      const std::string named = fmt::format("{} \"{}\"", where, name);
      T value = parse(body, named + ": " + item);
      value.origin = fmt::format("{}: {}", file_, named);
      if (!out.emplace(name, std::move(value)).second) {
        fail(named, fmt::format("duplicate name \"{}\" in {}", name, list));
      }
    }
  }

  Kubeconfig config(const YAML::Node& root) {
    Kubeconfig kc;
    kc.files.push_back(file_);
    for (const auto& [k, v] : entries(root, "top level")) {
      if (k == "clusters") {
        named_list(v, k, "cluster", kc.clusters,
                   [&](const YAML::Node& b, const std::string& w) { return cluster(b, w); });
      } else if (k == "users") {
        named_list(v, k, "user", kc.users,
                   [&](const YAML::Node& b, const std::string& w) { return user(b, w); });
      } else if (k == "contexts") {
        named_list(v, k, "context", kc.contexts,
                   [&](const YAML::Node& b, const std::string& w) { return context(b, w); });
      } else if (k == "current-context") {
        kc.current_context = str(v, k);
      }
    }
    return kc;
  }

 private:
  std::string file_;
  fs::path dir_;
  std::size_t budget_ = kNodeBudget;
};

std::string read_required(const std::string& path, const std::string& origin,
                          std::string_view field) {
  std::optional<std::string> text;
  try {
    text = read_file(path);
  } catch (const Error& e) {
    throw e.wrap(fmt::format("{}: {}", origin, field));
  }
  if (!text) {
    throw_not_found(fmt::format("{}: {}: file {} does not exist", origin, field, path));
  }
  return std::move(*text);
}

std::string files_list(const Kubeconfig& kc) {
  if (kc.files.empty()) {
    return "kubeconfig";
  }
  std::string out;
  for (const auto& f : kc.files) {
    out += (out.empty() ? "" : ", ") + f;
  }
  return "kubeconfig " + out;
}

std::string normalize_server(std::string server) {
  if (server.find("://") == std::string::npos) {
    server = "https://" + server;
  }
  while (server.size() > 1 && server.back() == '/') {
    server.pop_back();
  }
  return server;
}

}  // namespace

Kubeconfig parse_kubeconfig(std::string_view text, const fs::path& file) {
  const std::string name = file.string();
  if (text.size() > kMaxKubeconfigBytes) {
    throw_invalid(fmt::format("{}: larger than {} MiB", name, kMaxKubeconfigBytes >> 20));
  }
  if (const auto reason = unsafe_yaml_reason(text, kMaxFlowDepth)) {
    throw_invalid(fmt::format("{}: invalid YAML: {}", name, *reason));
  }
  Walker walker(name, file.parent_path());
  const auto docs = split_yaml_documents(text);
  if (docs.empty()) {
    return walker.config(YAML::Node());
  }
  if (docs.size() > 1) {
    throw_invalid(
        fmt::format("{}: holds {} YAML documents, a kubeconfig is one", name, docs.size()));
  }
  YAML::Node root;
  try {
    root = YAML::Load(docs[0].text);
  } catch (const YAML::Exception& e) {
    throw_invalid(fmt::format("{}: invalid YAML: line {}: {}", name,
                              docs[0].first_line + e.mark.line + 1, e.msg));
  }
  try {
    return walker.config(root);
  } catch (const YAML::Exception& e) {
    throw_invalid(fmt::format("{}: invalid YAML: {}", name, e.msg));
  }
}

void merge_kubeconfig(Kubeconfig& into, const Kubeconfig& later) {
  for (const auto& [k, v] : later.clusters) {
    into.clusters.emplace(k, v);
  }
  for (const auto& [k, v] : later.users) {
    into.users.emplace(k, v);
  }
  for (const auto& [k, v] : later.contexts) {
    into.contexts.emplace(k, v);
  }
  if (into.current_context.empty()) {
    into.current_context = later.current_context;
  }
  into.files.insert(into.files.end(), later.files.begin(), later.files.end());
}

std::vector<fs::path> kubeconfig_paths(const std::optional<std::string>& kubeconfig_env,
                                       const std::optional<std::string>& home) {
  std::vector<fs::path> out;
  if (kubeconfig_env && !kubeconfig_env->empty()) {
    std::set<std::string> seen;
    std::string_view rest = *kubeconfig_env;
    while (true) {
      const auto colon = rest.find(':');
      const std::string item(rest.substr(0, colon));
      if (!item.empty() && seen.insert(item).second) {
        out.emplace_back(item);
      }
      if (colon == std::string_view::npos) {
        break;
      }
      rest.remove_prefix(colon + 1);
    }
    return out;
  }
  if (home && !home->empty()) {
    out.push_back(fs::path(*home) / ".kube" / "config");
  }
  return out;
}

SelectedContext select_context(const Kubeconfig& kc, std::string_view context) {
  SelectedContext s;
  s.name = context.empty() ? kc.current_context : std::string(context);
  if (s.name.empty()) {
    throw_not_found(
        fmt::format("{}: no current-context, and no context was chosen", files_list(kc)));
  }
  const auto ctx = kc.contexts.find(s.name);
  if (ctx == kc.contexts.end()) {
    throw_not_found(fmt::format("{}: context \"{}\" not found", files_list(kc), s.name));
  }
  s.context = ctx->second;
  const std::string& origin = s.context.origin;
  if (s.context.cluster.empty()) {
    throw_invalid(fmt::format("{}: context.cluster: required", origin));
  }
  const auto cl = kc.clusters.find(s.context.cluster);
  if (cl == kc.clusters.end()) {
    throw_not_found(
        fmt::format("{}: context.cluster: cluster \"{}\" not found", origin, s.context.cluster));
  }
  s.cluster_name = cl->first;
  s.cluster = cl->second;
  const auto& c = s.cluster;
  if (c.server.empty()) {
    throw_invalid(fmt::format("{}: cluster.server: required", c.origin));
  }
  if (c.insecure_skip_tls_verify &&
      (!c.certificate_authority.empty() || !c.certificate_authority_data.empty())) {
    throw_invalid(
        fmt::format("{}: cluster: a certificate authority together with "
                    "insecure-skip-tls-verify is not allowed",
                    c.origin));
  }
  if (!s.context.user.empty()) {
    const auto u = kc.users.find(s.context.user);
    if (u == kc.users.end()) {
      throw_not_found(
          fmt::format("{}: context.user: user \"{}\" not found", origin, s.context.user));
    }
    s.user_name = u->first;
    s.user = u->second;
  }
  const auto& u = s.user;
  const bool has_cert = !u.client_certificate.empty() || !u.client_certificate_data.empty();
  const bool has_key = !u.client_key.empty() || !u.client_key_data.empty();
  if (has_cert != has_key) {
    throw_invalid(fmt::format("{}: user: {} without {}", u.origin,
                              has_cert ? "client-certificate" : "client-key",
                              has_cert ? "client-key" : "client-certificate"));
  }
  if (!u.auth_provider.empty()) {
    throw_invalid(
        fmt::format("{}: user.auth-provider: \"{}\" is not supported (auth providers "
                    "were removed from Kubernetes; use an exec plugin)",
                    u.origin, u.auth_provider));
  }
  const bool token = !u.token.empty() || !u.token_file.empty();
  const bool basic = !u.username.empty() || !u.password.empty();
  if (basic) {
    throw_invalid(
        fmt::format("{}: user.username/password: basic authentication is not supported "
                    "(removed from kube-apiserver in 1.19)",
                    u.origin));
  }
  if (token && u.exec) {
    throw_invalid(
        fmt::format("{}: user: more than one authentication method (token and exec)", u.origin));
  }
  return s;
}

Kubeconfig load_kubeconfig(const std::vector<fs::path>& files) {
  Kubeconfig merged;
  std::string tried;
  bool any = false;
  for (const auto& f : files) {
    const fs::path abs = fs::absolute(f);
    std::optional<std::string> text;
    try {
      text = read_file(abs);
    } catch (const Error& e) {
      throw e.wrap("reading kubeconfig");
    }
    tried += (tried.empty() ? "" : ", ") + abs.string();
    if (!text) {
      continue;
    }
    merge_kubeconfig(merged, parse_kubeconfig(*text, abs));
    any = true;
  }
  if (!any) {
    throw_not_found(files.empty() ? std::string("no kubeconfig file to read")
                                  : fmt::format("kubeconfig not found: {}", tried));
  }
  return merged;
}

RestConfig rest_config_from_kubeconfig(const Kubeconfig& kc, std::string_view context,
                                       Clock& clock) {
  const SelectedContext s = select_context(kc, context);
  const auto& c = s.cluster;
  const auto& u = s.user;
  RestConfig rc;
  rc.server = normalize_server(c.server);
  rc.tls_server_name = c.tls_server_name;
  rc.proxy_url = c.proxy_url;
  rc.tls.insecure = c.insecure_skip_tls_verify;
  rc.tls.ca_pem =
      !c.certificate_authority_data.empty()
          ? c.certificate_authority_data
          : (c.certificate_authority.empty() ? std::string()
                                             : read_required(c.certificate_authority, c.origin,
                                                             "cluster.certificate-authority"));
  rc.tls.client_cert_pem =
      !u.client_certificate_data.empty()
          ? u.client_certificate_data
          : (u.client_certificate.empty()
                 ? std::string()
                 : read_required(u.client_certificate, u.origin, "user.client-certificate"));
  rc.tls.client_key_pem =
      !u.client_key_data.empty()
          ? u.client_key_data
          : (u.client_key.empty() ? std::string()
                                  : read_required(u.client_key, u.origin, "user.client-key"));
  rc.impersonate = u.impersonate;
  if (!s.context.namespace_.empty()) {
    rc.namespace_ = s.context.namespace_;
  }
  if (u.exec) {
    json cluster = {{"server", rc.server},
                    {"insecure-skip-tls-verify", c.insecure_skip_tls_verify},
                    {"disable-compression", c.disable_compression}};
    if (!c.tls_server_name.empty()) {
      cluster["tls-server-name"] = c.tls_server_name;
    }
    if (!rc.tls.ca_pem.empty()) {
      cluster["certificate-authority-data"] = base64_encode(rc.tls.ca_pem);
    }
    if (!c.proxy_url.empty()) {
      cluster["proxy-url"] = c.proxy_url;
    }
    if (c.exec_extension) {
      cluster["config"] = *c.exec_extension;
    }
    rc.token_source = std::make_shared<ExecTokenSource>(*u.exec, std::move(cluster), clock);
  } else if (!u.token_file.empty()) {
    try {
      rc.token_source = std::make_shared<FileTokenSource>(u.token_file, clock, u.token);
    } catch (const Error& e) {
      throw e.wrap(fmt::format("{}: user.tokenFile", u.origin));
    }
  } else if (!u.token.empty()) {
    rc.token_source = std::make_shared<StaticTokenSource>(u.token);
  }
  return rc;
}

std::optional<std::string> process_env(const std::string& name) {
  const char* v = std::getenv(name.c_str());
  if (v == nullptr) {
    return std::nullopt;
  }
  return std::string(v);
}

RestConfig in_cluster_config(Clock& clock, const InClusterOptions& options) {
  const auto host = options.env("KUBERNETES_SERVICE_HOST");
  const auto port = options.env("KUBERNETES_SERVICE_PORT");
  if (!host || host->empty() || !port || port->empty()) {
    throw_not_found(
        "in-cluster config: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must "
        "be set (not running in a pod?)");
  }
  if (has_control_char(*host) || host->find('/') != std::string::npos ||
      port->find_first_not_of("0123456789") != std::string::npos) {
    throw_invalid(
        "in-cluster config: KUBERNETES_SERVICE_HOST or KUBERNETES_SERVICE_PORT is "
        "malformed");
  }
  const fs::path dir = options.root / kServiceAccountDir;
  RestConfig rc;
  const bool ipv6 = host->find(':') != std::string::npos && host->front() != '[';
  rc.server = ipv6 ? fmt::format("https://[{}]:{}", *host, *port)
                   : fmt::format("https://{}:{}", *host, *port);
  try {
    rc.token_source = std::make_shared<FileTokenSource>(dir / "token", clock);
  } catch (const Error& e) {
    throw e.wrap("in-cluster config");
  }
  rc.tls.ca_pem = read_required((dir / "ca.crt").string(), "in-cluster config", "CA");
  if (const auto ns = read_file(dir / "namespace")) {
    std::string trimmed = *ns;
    while (!trimmed.empty() && (trimmed.back() == '\n' || trimmed.back() == ' ' ||
                                trimmed.back() == '\r' || trimmed.back() == '\t')) {
      trimmed.pop_back();
    }
    if (!trimmed.empty()) {
      rc.namespace_ = trimmed;
    }
  }
  return rc;
}

RestConfig load_rest_config(Clock& clock, const LoadOptions& options) {
  if (!options.kubeconfig.empty()) {
    return rest_config_from_kubeconfig(load_kubeconfig({options.kubeconfig}), options.context,
                                       clock);
  }
  const auto env_list = options.env("KUBECONFIG");
  if (env_list && !env_list->empty()) {
    return rest_config_from_kubeconfig(load_kubeconfig(kubeconfig_paths(env_list, std::nullopt)),
                                       options.context, clock);
  }
  if (const auto host = options.env("KUBERNETES_SERVICE_HOST"); host && !host->empty()) {
    return in_cluster_config(clock, {options.in_cluster_root, options.env});
  }
  const auto paths = kubeconfig_paths(std::nullopt, options.env("HOME"));
  if (paths.empty()) {
    throw_not_found("no kubeconfig: --kubeconfig, KUBECONFIG and HOME are unset, and not in a pod");
  }
  return rest_config_from_kubeconfig(load_kubeconfig(paths), options.context, clock);
}

}  // namespace stowage::kube
