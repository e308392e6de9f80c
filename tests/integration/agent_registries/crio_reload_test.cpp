// The CRI-O reload path of RegistriesApplier and CrioReloader against stowage_crio_standin, a
// program that stands in for CRI-O (no Debian package): it serves CRI Version on its own socket
// and re-reads the drop-in dir under the host root on SIGHUP. Proves: a valid change is written
// and reloaded in the same process; an invalid drop-in never reaches disk or the runtime; a
// runtime that dies or hangs on SIGHUP gets the backup back and a Failed result with the reason;
// SO_PEERCRED picks the right process among two; a second identical apply sends no signal.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <sstream>
#include <string>

#include "base/clock.h"
#include "base/files.h"
#include "cri/client.h"
#include "node-agent/registries_applier.h"
#include "node-agent/runtime_reload.h"
#include "support/process.h"

namespace stowage::agent {
namespace {

using test::Process;
using test::TempDir;
using ::testing::HasSubstr;

const std::string kSearchQuay = "unqualified-search-registries = [\"quay.io\"]\n";
const std::string kSearchCorp = "unqualified-search-registries = [\"registry.corp\"]\n";

// One stand-in process with its socket and status file in `dir`, reading `host_root`.
class Standin {
 public:
  Standin(const TempDir& dir, const std::filesystem::path& host_root, const std::string& name,
          const std::string& on_sighup = "reload")
      : socket_(dir / (name + ".sock")), status_(dir / (name + ".status")) {
    test::ProcessOptions po;
    po.argv = {STOWAGE_CRIO_STANDIN, "--socket",         socket_.string(),
               "--host-root",        host_root.string(), "--status",
               status_.string(),     "--on-sighup",      on_sighup};
    po.stdout_path = dir / (name + ".log");
    po.stderr_path = po.stdout_path;
    process_ = std::make_unique<Process>(std::move(po));
    const bool up =
        test::wait_for([&] { return !process_->running() || test::unix_socket_accepts(socket_); },
                       std::chrono::seconds(10));
    if (!up || !process_->running()) {
      throw std::runtime_error("stand-in did not start: " + process_->describe());
    }
  }

  std::map<std::string, std::string> status() const {
    std::map<std::string, std::string> out;
    std::istringstream in(test::read_text_file(status_));
    for (std::string line; std::getline(in, line);) {
      const auto eq = line.find('=');
      if (eq != std::string::npos) out[line.substr(0, eq)] = line.substr(eq + 1);
    }
    return out;
  }
  std::string get(const std::string& key) const {
    const auto s = status();
    const auto it = s.find(key);
    return it == s.end() ? "" : it->second;
  }
  // Waits until status `key` reads `value`.
  bool wait_status(const std::string& key, const std::string& value) const {
    return test::wait_for([&] { return get(key) == value; }, std::chrono::seconds(10));
  }

  // Every signal sent before now has been handled once this returns true: standard signals are
  // taken lowest number first, and SIGHUP (1) is below SIGUSR1 (10).
  bool flush_signals() {
    const int expected = std::stoi(get("usr1").empty() ? "0" : get("usr1")) + 1;
    ::kill(process_->pid(), SIGUSR1);
    return wait_status("usr1", std::to_string(expected));
  }

  std::string endpoint() const { return "unix://" + socket_.string(); }
  const std::filesystem::path& socket() const { return socket_; }
  Process& process() { return *process_; }

 private:
  std::filesystem::path socket_;
  std::filesystem::path status_;
  std::unique_ptr<Process> process_;
};

class CrioReloadTest : public ::testing::Test {
 protected:
  CrioReloadOptions reload_options(const Standin& s) const {
    return {.endpoint = s.endpoint(),
            .settle = std::chrono::milliseconds(300),
            .deadline = std::chrono::seconds(2),
            .call_timeout = std::chrono::milliseconds(500)};
  }
  std::filesystem::path dropin() const {
    return host_ / "etc/containers/registries.conf.d/99-stowage.conf";
  }
  std::filesystem::path backup() const { return dropin().string() + ".bak"; }

  TempDir dir_{"stowage-agent-crio"};
  TempDir host_{"stowage-agent-host"};
};

TEST_F(CrioReloadTest, ValidChangeIsWrittenAndReloadedBySameProcess) {
  Standin crio(dir_, host_.path(), "crio");
  ASSERT_EQ(crio.get("search"), "");
  CrioReloader reloader(reload_options(crio), real_clock());
  RegistriesApplier applier(host_.path(), &reloader);

  const ApplyResult r =
      applier.apply({.dropin = kSearchQuay, .hosts_toml = {}}, RuntimeKind::kCrio);
  ASSERT_TRUE(r.ok()) << r.message;
  EXPECT_TRUE(r.changed);
  EXPECT_TRUE(r.reloaded);
  EXPECT_EQ(reloader.last_pid(), crio.process().pid());
  EXPECT_TRUE(crio.wait_status("reloads_ok", "1")) << test::read_text_file(dir_ / "crio.status");
  EXPECT_EQ(crio.get("search"), "quay.io");
  EXPECT_EQ(crio.get("pid"), std::to_string(crio.process().pid()));
  EXPECT_TRUE(crio.process().running());
  const cri::Client client({.endpoint = crio.endpoint()});
  EXPECT_EQ(client.version().runtime_name, "cri-o");
  EXPECT_EQ(socket_peer_pid(crio.socket()), crio.process().pid());
}

TEST_F(CrioReloadTest, SecondIdenticalApplySendsNoSignal) {
  Standin crio(dir_, host_.path(), "crio");
  CrioReloader reloader(reload_options(crio), real_clock());
  RegistriesApplier applier(host_.path(), &reloader);
  ASSERT_TRUE(applier.apply({.dropin = kSearchQuay, .hosts_toml = {}}, RuntimeKind::kCrio).ok());
  ASSERT_TRUE(crio.wait_status("sighups", "1"));

  const ApplyResult r =
      applier.apply({.dropin = kSearchQuay, .hosts_toml = {}}, RuntimeKind::kCrio);
  ASSERT_TRUE(r.ok()) << r.message;
  EXPECT_EQ(r.message, "unchanged");
  EXPECT_FALSE(r.reloaded);
  ASSERT_TRUE(crio.flush_signals());
  EXPECT_EQ(crio.get("sighups"), "1");
}

TEST_F(CrioReloadTest, InvalidDropInIsRefusedAndRuntimeIsNotSignalled) {
  Standin crio(dir_, host_.path(), "crio");
  CrioReloader reloader(reload_options(crio), real_clock());
  RegistriesApplier applier(host_.path(), &reloader);
  ASSERT_TRUE(applier.apply({.dropin = kSearchQuay, .hosts_toml = {}}, RuntimeKind::kCrio).ok());
  ASSERT_TRUE(crio.wait_status("reloads_ok", "1"));

  const ApplyResult r = applier.apply(
      {.dropin = "unqualified-search-registries = [\"https://quay.io\"]\n", .hosts_toml = {}},
      RuntimeKind::kCrio);
  EXPECT_EQ(r.state, ApplyState::kFailed);
  EXPECT_THAT(r.message, HasSubstr("loading drop-in registries configuration"));
  EXPECT_THAT(r.message,
              HasSubstr("invalid location 'https://quay.io': URI schemes are not supported"));
  EXPECT_FALSE(r.changed);
  EXPECT_EQ(read_file(dropin()), kSearchQuay);
  ASSERT_TRUE(crio.flush_signals());
  EXPECT_EQ(crio.get("sighups"), "1");
  EXPECT_EQ(crio.get("search"), "quay.io");
}

TEST_F(CrioReloadTest, RuntimeThatDiesOnSighupGetsBackupRestoredAndFailed) {
  // Written by hand before the agent: the previous version to fall back to.
  test::write_text_file(dropin(), kSearchQuay);
  Standin crio(dir_, host_.path(), "crio", "exit");
  ASSERT_EQ(crio.get("search"), "quay.io");
  CrioReloader reloader(reload_options(crio), real_clock());
  RegistriesApplier applier(host_.path(), &reloader);

  const ApplyResult r =
      applier.apply({.dropin = kSearchCorp, .hosts_toml = {}}, RuntimeKind::kCrio);
  EXPECT_EQ(r.state, ApplyState::kFailed);
  EXPECT_TRUE(r.rolled_back);
  EXPECT_FALSE(r.reloaded);
  EXPECT_EQ(r.error, Code::kUnavailable);
  EXPECT_THAT(r.message, HasSubstr(fmt::format("CRI-O (pid {}, serving {}) exited after SIGHUP",
                                               crio.process().pid(), crio.socket().string())));
  EXPECT_THAT(r.message, HasSubstr("restored the previous drop-in, but reloading CRI-O again "
                                   "failed too"));
  EXPECT_EQ(read_file(dropin()), kSearchQuay);
  EXPECT_EQ(read_file(backup()), kSearchQuay);
  EXPECT_EQ(crio.process().wait(test::Clock::now() + std::chrono::seconds(5)), 3);
}

TEST_F(CrioReloadTest, RuntimeThatStopsAnsweringGetsBackupRestoredAndFailed) {
  test::write_text_file(dropin(), kSearchQuay);
  Standin crio(dir_, host_.path(), "crio", "hang");
  CrioReloader reloader(reload_options(crio), real_clock());
  RegistriesApplier applier(host_.path(), &reloader);

  const ApplyResult r =
      applier.apply({.dropin = kSearchCorp, .hosts_toml = {}}, RuntimeKind::kCrio);
  EXPECT_EQ(r.state, ApplyState::kFailed);
  EXPECT_TRUE(r.rolled_back);
  EXPECT_EQ(r.error, Code::kDeadlineExceeded);
  EXPECT_THAT(r.message,
              HasSubstr(fmt::format("did not answer within 2000 ms after SIGHUP to pid {}",
                                    crio.process().pid())));
  EXPECT_EQ(read_file(dropin()), kSearchQuay);
  EXPECT_TRUE(crio.process().running());
}

TEST_F(CrioReloadTest, RejectedReloadKeepsOldConfigInRuntime) {
  // CRI-O only logs a refused reload: the applier sees the same process answering and reports
  // success, which is why the drop-in is validated strictly before it is written.
  Standin crio(dir_, host_.path(), "crio", "reject");
  CrioReloader reloader(reload_options(crio), real_clock());
  RegistriesApplier applier(host_.path(), &reloader);
  const ApplyResult r =
      applier.apply({.dropin = kSearchQuay, .hosts_toml = {}}, RuntimeKind::kCrio);
  EXPECT_TRUE(r.ok()) << r.message;
  EXPECT_TRUE(crio.wait_status("reloads_rejected", "1"));
  EXPECT_EQ(crio.get("search"), "");
  EXPECT_TRUE(crio.process().running());
}

TEST_F(CrioReloadTest, PeerCredentialsPickTheProcessOfTheGivenSocket) {
  TempDir other_host{"stowage-agent-host-b"};
  Standin a(dir_, host_.path(), "a");
  Standin b(dir_, other_host.path(), "b");
  EXPECT_EQ(socket_peer_pid(a.socket()), a.process().pid());
  EXPECT_EQ(socket_peer_pid(b.socket()), b.process().pid());

  CrioReloader reloader(reload_options(b), real_clock());
  RegistriesApplier applier(other_host.path(), &reloader);
  const ApplyResult r =
      applier.apply({.dropin = kSearchCorp, .hosts_toml = {}}, RuntimeKind::kCrio);
  ASSERT_TRUE(r.ok()) << r.message;
  EXPECT_EQ(reloader.last_pid(), b.process().pid());
  EXPECT_TRUE(b.wait_status("reloads_ok", "1"));
  EXPECT_EQ(b.get("search"), "registry.corp");
  ASSERT_TRUE(a.flush_signals());
  EXPECT_EQ(a.get("sighups"), "0");
}

TEST_F(CrioReloadTest, NothingServingTheSocketIsUnavailable) {
  CrioReloader reloader({.endpoint = "unix://" + (dir_ / "absent.sock").string(),
                         .settle = std::chrono::milliseconds(100),
                         .deadline = std::chrono::seconds(1),
                         .call_timeout = std::chrono::milliseconds(200)},
                        real_clock());
  try {
    reloader.reload();
    FAIL() << "reload of an absent runtime succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kUnavailable);
    EXPECT_THAT(e.what(), HasSubstr("absent.sock"));
  }
}

}  // namespace
}  // namespace stowage::agent
