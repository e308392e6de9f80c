#include "kube/token_source.h"

#include <gtest/gtest.h>

#include "base/error.h"
#include "fakes.h"
#include "kube/config.h"

namespace stowage::kube {
namespace {

using nlohmann::json;
using std::chrono::seconds;
using testing::read_text;
using testing::TempDir;
using testing::write_file;

Error error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no error";
  return Error(Code::kInternal, "");
}

TEST(FileTokenSource, RereadsEveryMinuteAndAfterInvalidate) {
  TempDir dir;
  const auto path = dir / "token";
  write_file(path, "first\n");
  FakeClock clock;
  FileTokenSource source(path, clock);
  EXPECT_EQ(source.get().token, "first");

  write_file(path, "second");
  clock.advance(seconds(59));
  EXPECT_EQ(source.get().token, "first");  // cached for a minute
  clock.advance(seconds(1));
  EXPECT_EQ(source.get().token, "second");

  write_file(path, "third");
  source.invalidate();  // a 401: re-read now
  EXPECT_EQ(source.get().token, "third");
}

TEST(FileTokenSource, KeepsTheOldTokenWhenAReReadFails) {
  TempDir dir;
  const auto path = dir / "token";
  write_file(path, "good");
  FakeClock clock;
  FileTokenSource source(path, clock);

  std::filesystem::remove(path);
  clock.advance(seconds(60));
  EXPECT_EQ(source.get().token, "good");
  write_file(path, "   \n");  // empty after trimming
  source.invalidate();
  EXPECT_EQ(source.get().token, "good");

  // The failed read is retried after a short delay, not on every call.
  write_file(path, "rotated");
  EXPECT_EQ(source.get().token, "good");
  clock.advance(FileTokenSource::kRetryAfterFailure);
  EXPECT_EQ(source.get().token, "rotated");
}

TEST(FileTokenSource, StartsFromTheFallbackOrFails) {
  TempDir dir;
  FakeClock clock;
  const Error missing = error_of([&] { FileTokenSource(dir / "none", clock); });
  EXPECT_EQ(missing.code(), Code::kNotFound);
  EXPECT_NE(std::string(missing.what()).find((dir / "none").string()), std::string::npos);
  write_file(dir / "empty", "\n");
  EXPECT_EQ(error_of([&] { FileTokenSource(dir / "empty", clock); }).code(),
            Code::kUnauthenticated);

  FileTokenSource fallback(dir / "later", clock, "inline");
  EXPECT_EQ(fallback.get().token, "inline");
  write_file(dir / "later", "from-file");
  clock.advance(FileTokenSource::kRetryAfterFailure);
  EXPECT_EQ(fallback.get().token, "from-file");
}

// A plugin that counts its runs, records what it was given and prints an ExecCredential.
// `status` is the JSON of the status object; "$N" in it becomes the run number.
std::filesystem::path write_plugin(const TempDir& dir, const std::string& api_version,
                                   const std::string& status, int exit_code = 0) {
  const auto path = dir / "plugin.sh";
  write_file(path,
             "#!/bin/sh\n"
             "echo run >> \"$OUT/count\"\n"
             "N=$(wc -l < \"$OUT/count\" | tr -d ' ')\n"
             "printf '%s' \"$KUBERNETES_EXEC_INFO\" > \"$OUT/info.json\"\n"
             "printf '%s\\n' \"$@\" > \"$OUT/args\"\n"
             "echo 'something went wrong' >&2\n"
             "cat <<EOF\n"
             "{\"apiVersion\":\"" +
                 api_version + "\",\"kind\":\"ExecCredential\",\"status\":" + status +
                 "}\nEOF\n"
                 "exit " +
                 std::to_string(exit_code) + "\n",
             true);
  return path;
}

ExecConfig plugin_config(const TempDir& dir,
                         const std::string& api_version = std::string(kExecApiV1)) {
  ExecConfig c;
  c.api_version = api_version;
  c.command = (dir / "plugin.sh").string();
  c.args = {"get-token", "--cluster=dev"};
  c.env = {{"OUT", dir.path().string()}};
  c.interactive_mode = "Never";
  return c;
}

int runs(const TempDir& dir) {
  const std::string count = read_text(dir / "count");
  return static_cast<int>(std::count(count.begin(), count.end(), '\n'));
}

TEST(ExecTokenSource, CachesUntilExpiryAndRefreshesAfterInvalidate) {
  TempDir dir;
  // FakeClock's wall time starts at 2023-11-14T22:13:20Z; this expires 100 s later.
  write_plugin(dir, std::string(kExecApiV1),
               R"({"token":"tok-$N","expirationTimestamp":"2023-11-14T22:15:00Z"})");
  FakeClock clock;
  ExecTokenSource source(plugin_config(dir), std::nullopt, clock);
  EXPECT_EQ(source.get().token, "tok-1");
  EXPECT_EQ(source.get().token, "tok-1");
  clock.advance(seconds(80));
  EXPECT_EQ(source.get().token, "tok-1");
  EXPECT_EQ(runs(dir), 1);
  clock.advance(seconds(11));  // within the 10 s leeway of the expiry
  EXPECT_EQ(source.get().token, "tok-2");
  source.invalidate();
  EXPECT_EQ(source.get().token, "tok-3");
  EXPECT_EQ(runs(dir), 3);

  EXPECT_EQ(read_text(dir / "args"), "get-token\n--cluster=dev\n");
  EXPECT_EQ(json::parse(read_text(dir / "info.json")),
            json::parse(R"({"apiVersion":"client.authentication.k8s.io/v1",
                            "kind":"ExecCredential","spec":{"interactive":false}})"));
}

TEST(ExecTokenSource, WithoutExpiryCachesUntilInvalidated) {
  TempDir dir;
  write_plugin(dir, std::string(kExecApiV1Beta1), R"({"token":"t$N"})");
  FakeClock clock;
  ExecTokenSource source(plugin_config(dir, std::string(kExecApiV1Beta1)), std::nullopt, clock);
  EXPECT_EQ(source.get().token, "t1");
  clock.advance(std::chrono::hours(24));
  EXPECT_EQ(source.get().token, "t1");
  source.invalidate();
  EXPECT_EQ(source.get().token, "t2");
}

TEST(ExecTokenSource, ClientCertificatesAndClusterInfo) {
  TempDir dir;
  write_plugin(
      dir, std::string(kExecApiV1),
      R"({"clientCertificateData":"-----BEGIN CERTIFICATE-----\nC\n-----END CERTIFICATE-----\n","clientKeyData":"-----BEGIN EC PRIVATE KEY-----\nK\n-----END EC PRIVATE KEY-----\n"})");
  ExecConfig config = plugin_config(dir);
  config.provide_cluster_info = true;
  FakeClock clock;
  const json cluster = {{"server", "https://h"}, {"config", {{"audience", "x"}}}};
  ExecTokenSource source(config, cluster, clock);
  const Credential c = source.get();
  EXPECT_EQ(c.token, "");
  EXPECT_EQ(c.client_cert_pem, "-----BEGIN CERTIFICATE-----\nC\n-----END CERTIFICATE-----\n");
  EXPECT_EQ(c.client_key_pem, "-----BEGIN EC PRIVATE KEY-----\nK\n-----END EC PRIVATE KEY-----\n");
  EXPECT_EQ(json::parse(read_text(dir / "info.json"))["spec"]["cluster"], cluster);
}

TEST(ExecTokenSource, FailuresAreUnauthenticatedAndSayWhy) {
  TempDir dir;
  FakeClock clock;
  const struct {
    std::string api_version;
    std::string status;
    int exit_code;
    const char* message_part;
  } cases[] = {
      {std::string(kExecApiV1), R"({"token":"t"})", 3,
       "exited with status 3: something went wrong"},
      {std::string(kExecApiV1Beta1), R"({"token":"t"})", 0,
       "want \"client.authentication.k8s.io/v1\""},
      {std::string(kExecApiV1), R"({})", 0, "neither a token nor a client certificate"},
      {std::string(kExecApiV1), R"({"clientCertificateData":"c"})", 0, "only one of"},
      {std::string(kExecApiV1), R"({"token":"t","expirationTimestamp":"soon"})", 0,
       "is not RFC 3339"},
      {std::string(kExecApiV1), R"("not an object")", 0, "has no status"},
  };
  for (const auto& c : cases) {
    write_plugin(dir, c.api_version, c.status, c.exit_code);
    ExecTokenSource source(plugin_config(dir), std::nullopt, clock);
    const Error e = error_of([&] { source.get(); });
    EXPECT_EQ(e.code(), Code::kUnauthenticated) << c.status;
    EXPECT_NE(std::string(e.what()).find(c.message_part), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find("\"t\""), std::string::npos) << e.what();
  }
}

TEST(ExecTokenSource, MissingCommandShowsTheInstallHint) {
  TempDir dir;
  FakeClock clock;
  ExecConfig config = plugin_config(dir);
  config.command = "stowage-no-such-plugin";
  config.install_hint = "Install it with: apt install stowage-no-such-plugin";
  ExecTokenSource source(config, std::nullopt, clock);
  const Error e = error_of([&] { source.get(); });
  EXPECT_EQ(e.code(), Code::kUnauthenticated);
  EXPECT_NE(std::string(e.what()).find("Install it with"), std::string::npos) << e.what();
}

TEST(ExecTokenSource, APluginThatHangsIsKilled) {
  TempDir dir;
  write_file(dir / "plugin.sh", "#!/bin/sh\nexec sleep 30\n", true);
  FakeClock clock;
  ExecConfig config = plugin_config(dir);
  config.timeout = std::chrono::milliseconds(200);
  ExecTokenSource source(config, std::nullopt, clock);
  EXPECT_EQ(error_of([&] { source.get(); }).code(), Code::kDeadlineExceeded);
}

TEST(ExecTokenSource, FromAKubeconfigWithARelativeCommand) {
  TempDir dir;
  write_plugin(dir, std::string(kExecApiV1), R"({"token":"kc-$N"})");
  write_file(dir / "config", R"(
current-context: x
clusters:
- name: c
  cluster:
    server: https://h:6443
    certificate-authority-data: Q0E=
    extensions: [{name: client.authentication.k8s.io/exec, extension: {audience: dev}}]
users:
- name: u
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: ./plugin.sh
      args: [a, b]
      env: [{name: OUT, value: )" +
                                 dir.path().string() + R"(}]
      provideClusterInfo: true
      interactiveMode: IfAvailable
contexts: [{name: x, context: {cluster: c, user: u}}]
)");
  FakeClock clock;
  const RestConfig rc = rest_config_from_kubeconfig(load_kubeconfig({dir / "config"}), "", clock);
  ASSERT_NE(rc.token_source, nullptr);
  EXPECT_EQ(rc.token_source->get().token, "kc-1");
  EXPECT_EQ(json::parse(read_text(dir / "info.json")),
            json::parse(R"({"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential",
              "spec":{"interactive":false,"cluster":{"server":"https://h:6443",
              "certificate-authority-data":"Q0E=","insecure-skip-tls-verify":false,
              "disable-compression":false,"config":{"audience":"dev"}}}})"));
}

}  // namespace
}  // namespace stowage::kube
