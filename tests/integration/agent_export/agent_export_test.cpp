// The agent's Exporter (node-agent/exporter.h) against a real containerd (Debian 1.6, CRI plugin)
// and a real docker-registry, with podman as the oracle that loads the tars. An image pre-cached
// through CRI is exported as docker-archive and oci-archive from containerd's content store
// (under a temp host root that links to the fixture's); podman loads both and names them with the
// image ID containerd holds. The tag is then re-pushed with other content: an export by digest
// from the registry alone still gives the planned image. With the registry stopped, an export
// from containerd still works. Finally agent_export_helper is killed with SIGKILL in the middle
// of a slow (throttled) export: no tar is visible, the store verifies clean, and a new run
// completes. One case runs the Agent itself against a real kube-apiserver: a planned export is
// reported Written with the file's size and sha256, and a stop requested in the middle of a slow
// export (the SIGTERM path) ends it promptly with no file visible.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "api/meta.h"
#include "api/node_cache.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/sha256.h"
#include "cri/client.h"
#include "http/client.h"
#include "kube/client.h"
#include "kube/config.h"
#include "node-agent/agent.h"
#include "node-agent/exporter.h"
#include "oci/store.h"
#include "reference/reference.h"
#include "support/containerd_fixture.h"
#include "support/fault_proxy.h"
#include "support/image_seed.h"
#include "support/kube_fixture.h"
#include "support/podman_peer.h"
#include "support/process.h"
#include "support/registry_fixture.h"

namespace stowage::agent {
namespace {

namespace fs = std::filesystem;
using test::ContainerdFixture;
using test::RegistryFixture;
using test::TempDir;
using ::testing::IsEmpty;

constexpr const char* kRepo = "export/app";
constexpr const char* kBigRepo = "export/big";
constexpr const char* kTag = "1.0";

void trust_plain_http(const fs::path& certs_dir, const std::string& host) {
  test::write_text_file(certs_dir / host / "hosts.toml",
                        fmt::format("server = \"http://{0}\"\n\n[host.\"http://{0}\"]\n"
                                    "  capabilities = [\"pull\", \"resolve\"]\n",
                                    host));
}

// A host root whose containers registries config marks `hosts` insecure (plain HTTP).
void write_dropin(const fs::path& host_root, const std::vector<std::string>& hosts) {
  std::string conf;
  for (const auto& h : hosts) {
    conf += fmt::format("[[registry]]\nlocation = \"{}\"\ninsecure = true\n\n", h);
  }
  test::write_text_file(host_root / "etc/containers/registries.conf.d/99-stowage.conf", conf);
}

// Names of the entries of `dir` that are not hidden.
std::vector<std::string> visible(const fs::path& dir) {
  std::vector<std::string> out;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.front() != '.') out.push_back(name);
  }
  return out;
}

// Deterministic incompressible bytes (xorshift), so a layer is as large on the wire as on disk.
std::string pseudo_random(std::size_t size) {
  std::string out(size, '\0');
  std::uint64_t x = 0x9e3779b97f4a7c15ull;
  for (auto& c : out) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x & 0xff);
  }
  return out;
}

std::string file_sha256(const fs::path& p) {
  return sha256_hex(test::read_text_file(p));
}

class AgentExportTest : public ::testing::Test {
 protected:
  static std::optional<std::string> skip_reason() {
    if (auto r = RegistryFixture::unavailable_reason()) return r;
    if (auto r = test::seed_unavailable_reason()) return r;
    if (auto r = ContainerdFixture::unavailable_reason()) return r;
    if (auto r = test::podman_unavailable_reason(); !r.empty()) return r;
    return std::nullopt;
  }

  void SetUp() override {
    if (auto reason = skip_reason()) GTEST_SKIP() << *reason;
    registry_ = std::make_unique<RegistryFixture>();
  }

  void start_containerd() {
    containerd_ = std::make_unique<ContainerdFixture>();
    trust_plain_http(containerd_->cri_certs_dir(), registry_->host());
    // The node's view: containerd's config names its root; the host root links that path to
    // the fixture's root.
    const fs::path root = containerd_->dir() / "root";
    test::write_text_file(host_ / "etc/containerd/config.toml",
                          fmt::format("version = 2\nroot = \"{}\"\n", root.string()));
    fs::create_directories((host_.path() / root.relative_path()).parent_path());
    fs::create_directory_symlink(root, host_.path() / root.relative_path());
    cri_ = std::make_unique<cri::Client>(
        cri::ClientOptions{.endpoint = "unix://" + containerd_->address(),
                           .timeout = std::chrono::seconds(10),
                           .pull_timeout = std::chrono::seconds(60),
                           .max_receive_message_bytes = 16 << 20});
  }

  ExportResult run_export(const fs::path& host_root, const fs::path& store_dir,
                          const std::string& file, api::ExportFormat format,
                          const std::string& name, const std::string& digest) {
    Exporter exporter({.export_dir = exports_.path(),
                       .store_dir = store_dir,
                       .host_root = host_root,
                       .transport = &http_},
                      real_clock());
    api::NodeExport exp{.file_name = file,
                        .format = format,
                        .images = {Reference::parse(name).name() + "@" + digest}};
    ExportResult r =
        exporter.run(exp, {{.name = name, .digest = digest, .state = api::ImageState::kPresent}});
    EXPECT_TRUE(exporter.store().verify().clean());
    return r;
  }

  // Loads `tar` into a fresh podman storage; its image ID as `podman image inspect` gives it.
  std::string podman_load_id(const fs::path& tar, const std::string& name,
                             std::string* digest = nullptr) {
    test::PodmanPeer podman;
    const auto loaded = podman.podman({"load", "-i", tar.string()});
    EXPECT_TRUE(loaded.ok()) << loaded.describe();
    const auto info = podman.inspect(name);
    if (digest) *digest = info.value("Digest", "");
    return "sha256:" + info.value("Id", "");
  }

  std::unique_ptr<RegistryFixture> registry_;
  std::unique_ptr<ContainerdFixture> containerd_;
  std::unique_ptr<cri::Client> cri_;
  http::Client http_{http::ClientOptions{.proxy = ""}};
  TempDir host_{"stowage-export-host"};
  TempDir bare_host_{"stowage-export-bare"};  // no containerd: the registry is the only source
  TempDir state_{"stowage-export-state"};
  TempDir exports_{"stowage-export-out"};
};

TEST_F(AgentExportTest, ExportsTheHeldDigestFromContainerdRegistryByDigestAndRegistryStopped) {
  const std::string digest = registry_->seed_image(kRepo, kTag, {.labels = {{"v", "1"}}});
  const std::string name = fmt::format("{}/{}:{}", registry_->host(), kRepo, kTag);
  start_containerd();
  const std::string image_id = cri_->pull_image(name);
  const auto held = cri_->image_status(name);
  ASSERT_TRUE(held.has_value());
  write_dropin(host_.path(), {registry_->host()});
  write_dropin(bare_host_.path(), {registry_->host()});

  // From containerd's content store: both formats load in podman as the image containerd holds.
  ExportResult docker = run_export(host_.path(), state_ / "a", "app.tar",
                                   api::ExportFormat::kDockerArchive, name, digest);
  ASSERT_EQ(docker.outcome, ExportOutcome::kWritten) << docker.status.message;
  EXPECT_GT(docker.blob_bytes[BlobSource::kContainerd], 0u);
  EXPECT_EQ(docker.blob_bytes.count(BlobSource::kRegistry), 0u);
  EXPECT_EQ(docker.status.sha256, file_sha256(exports_ / "app.tar"));
  EXPECT_EQ(static_cast<std::uintmax_t>(*docker.status.size_bytes),
            fs::file_size(exports_ / "app.tar"));
  EXPECT_EQ(podman_load_id(exports_ / "app.tar", name), image_id);
  EXPECT_EQ(podman_load_id(exports_ / "app.tar", name), held->id);

  ExportResult oci = run_export(host_.path(), state_ / "a", "app-oci.tar",
                                api::ExportFormat::kOciArchive, name, digest);
  ASSERT_EQ(oci.outcome, ExportOutcome::kWritten) << oci.status.message;
  std::string oci_digest;
  EXPECT_EQ(podman_load_id(exports_ / "app-oci.tar", name, &oci_digest), image_id);
  EXPECT_EQ(oci_digest, digest);

  // The tag now names other content; the export asks the registry by digest (no containerd on
  // this host root, an empty store) and still gives the planned image.
  const std::string moved = registry_->seed_image(kRepo, kTag, {.labels = {{"v", "2"}}});
  ASSERT_NE(moved, digest);
  ExportResult repushed = run_export(bare_host_.path(), state_ / "b", "repushed.tar",
                                     api::ExportFormat::kOciArchive, name, digest);
  ASSERT_EQ(repushed.outcome, ExportOutcome::kWritten) << repushed.status.message;
  EXPECT_GT(repushed.blob_bytes[BlobSource::kRegistry], 0u);
  EXPECT_EQ(podman_load_id(exports_ / "repushed.tar", name, &oci_digest), image_id);
  EXPECT_EQ(oci_digest, digest);

  // The registry gone: containerd still serves every blob.
  registry_->process().stop();
  ExportResult offline = run_export(host_.path(), state_ / "c", "offline.tar",
                                    api::ExportFormat::kDockerArchive, name, digest);
  ASSERT_EQ(offline.outcome, ExportOutcome::kWritten) << offline.status.message;
  EXPECT_EQ(offline.status.sha256, docker.status.sha256);
  EXPECT_EQ(podman_load_id(exports_ / "offline.tar", name), image_id);
  // Without containerd and without the registry: a clear failure, no file.
  ExportResult nowhere = run_export(bare_host_.path(), state_ / "d", "nowhere.tar",
                                    api::ExportFormat::kDockerArchive, name, digest);
  EXPECT_EQ(nowhere.outcome, ExportOutcome::kFailed);
  EXPECT_TRUE(nowhere.retry);
  EXPECT_FALSE(fs::exists(exports_ / "nowhere.tar"));
}

TEST_F(AgentExportTest, KillNineMidExportLeavesNoPartialFileAndTheNextRunCompletes) {
  const std::string digest = registry_->seed_image(
      kBigRepo, kTag, {.layers = {{{"big.bin", pseudo_random(6 << 20)}}}, .gzip = false});
  // Blobs trickle through the proxy, so the export is surely in flight when it is killed.
  test::FaultProxy proxy(registry_->port());
  proxy.add_fault({.method = "GET",
                   .path = "/blobs/sha256:",
                   .skip = 0,
                   .times = 0,
                   .fault = test::Throttle{.bytes_per_second = 256 * 1024}});
  const std::string name = fmt::format("{}/{}:{}", proxy.host(), kBigRepo, kTag);
  write_dropin(bare_host_.path(), {proxy.host()});
  const fs::path store = state_ / "kill";
  auto helper = [&](const std::string& log) {
    test::ProcessOptions options;
    options.argv = {STOWAGE_EXPORT_HELPER,
                    exports_.path().string(),
                    store.string(),
                    bare_host_.path().string(),
                    "big.tar",
                    "docker-archive",
                    name,
                    digest};
    options.stdout_path = state_ / (log + ".out");
    options.stderr_path = state_ / (log + ".err");
    return std::make_unique<test::Process>(std::move(options));
  };

  auto first = helper("first");
  const fs::path ingest = store / "content" / "ingest";
  const bool in_flight = test::wait_for(
      [&] {
        std::error_code ec;
        for (fs::directory_iterator it(ingest, ec), end; !ec && it != end; it.increment(ec)) {
          if (it->is_regular_file() && it->file_size() > 0) return true;
        }
        return false;
      },
      std::chrono::seconds(30));
  ASSERT_TRUE(in_flight) << first->describe();
  ASSERT_EQ(::kill(first->pid(), SIGKILL), 0);
  EXPECT_EQ(first->wait(test::Clock::now() + std::chrono::seconds(10)), 128 + SIGKILL);
  EXPECT_THAT(visible(exports_.path()), IsEmpty());
  {
    const oci::Store reopened(store / "content");
    EXPECT_TRUE(reopened.verify().clean());
    EXPECT_EQ(std::distance(fs::directory_iterator(ingest), {}), 0);  // the killed ingest
  }

  proxy.clear_faults();
  auto second = helper("second");
  ASSERT_EQ(second->wait(test::Clock::now() + std::chrono::seconds(60)), 0) << second->describe();
  EXPECT_THAT(visible(exports_.path()), ::testing::ElementsAre("big.tar"));
  // The status is the last line (log lines come before it).
  std::string out = second->stdout_text();
  while (!out.empty() && out.back() == '\n') out.pop_back();
  const auto status = nlohmann::json::parse(out.substr(out.rfind('\n') + 1));
  EXPECT_EQ(status.value("sha256", ""), file_sha256(exports_ / "big.tar"));
  EXPECT_EQ(status.value("state", ""), "Written");
  for (const auto& e : fs::directory_iterator(exports_.path())) {
    EXPECT_NE(e.path().filename().string().rfind(".tmp-", 0), 0u) << e.path();
  }
  EXPECT_TRUE(oci::Store(store / "content").verify().clean());
}

// --- The Agent ---------------------------------------------------------------------------------

constexpr const char* kNamespace = "stowage-system";
constexpr const char* kNode = "worker-1";

struct PlaneState {
  test::BinaryLookup binaries;
  std::unique_ptr<test::ControlPlane> plane;
  std::string error;
};

PlaneState& plane_state() {
  static PlaneState state;
  return state;
}

class AgentExportAgentTest : public AgentExportTest {
 protected:
  static void SetUpTestSuite() {
    auto& s = plane_state();
    s.binaries = test::ControlPlane::find_binaries();
    if (!s.binaries.dir || skip_reason()) return;
    try {
      test::ControlPlaneOptions options;
      options.with_controller_manager = false;
      s.plane = std::make_unique<test::ControlPlane>(options);
      const auto applied = s.plane->kubectl(
          {"apply", "--server-side", "-f", (fs::path(STOWAGE_SOURCE_DIR) / "crds").string()});
      if (!applied.ok()) s.error = applied.describe();
      const auto waited = s.plane->kubectl(
          {"wait", "--for=condition=Established", "--timeout=60s", "crd/nodecaches.stowage.io"});
      if (!waited.ok()) s.error = waited.describe();
    } catch (const std::exception& e) {
      s.error = e.what();
    }
  }
  static void TearDownTestSuite() { plane_state().plane.reset(); }

  void SetUp() override {
    const auto& s = plane_state();
    if (!s.binaries.dir) {
      if (s.binaries.required) GTEST_FAIL() << s.binaries.problem;
      GTEST_SKIP() << s.binaries.problem;
    }
    AgentExportTest::SetUp();
    if (IsSkipped()) return;
    ASSERT_THAT(s.error, IsEmpty());
    kube_ = std::make_unique<kube::Client>(
        kube::rest_config_from_kubeconfig(kube::load_kubeconfig({s.plane->kubeconfig_path()}), "",
                                          real_clock()),
        http_, real_clock());
    const kube::GroupVersionResource namespaces{"", "v1", "namespaces"};
    if (!kube_->try_get({namespaces, "", kNamespace, ""})) {
      kube_->create(
          {namespaces, "", "", ""},
          {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", kNamespace}}}});
    }
  }

  void TearDown() override {
    agent_thread_ = {};
    agent_.reset();
  }

  api::NodeCache node_cache() {
    api::NodeCache nc;
    api::from_json(kube_->get({api::node_caches_resource(), "", kNode, ""}), nc);
    return nc;
  }

  std::unique_ptr<kube::Client> kube_;
  std::unique_ptr<Agent> agent_;
  std::jthread agent_thread_;
};

TEST_F(AgentExportAgentTest, ReportsTheWrittenExportAndStopsPromptlyMidExport) {
  // Everything goes through the proxy, so that the second export can be slowed down. containerd
  // pulls through it; the host root has no link to containerd's content store, so exports come
  // from the registry.
  test::FaultProxy proxy(registry_->port());
  const std::string app_digest = registry_->seed_image(kRepo, kTag);
  const std::string big_digest = registry_->seed_image(
      kBigRepo, kTag, {.layers = {{{"big.bin", pseudo_random(4 << 20)}}}, .gzip = false});
  const std::string app = fmt::format("{}/{}:{}", proxy.host(), kRepo, kTag);
  const std::string big = fmt::format("{}/{}:{}", proxy.host(), kBigRepo, kTag);
  containerd_ = std::make_unique<ContainerdFixture>();
  trust_plain_http(containerd_->cri_certs_dir(), proxy.host());
  cri_ = std::make_unique<cri::Client>(
      cri::ClientOptions{.endpoint = "unix://" + containerd_->address(),
                         .timeout = std::chrono::seconds(10),
                         .pull_timeout = std::chrono::seconds(60),
                         .max_receive_message_bytes = 16 << 20});
  write_dropin(bare_host_.path(), {proxy.host()});

  api::NodeCache nc;
  nc.metadata.name = kNode;
  nc.spec.images = {{.name = app, .digest = app_digest}, {.name = big, .digest = big_digest}};
  nc.spec.exports = {{.file_name = "app.tar",
                      .format = api::ExportFormat::kDockerArchive,
                      .images = {Reference::parse(app).name() + "@" + app_digest},
                      .source = "default/app"}};
  nlohmann::json object;
  api::to_json(object, nc);
  object["apiVersion"] = std::string(api::kApiVersion);
  object["kind"] = std::string(api::kNodeCacheKind);
  object.erase("status");
  kube_->create({api::node_caches_resource(), "", "", ""}, object);

  AgentOptions options;
  options.node_name = kNode;
  options.namespace_ = kNamespace;
  options.host_root = bare_host_.path();
  options.store_dir = state_ / "agent";
  options.export_dir = exports_.path();
  options.registry_transport = &http_;
  options.status_min_interval = std::chrono::milliseconds(200);
  options.retry_base = std::chrono::milliseconds(500);
  options.retry_max = std::chrono::seconds(5);
  agent_ = std::make_unique<Agent>(options, *kube_, *cri_, real_clock());
  agent_thread_ = std::jthread([this](std::stop_token stop) { agent_->run(stop); });

  api::NodeCache got;
  const bool written = test::wait_for(
      [&] {
        got = node_cache();
        return got.status.exports.size() == 1 &&
               got.status.exports[0].state == api::ExportState::kWritten;
      },
      std::chrono::seconds(90));
  ASSERT_TRUE(written) << api::node_cache_status_to_json(got.status).dump(2);
  const api::NodeExportStatus& e = got.status.exports[0];
  EXPECT_EQ(e.file_name, "app.tar");
  EXPECT_EQ(e.sha256, file_sha256(exports_ / "app.tar"));
  EXPECT_EQ(static_cast<std::uintmax_t>(*e.size_bytes), fs::file_size(exports_ / "app.tar"));
  EXPECT_THAT(agent_->metrics_text(),
              ::testing::HasSubstr("stowage_agent_exports_total{outcome=\"Written\"} 1"));
  EXPECT_THAT(agent_->metrics_text(),
              ::testing::HasSubstr("stowage_agent_export_blob_bytes_total{source=\"registry\"}"));

  // A second export whose blobs trickle in; the stop comes while it is in flight.
  proxy.add_fault({.method = "GET",
                   .path = "/v2/export/big/blobs/",
                   .skip = 0,
                   .times = 0,
                   .fault = test::Throttle{.bytes_per_second = 128 * 1024}});
  nlohmann::json exports = nlohmann::json::array();
  exports.push_back(api::node_cache_spec_to_json(nc.spec).at("exports").at(0));
  exports.push_back({{"fileName", "big.tar"},
                     {"format", "docker-archive"},
                     {"images", {Reference::parse(big).name() + "@" + big_digest}},
                     {"source", "default/big"}});
  kube_->patch({api::node_caches_resource(), "", kNode, ""}, kube::PatchType::kMerge,
               {{"spec", {{"exports", exports}}}});
  const fs::path ingest = state_ / "agent" / "content" / "ingest";
  const bool in_flight = test::wait_for(
      [&] {
        std::error_code ec;
        for (fs::directory_iterator it(ingest, ec), end; !ec && it != end; it.increment(ec)) {
          if (it->is_regular_file() && it->file_size() > 0) return true;
        }
        return false;
      },
      std::chrono::seconds(60));
  ASSERT_TRUE(in_flight);
  const auto asked = std::chrono::steady_clock::now();
  agent_thread_.request_stop();
  agent_thread_.join();
  EXPECT_LT(std::chrono::steady_clock::now() - asked, std::chrono::seconds(10));
  EXPECT_THAT(visible(exports_.path()), ::testing::ElementsAre("app.tar"));
  for (const auto& entry : fs::directory_iterator(exports_.path())) {
    EXPECT_NE(entry.path().filename().string().rfind(".tmp-", 0), 0u) << entry.path();
  }
  EXPECT_EQ(std::distance(fs::directory_iterator(ingest), {}), 0);
  EXPECT_TRUE(oci::Store(state_ / "agent" / "content").verify().clean());
}

}  // namespace
}  // namespace stowage::agent
