// A candidate process for the two-process leader election test. It runs a LeaderElector on one
// Lease with short timings and, while leading, appends "act <identity> <term> <monotonic-ms>"
// every 100 ms to a shared log, but only when the guard says it may act. The time is read before
// the check, so a line written late (after a SIGSTOP between check and write) still carries the
// moment the decision was taken. Term changes are logged as "lead"/"lost" lines.
//   leader_election_probe KUBECONFIG NAMESPACE LEASE IDENTITY LOG LEASE_MS RENEW_MS RETRY_MS
// Runs until SIGTERM/SIGINT, then releases the lease.
#include <fcntl.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <stop_token>
#include <string>
#include <thread>

#include "base/clock.h"
#include "http/client.h"
#include "kube/client.h"
#include "kube/config.h"
#include "kube/leader_election.h"

namespace {

using namespace stowage;

long long monotonic_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

class ActLog {
 public:
  explicit ActLog(const std::string& path)
      : fd_(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644)) {
    if (fd_ < 0) {
      std::perror(path.c_str());
      std::exit(2);
    }
  }
  ~ActLog() { ::close(fd_); }
  void line(const std::string& text) {
    const std::string l = text + "\n";
    if (::write(fd_, l.data(), l.size()) != static_cast<ssize_t>(l.size()) || ::fsync(fd_) != 0) {
      std::perror("writing the act log");
      std::exit(2);
    }
  }

 private:
  int fd_;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 9) {
    std::fprintf(stderr,
                 "usage: %s KUBECONFIG NAMESPACE LEASE IDENTITY LOG LEASE_MS RENEW_MS RETRY_MS\n",
                 argv[0]);
    return 2;
  }
  const std::string identity = argv[4];
  // SIGTERM/SIGINT are taken by a signal thread that requests the stop.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::stop_source stop;
  std::jthread signal_thread([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    stop.request_stop();
  });

  try {
    Clock& clock = real_clock();
    http::Client http(http::ClientOptions{.proxy = ""});
    const kube::RestConfig rest =
        kube::rest_config_from_kubeconfig(kube::load_kubeconfig({argv[1]}), "", clock);
    kube::ClientOptions client_options;
    client_options.request_timeout = std::chrono::milliseconds(2000);
    // Not client_options.stop: the release on shutdown still needs the client.
    kube::Client client(rest, http, clock, client_options);
    kube::KubeLeaseStore store(client, argv[2], argv[3]);
    ActLog log(argv[5]);

    kube::LeaderElectionConfig config;
    config.identity = identity;
    config.lease_duration = std::chrono::milliseconds(std::stoll(argv[6]));
    config.renew_deadline = std::chrono::milliseconds(std::stoll(argv[7]));
    config.retry_period = std::chrono::milliseconds(std::stoll(argv[8]));
    config.on_started_leading = [&](kube::LeaderGuard guard, std::stop_token work_stop) {
      log.line("lead " + identity + " " + std::to_string(guard.term()) + " " +
               std::to_string(monotonic_ms()));
      while (!work_stop.stop_requested()) {
        const long long now = monotonic_ms();
        if (guard.may_act()) {
          log.line("act " + identity + " " + std::to_string(guard.term()) + " " +
                   std::to_string(now));
        }
        clock.sleep_for(std::chrono::milliseconds(100), work_stop);
      }
    };
    config.on_stopped_leading = [&] {
      log.line("lost " + identity + " - " + std::to_string(monotonic_ms()));
    };
    kube::LeaderElector elector(store, clock, config);
    while (!stop.stop_requested()) elector.run(stop.get_token());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "leader_election_probe %s: %s\n", identity.c_str(), e.what());
    stop.request_stop();
    ::kill(::getpid(), SIGTERM);  // ends the signal thread
    return 1;
  }
  return 0;
}
