#include "kube/config.h"

#include <gtest/gtest.h>

#include "base/error.h"
#include "fakes.h"
#include "kube/encoding.h"

namespace stowage::kube {
namespace {

using nlohmann::json;
using testing::TempDir;
using testing::write_file;

const std::string kCaPem = "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n";
const std::string kCertPem = "-----BEGIN CERTIFICATE-----\nCERT\n-----END CERTIFICATE-----\n";
const std::string kKeyPem = "-----BEGIN PRIVATE KEY-----\nKEY\n-----END PRIVATE KEY-----\n";

Error error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no error";
  return Error(Code::kInternal, "");
}

std::string full_kubeconfig() {
  return R"(apiVersion: v1
kind: Config
preferences: {}
current-context: admin@dev
clusters:
- name: dev
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority-data: )" +
         base64_encode(kCaPem) + R"(
    tls-server-name: kubernetes
    proxy-url: http://proxy:3128
    extensions:
    - name: client.authentication.k8s.io/exec
      extension: {audience: dev, retries: 3, nested: [a, {b: true}]}
- name: lab
  cluster:
    server: lab.example.com:443
    insecure-skip-tls-verify: true
users:
- name: admin
  user:
    client-certificate-data: )" +
         base64_encode(kCertPem) + R"(
    client-key-data: )" +
         base64_encode(kKeyPem) + R"(
    as: jane
    as-groups: [ops, dev]
    as-user-extra: {scopes: [view]}
- name: robot
  user:
    token: abc.def
- name: cloud
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: cloud-auth
      args: [token, --cluster, dev]
      env: [{name: REGION, value: eu-1}]
      installHint: install cloud-auth
      provideClusterInfo: true
contexts:
- name: admin@dev
  context: {cluster: dev, user: admin, namespace: stowage-system}
- name: robot@lab
  context: {cluster: lab, user: robot}
- name: cloud@dev
  context: {cluster: dev, user: cloud}
)";
}

TEST(Kubeconfig, ParsesEveryField) {
  const Kubeconfig kc = parse_kubeconfig(full_kubeconfig(), "/home/u/.kube/config");
  EXPECT_EQ(kc.current_context, "admin@dev");
  ASSERT_EQ(kc.clusters.size(), 2u);
  const auto& dev = kc.clusters.at("dev");
  EXPECT_EQ(dev.server, "https://127.0.0.1:6443");
  EXPECT_EQ(dev.certificate_authority_data, kCaPem);
  EXPECT_EQ(dev.tls_server_name, "kubernetes");
  EXPECT_EQ(dev.proxy_url, "http://proxy:3128");
  EXPECT_EQ(dev.exec_extension,
            json::parse(R"({"audience":"dev","retries":3,"nested":["a",{"b":true}]})"));
  EXPECT_EQ(dev.origin, "/home/u/.kube/config: clusters[0] \"dev\"");
  EXPECT_TRUE(kc.clusters.at("lab").insecure_skip_tls_verify);

  const auto& admin = kc.users.at("admin");
  EXPECT_EQ(admin.client_certificate_data, kCertPem);
  EXPECT_EQ(admin.client_key_data, kKeyPem);
  EXPECT_EQ(admin.impersonate, (Impersonation{"jane", "", {"ops", "dev"}, {{"scopes", {"view"}}}}));
  EXPECT_EQ(kc.users.at("robot").token, "abc.def");
  const auto& exec = kc.users.at("cloud").exec;
  ASSERT_TRUE(exec);
  EXPECT_EQ(exec->api_version, kExecApiV1Beta1);
  EXPECT_EQ(exec->command, "cloud-auth");  // a bare name stays a PATH lookup
  EXPECT_EQ(exec->args, (std::vector<std::string>{"token", "--cluster", "dev"}));
  EXPECT_EQ(exec->env, (std::vector<ExecEnvVar>{{"REGION", "eu-1"}}));
  EXPECT_EQ(exec->install_hint, "install cloud-auth");
  EXPECT_TRUE(exec->provide_cluster_info);

  const auto& ctx = kc.contexts.at("admin@dev");
  EXPECT_EQ(ctx.cluster, "dev");
  EXPECT_EQ(ctx.user, "admin");
  EXPECT_EQ(ctx.namespace_, "stowage-system");
}

TEST(Kubeconfig, JsonIsAKubeconfigToo) {
  const Kubeconfig kc = parse_kubeconfig(
      R"({"clusters":[{"name":"c","cluster":{"server":"https://h"}}],
          "users":[{"name":"u","user":{"token":"t"}}],
          "contexts":[{"name":"x","context":{"cluster":"c","user":"u"}}],
          "current-context":"x"})",
      "/k.json");
  EXPECT_EQ(select_context(kc, "").cluster.server, "https://h");
  EXPECT_EQ(select_context(kc, "").user.token, "t");
}

TEST(Kubeconfig, RelativePathsResolveAgainstTheFile) {
  const Kubeconfig kc = parse_kubeconfig(R"(
clusters:
- name: c
  cluster: {server: "https://h", certificate-authority: ca.crt}
users:
- name: u
  user:
    client-certificate: ../certs/u.crt
    client-key: /etc/keys/u.key
    tokenFile: ./tok
    exec: {apiVersion: client.authentication.k8s.io/v1, command: ./bin/plugin, interactiveMode: Never}
)",
                                         "/home/u/.kube/config");
  EXPECT_EQ(kc.clusters.at("c").certificate_authority, "/home/u/.kube/ca.crt");
  const auto& u = kc.users.at("u");
  EXPECT_EQ(u.client_certificate, "/home/u/certs/u.crt");
  EXPECT_EQ(u.client_key, "/etc/keys/u.key");
  EXPECT_EQ(u.token_file, "/home/u/.kube/tok");
  EXPECT_EQ(u.exec->command, "/home/u/.kube/bin/plugin");
}

TEST(Kubeconfig, MergeLetsTheFirstFileWin) {
  Kubeconfig merged = parse_kubeconfig(R"(
current-context: a
clusters: [{name: shared, cluster: {server: "https://first"}}]
contexts: [{name: a, context: {cluster: shared}}]
)",
                                       "/one");
  merge_kubeconfig(merged, parse_kubeconfig(R"(
current-context: b
clusters:
- {name: shared, cluster: {server: "https://second"}}
- {name: only-second, cluster: {server: "https://2"}}
users: [{name: u2, user: {token: t2}}]
contexts:
- {name: a, context: {cluster: only-second}}
- {name: b, context: {cluster: only-second, user: u2}}
)",
                                            "/two"));
  EXPECT_EQ(merged.current_context, "a");
  EXPECT_EQ(merged.clusters.at("shared").server, "https://first");
  EXPECT_EQ(merged.clusters.at("only-second").server, "https://2");
  EXPECT_EQ(merged.contexts.at("a").cluster, "shared");
  EXPECT_EQ(merged.contexts.at("b").user, "u2");
  EXPECT_EQ(merged.files, (std::vector<std::string>{"/one", "/two"}));

  Kubeconfig no_current = parse_kubeconfig("clusters: []\n", "/three");
  merge_kubeconfig(no_current, parse_kubeconfig("current-context: later\n", "/four"));
  EXPECT_EQ(no_current.current_context, "later");
}

TEST(Kubeconfig, PathsFromTheEnvironment) {
  using P = std::vector<std::filesystem::path>;
  EXPECT_EQ(kubeconfig_paths("/a:/b::/a:/c", "/home/u"), (P{"/a", "/b", "/c"}));
  EXPECT_EQ(kubeconfig_paths("", "/home/u"), (P{"/home/u/.kube/config"}));
  EXPECT_EQ(kubeconfig_paths(std::nullopt, "/home/u"), (P{"/home/u/.kube/config"}));
  EXPECT_EQ(kubeconfig_paths(std::nullopt, std::nullopt), P{});
  EXPECT_EQ(kubeconfig_paths("rel/config", std::nullopt), (P{"rel/config"}));
}

TEST(Kubeconfig, BadBase64NamesFileAndFieldButNotTheValue) {
  const Error e = error_of([] {
    parse_kubeconfig(R"(
users:
- name: alice
  user: {client-key-data: "c2VjcmV0LWtleQ==!!"}
)",
                     "/home/u/.kube/config");
  });
  EXPECT_EQ(e.code(), Code::kInvalidArgument);
  EXPECT_STREQ(e.what(),
               "/home/u/.kube/config: users[0] \"alice\": user.client-key-data: invalid base64");
}

TEST(Kubeconfig, RefusesMalformedFiles) {
  const struct {
    const char* text;
    const char* message_part;
  } cases[] = {
      {"clusters: {name: x}", "clusters: must be a list"},
      {"clusters: [{cluster: {server: s}}]", "clusters[0].name: required"},
      {"clusters: [{name: a, cluster: {server: s}}, {name: a, cluster: {}}]",
       "clusters[1] \"a\": duplicate name \"a\" in clusters"},
      {"clusters: [{name: a, cluster: {insecure-skip-tls-verify: maybe}}]",
       "cluster.insecure-skip-tls-verify: must be true or false"},
      {"users: [{name: u, user: {token: [a]}}]", "user.token: must be a string"},
      {"users: [{name: u, user: {token: \"a\\r\\nX-Evil: 1\"}}]",
       "user.token: contains control characters"},
      {"users: [{name: u, user: {exec: {command: x}}}]", "user.exec.apiVersion: required"},
      {"users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1alpha1, "
       "command: x}}}]",
       "is not supported"},
      {"users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: "
       "x}}}]",
       "user.exec.interactiveMode: required"},
      {"users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: x, "
       "interactiveMode: Always}}}]",
       "Always needs a terminal"},
      {"- just\n- a list\n", "top level: must be a mapping"},
      {"plain text", "top level: must be a mapping"},
      {"a: 1\n---\nb: 2\n", "holds 2 YAML documents"},
      {"clusters: [\n", "invalid YAML: line"},
      {"a: 1\na: 2\n", "duplicate key \"a\""},
  };
  for (const auto& c : cases) {
    const Error e = error_of([&] { parse_kubeconfig(c.text, "/k"); });
    EXPECT_EQ(e.code(), Code::kInvalidArgument) << c.text;
    EXPECT_NE(std::string(e.what()).find(c.message_part), std::string::npos)
        << c.text << " -> " << e.what();
    EXPECT_TRUE(std::string(e.what()).starts_with("/k: ")) << e.what();
  }
}

TEST(Kubeconfig, RefusesHostileYaml) {
  std::string deep(200, '[');
  std::string bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  for (char c = 'b'; c <= 'k'; ++c) {
    bomb += std::string(1, c) + ": &" + c + " [*" + char(c - 1) + ", *" + char(c - 1) + ", *" +
            char(c - 1) + ", *" + char(c - 1) + ", *" + char(c - 1) + ", *" + char(c - 1) + ", *" +
            char(c - 1) + ", *" + char(c - 1) + ", *" + char(c - 1) + ", *" + char(c - 1) + "]\n";
  }
  const std::string alias_bomb =
      bomb +
      "clusters:\n- name: c\n  cluster:\n    server: s\n    extensions:\n"
      "    - {name: client.authentication.k8s.io/exec, extension: *k}\n";
  const std::string inputs[] = {
      std::string("clusters: []\x01\n"), "clusters: [\xff]\n", "x: " + deep, alias_bomb,
      std::string(5u << 20, '#'),
  };
  for (const auto& text : inputs) {
    const Error e = error_of([&] { parse_kubeconfig(text, "/k"); });
    EXPECT_EQ(e.code(), Code::kInvalidArgument) << text.substr(0, 40);
  }
}

TEST(SelectContext, ChoosesCurrentOrNamed) {
  const Kubeconfig kc = parse_kubeconfig(full_kubeconfig(), "/k");
  const SelectedContext cur = select_context(kc, "");
  EXPECT_EQ(cur.name, "admin@dev");
  EXPECT_EQ(cur.cluster_name, "dev");
  EXPECT_EQ(cur.user_name, "admin");
  const SelectedContext lab = select_context(kc, "robot@lab");
  EXPECT_EQ(lab.cluster.server, "lab.example.com:443");
  EXPECT_EQ(lab.user.token, "abc.def");
}

TEST(SelectContext, RefusesWhatCannotWork) {
  const std::string clusters =
      "clusters: [{name: c, cluster: {server: https://h}}, {name: empty, cluster: {}},"
      " {name: both, cluster: {server: https://h, insecure-skip-tls-verify: true,"
      " certificate-authority: /ca}}]\n";
  const struct {
    std::string text;
    std::string context;
    Code code;
    const char* message_part;
  } cases[] = {
      {clusters, "", Code::kNotFound, "no current-context"},
      {clusters + "current-context: gone\n", "", Code::kNotFound, "context \"gone\" not found"},
      {clusters + "contexts: [{name: x, context: {cluster: nope}}]", "x", Code::kNotFound,
       "cluster \"nope\" not found"},
      {clusters + "contexts: [{name: x, context: {cluster: c, user: nobody}}]", "x",
       Code::kNotFound, "user \"nobody\" not found"},
      {clusters + "contexts: [{name: x, context: {user: u}}]", "x", Code::kInvalidArgument,
       "context.cluster: required"},
      {clusters + "contexts: [{name: x, context: {cluster: empty}}]", "x", Code::kInvalidArgument,
       "cluster.server: required"},
      {clusters + "contexts: [{name: x, context: {cluster: both}}]", "x", Code::kInvalidArgument,
       "insecure-skip-tls-verify is not allowed"},
      {clusters + "users: [{name: u, user: {client-certificate: /c}}]\n"
                  "contexts: [{name: x, context: {cluster: c, user: u}}]",
       "x", Code::kInvalidArgument, "client-certificate without client-key"},
      {clusters + "users: [{name: u, user: {auth-provider: {name: gcp}}}]\n"
                  "contexts: [{name: x, context: {cluster: c, user: u}}]",
       "x", Code::kInvalidArgument, "\"gcp\" is not supported"},
      {clusters + "users: [{name: u, user: {username: a, password: hunter2}}]\n"
                  "contexts: [{name: x, context: {cluster: c, user: u}}]",
       "x", Code::kInvalidArgument, "basic authentication is not supported"},
      {clusters + "users: [{name: u, user: {token: t, exec: {apiVersion: "
                  "client.authentication.k8s.io/v1beta1, command: c}}}]\n"
                  "contexts: [{name: x, context: {cluster: c, user: u}}]",
       "x", Code::kInvalidArgument, "more than one authentication method"},
  };
  for (const auto& c : cases) {
    const Kubeconfig kc = parse_kubeconfig(c.text, "/k");
    const Error e = error_of([&] { select_context(kc, c.context); });
    EXPECT_EQ(e.code(), c.code) << c.text;
    EXPECT_NE(std::string(e.what()).find(c.message_part), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find("hunter2"), std::string::npos);
  }
}

TEST(RestConfigFromKubeconfig, InlineData) {
  FakeClock clock;
  const Kubeconfig kc = parse_kubeconfig(full_kubeconfig(), "/k");
  const RestConfig rc = rest_config_from_kubeconfig(kc, "", clock);
  EXPECT_EQ(rc.server, "https://127.0.0.1:6443");
  EXPECT_EQ(rc.tls.ca_pem, kCaPem);
  EXPECT_EQ(rc.tls.client_cert_pem, kCertPem);
  EXPECT_EQ(rc.tls.client_key_pem, kKeyPem);
  EXPECT_FALSE(rc.tls.insecure);
  EXPECT_EQ(rc.tls_server_name, "kubernetes");
  EXPECT_EQ(rc.proxy_url, "http://proxy:3128");
  EXPECT_EQ(rc.namespace_, "stowage-system");
  EXPECT_EQ(rc.impersonate.user, "jane");
  EXPECT_EQ(rc.token_source, nullptr);

  const RestConfig lab = rest_config_from_kubeconfig(kc, "robot@lab", clock);
  EXPECT_EQ(lab.server, "https://lab.example.com:443");  // scheme defaulted
  EXPECT_TRUE(lab.tls.insecure);
  EXPECT_EQ(lab.namespace_, "default");
  ASSERT_NE(lab.token_source, nullptr);
  EXPECT_NE(dynamic_cast<StaticTokenSource*>(lab.token_source.get()), nullptr);
  EXPECT_EQ(lab.token_source->get().token, "abc.def");

  const RestConfig cloud = rest_config_from_kubeconfig(kc, "cloud@dev", clock);
  EXPECT_NE(dynamic_cast<ExecTokenSource*>(cloud.token_source.get()), nullptr);
}

TEST(RestConfigFromKubeconfig, FilesBesideTheKubeconfig) {
  TempDir dir;
  write_file(dir / "kube/ca.crt", kCaPem);
  write_file(dir / "certs/u.crt", kCertPem);
  write_file(dir / "certs/u.key", kKeyPem);
  write_file(dir / "kube/token", "  file-token\n");
  write_file(dir / "kube/config", R"(
current-context: x
clusters: [{name: c, cluster: {server: "https://h:6443/prefix/", certificate-authority: ca.crt}}]
users:
- {name: u, user: {client-certificate: ../certs/u.crt, client-key: ../certs/u.key,
                   tokenFile: token, token: inline-token}}
contexts: [{name: x, context: {cluster: c, user: u, namespace: team}}]
)");
  FakeClock clock;
  const Kubeconfig kc = load_kubeconfig({dir / "missing", dir / "kube/config"});
  const RestConfig rc = rest_config_from_kubeconfig(kc, "", clock);
  EXPECT_EQ(rc.server, "https://h:6443/prefix");
  EXPECT_EQ(rc.tls.ca_pem, kCaPem);
  EXPECT_EQ(rc.tls.client_cert_pem, kCertPem);
  EXPECT_EQ(rc.tls.client_key_pem, kKeyPem);
  EXPECT_EQ(rc.namespace_, "team");
  ASSERT_NE(dynamic_cast<FileTokenSource*>(rc.token_source.get()), nullptr);
  EXPECT_EQ(rc.token_source->get().token, "file-token");  // tokenFile wins over token

  // Without the token file, the inline token is the fallback.
  std::filesystem::remove(dir / "kube/token");
  EXPECT_EQ(rest_config_from_kubeconfig(kc, "", clock).token_source->get().token, "inline-token");

  // A missing CA file names the field and the file.
  std::filesystem::remove(dir / "kube/ca.crt");
  const Error e = error_of([&] { rest_config_from_kubeconfig(kc, "", clock); });
  EXPECT_EQ(e.code(), Code::kNotFound);
  EXPECT_NE(std::string(e.what()).find("clusters[0] \"c\": cluster.certificate-authority: file " +
                                       (dir / "kube/ca.crt").string() + " does not exist"),
            std::string::npos)
      << e.what();
}

TEST(LoadKubeconfig, NoFileIsNotFound) {
  TempDir dir;
  const Error e = error_of([&] { load_kubeconfig({dir / "a", dir / "b"}); });
  EXPECT_EQ(e.code(), Code::kNotFound);
  EXPECT_NE(std::string(e.what()).find((dir / "a").string()), std::string::npos);
  write_file(dir / "bad", "clusters: 3\n");
  const Error bad = error_of([&] { load_kubeconfig({dir / "bad"}); });
  EXPECT_EQ(bad.code(), Code::kInvalidArgument);
  EXPECT_TRUE(std::string(bad.what()).starts_with((dir / "bad").string() + ": clusters"));
}

void write_service_account(const std::filesystem::path& root, const std::string& token) {
  const auto sa = root / kServiceAccountDir;
  write_file(sa / "token", token);
  write_file(sa / "ca.crt", kCaPem);
  write_file(sa / "namespace", "stowage-system\n");
}

EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    const auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST(InClusterConfig, ReadsTheServiceAccount) {
  TempDir root;
  write_service_account(root.path(), "sa-token\n");
  FakeClock clock;
  const RestConfig rc =
      in_cluster_config(clock, {root.path(), env_of({{"KUBERNETES_SERVICE_HOST", "10.96.0.1"},
                                                     {"KUBERNETES_SERVICE_PORT", "443"}})});
  EXPECT_EQ(rc.server, "https://10.96.0.1:443");
  EXPECT_EQ(rc.tls.ca_pem, kCaPem);
  EXPECT_EQ(rc.namespace_, "stowage-system");
  ASSERT_NE(dynamic_cast<FileTokenSource*>(rc.token_source.get()), nullptr);
  EXPECT_EQ(rc.token_source->get().token, "sa-token");

  const RestConfig v6 =
      in_cluster_config(clock, {root.path(), env_of({{"KUBERNETES_SERVICE_HOST", "fd00::1"},
                                                     {"KUBERNETES_SERVICE_PORT", "443"}})});
  EXPECT_EQ(v6.server, "https://[fd00::1]:443");
}

TEST(InClusterConfig, RefusesOutsideAPod) {
  TempDir root;
  FakeClock clock;
  const Error no_env = error_of([&] { in_cluster_config(clock, {root.path(), env_of({})}); });
  EXPECT_EQ(no_env.code(), Code::kNotFound);
  const Error no_token = error_of([&] {
    in_cluster_config(clock, {root.path(), env_of({{"KUBERNETES_SERVICE_HOST", "h"},
                                                   {"KUBERNETES_SERVICE_PORT", "443"}})});
  });
  EXPECT_EQ(no_token.code(), Code::kNotFound);
  EXPECT_NE(std::string(no_token.what()).find("serviceaccount/token"), std::string::npos);
  const Error bad_port = error_of([&] {
    in_cluster_config(clock, {root.path(), env_of({{"KUBERNETES_SERVICE_HOST", "h"},
                                                   {"KUBERNETES_SERVICE_PORT", "443/x"}})});
  });
  EXPECT_EQ(bad_port.code(), Code::kInvalidArgument);
}

TEST(LoadRestConfig, FlagThenKubeconfigEnvThenInClusterThenHome) {
  TempDir dir;
  const auto kubeconfig = [](const std::string& server) {
    return "current-context: x\nclusters: [{name: c, cluster: {server: \"" + server +
           "\"}}]\ncontexts: [{name: x, context: {cluster: c}}]\n";
  };
  write_file(dir / "flag", kubeconfig("https://flag"));
  write_file(dir / "env1", kubeconfig("https://env1"));
  write_file(dir / "env2", kubeconfig("https://env2"));
  write_file(dir / "home/.kube/config", kubeconfig("https://home"));
  write_service_account(dir / "root", "t");
  FakeClock clock;
  std::map<std::string, std::string> env = {
      {"KUBECONFIG",
       (dir / "nope").string() + ":" + (dir / "env1").string() + ":" + (dir / "env2").string()},
      {"KUBERNETES_SERVICE_HOST", "10.0.0.1"},
      {"KUBERNETES_SERVICE_PORT", "443"},
      {"HOME", (dir / "home").string()}};
  auto load = [&](const std::string& flag) {
    return load_rest_config(clock, {.kubeconfig = flag,
                                    .context = "",
                                    .in_cluster_root = dir / "root",
                                    .env = env_of(env)})
        .server;
  };
  EXPECT_EQ(load((dir / "flag").string()), "https://flag");
  EXPECT_EQ(load(""), "https://env1");
  env.erase("KUBECONFIG");
  EXPECT_EQ(load(""), "https://10.0.0.1:443");
  env.erase("KUBERNETES_SERVICE_HOST");
  EXPECT_EQ(load(""), "https://home");
  EXPECT_EQ(error_of([&] { load((dir / "missing").string()); }).code(), Code::kNotFound);
}

}  // namespace
}  // namespace stowage::kube
