// A stand-in for CRI-O in the agent's integration tests. CRI-O has no Debian package, so this
// small program plays the two parts of CRI-O the registries applier relies on: it serves CRI
// RuntimeService.Version on its own unix socket (runtime_name "cri-o"), and on SIGHUP it re-reads
// registries.conf and its drop-in dir under a host root, keeping the old configuration when the
// new one does not load, as CRI-O does. It is not CRI-O and implements nothing else.
//
//   crio_standin --socket PATH --host-root DIR --status FILE [--on-sighup reload|exit|hang|reject]
//
// --on-sighup: reload (default) re-reads the files; exit ends the process (status 3) as a runtime
// that crashes on reload; hang stops answering Version; reject keeps the old configuration as if
// the new files were refused. After each event it rewrites FILE atomically with key=value lines:
// pid, sighups, reloads_ok, reloads_rejected, last_error, search (the loaded search registries,
// comma-separated), usr1 (SIGUSR1 count: tests send it to flush the signal queue).
#include <fmt/format.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "base/files.h"
#include "cri/api.grpc.pb.h"
#include "registries/conf.h"

namespace {

namespace fs = std::filesystem;

struct Settings {
  std::string socket;
  fs::path host_root;
  fs::path status;
  std::string on_sighup = "reload";
};

class State {
 public:
  explicit State(Settings settings) : settings_(std::move(settings)) {}

  void load(bool count) {
    std::lock_guard lock(mu_);
    try {
      if (settings_.on_sighup == "reject" && count) {
        throw std::runtime_error("reload refused (--on-sighup=reject)");
      }
      const auto config = stowage::registries::load_config(
          settings_.host_root / "etc/containers/registries.conf",
          settings_.host_root / "etc/containers/registries.conf.d", false);
      search_.clear();
      if (config.unqualified_search_registries) {
        for (const auto& s : *config.unqualified_search_registries) {
          search_ += (search_.empty() ? "" : ",") + s;
        }
      }
      if (count) ++reloads_ok_;
      last_error_.clear();
    } catch (const std::exception& e) {
      if (count) ++reloads_rejected_;
      last_error_ = e.what();
    }
    write_status_locked();
  }

  void sighup() {
    {
      std::lock_guard lock(mu_);
      ++sighups_;
      write_status_locked();
    }
    if (settings_.on_sighup == "exit") std::_Exit(3);
    if (settings_.on_sighup == "hang") {
      std::lock_guard lock(mu_);
      hung_ = true;
      return;
    }
    load(true);
  }

  void usr1() {
    std::lock_guard lock(mu_);
    ++usr1_;
    write_status_locked();
  }

  // Blocks while hung, until stop().
  void wait_if_hung() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !hung_ || stopping_; });
  }

  void stop() {
    std::lock_guard lock(mu_);
    stopping_ = true;
    cv_.notify_all();
  }

 private:
  void write_status_locked() {
    stowage::atomic_write_file(
        settings_.status,
        fmt::format("pid={}\nsighups={}\nreloads_ok={}\nreloads_rejected={}\nlast_error={}\n"
                    "search={}\nusr1={}\n",
                    ::getpid(), sighups_, reloads_ok_, reloads_rejected_, last_error_, search_,
                    usr1_));
  }

  Settings settings_;
  std::mutex mu_;  // guards everything below
  std::condition_variable cv_;
  int sighups_ = 0;
  int reloads_ok_ = 0;
  int reloads_rejected_ = 0;
  int usr1_ = 0;
  std::string last_error_;
  std::string search_;
  bool hung_ = false;
  bool stopping_ = false;
};

class RuntimeService final : public runtime::v1::RuntimeService::Service {
 public:
  explicit RuntimeService(State& state) : state_(state) {}

  grpc::Status Version(grpc::ServerContext*, const runtime::v1::VersionRequest*,
                       runtime::v1::VersionResponse* response) override {
    state_.wait_if_hung();
    response->set_version("0.1.0");
    response->set_runtime_name("cri-o");
    response->set_runtime_version("0.0.0-stowage-test-standin");
    response->set_runtime_api_version("v1");
    return grpc::Status::OK;
  }

 private:
  State& state_;
};

int usage() {
  std::cerr << "usage: crio_standin --socket PATH --host-root DIR --status FILE "
               "[--on-sighup reload|exit|hang|reject]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Settings settings;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const std::string value = argv[i + 1];
    if (flag == "--socket") {
      settings.socket = value;
    } else if (flag == "--host-root") {
      settings.host_root = value;
    } else if (flag == "--status") {
      settings.status = value;
    } else if (flag == "--on-sighup") {
      settings.on_sighup = value;
    } else {
      return usage();
    }
  }
  if (argc % 2 == 0 || settings.socket.empty() || settings.host_root.empty() ||
      settings.status.empty()) {
    return usage();
  }
  if (settings.on_sighup != "reload" && settings.on_sighup != "exit" &&
      settings.on_sighup != "hang" && settings.on_sighup != "reject") {
    return usage();
  }

  // Signals are taken by one thread with sigwait: block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  for (const int s : {SIGHUP, SIGTERM, SIGINT, SIGUSR1}) sigaddset(&signals, s);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  State state(settings);
  state.load(false);

  std::error_code ec;
  fs::remove(settings.socket, ec);
  RuntimeService service(state);
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + settings.socket, grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) {
    std::cerr << "crio_standin: cannot serve on " << settings.socket << "\n";
    return 1;
  }
  std::cerr << "crio_standin: serving CRI Version on " << settings.socket << "\n";

  std::thread signal_thread([&] {
    while (true) {
      int sig = 0;
      if (sigwait(&signals, &sig) != 0) continue;
      if (sig == SIGHUP) {
        state.sighup();
      } else if (sig == SIGUSR1) {
        state.usr1();
      } else {
        state.stop();
        server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
        return;
      }
    }
  });
  server->Wait();
  signal_thread.join();
  return 0;
}
