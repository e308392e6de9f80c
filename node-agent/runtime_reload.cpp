#include "node-agent/runtime_reload.h"

#include <fmt/format.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <optional>
#include <stop_token>
#include <utility>

#include "base/error.h"
#include "base/fd.h"
#include "cri/client.h"

namespace stowage::agent {
namespace {

int open_pidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#else
  (void)pid;
  errno = ENOSYS;
  return -1;
#endif
}

// Sends `sig` through the pidfd when there is one (immune to PID reuse), else by PID.
int send_signal(int pidfd, pid_t pid, int sig) {
#ifdef SYS_pidfd_send_signal
  if (pidfd >= 0) return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
#else
  (void)pidfd;
#endif
  return ::kill(pid, sig);
}

// True when the process behind `pidfd` exits within `wait` (a pidfd polls readable then).
// Without a pidfd, checks by PID once the time has passed.
bool exits_within(int pidfd, pid_t pid, std::chrono::milliseconds wait) {
  if (pidfd < 0) {
    ::poll(nullptr, 0, static_cast<int>(wait.count()));
    return ::kill(pid, 0) != 0 && errno == ESRCH;
  }
  pollfd p{.fd = pidfd, .events = POLLIN, .revents = 0};
  int rc;
  do {
    rc = ::poll(&p, 1, static_cast<int>(wait.count()));
  } while (rc < 0 && errno == EINTR);
  return rc > 0;
}

}  // namespace

pid_t socket_peer_pid(const std::filesystem::path& socket_path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string path = socket_path.string();
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    throw Error(Code::kInvalidArgument,
                fmt::format("CRI socket path \"{}\" is empty or too long for a unix socket", path));
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) {
    throw Error(Code::kInternal, fmt::format("creating a unix socket: {}", std::strerror(errno)));
  }
  int rc;
  do {
    rc = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    const int err = errno;
    throw Error(err == EACCES || err == EPERM ? Code::kPermissionDenied : Code::kUnavailable,
                fmt::format("connecting to CRI socket {} to find its server: {}", path,
                            std::strerror(err)));
  }
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
    throw Error(Code::kInternal,
                fmt::format("SO_PEERCRED on CRI socket {}: {}", path, std::strerror(errno)));
  }
  if (cred.pid <= 0) {
    throw Error(Code::kNotFound,
                fmt::format("the process serving CRI socket {} is outside this PID namespace "
                            "(the agent needs the host's PID namespace to signal it)",
                            path));
  }
  return cred.pid;
}

CrioReloader::CrioReloader(CrioReloadOptions options, Clock& clock)
    : options_(std::move(options)),
      clock_(clock),
      socket_path_(cri::parse_endpoint(options_.endpoint)) {}

void CrioReloader::reload() {
  const pid_t pid = socket_peer_pid(socket_path_);
  Fd pidfd(open_pidfd(pid));
  if (pidfd.get() < 0 && errno == ESRCH) {
    throw Error(Code::kUnavailable,
                fmt::format("the process serving {} (pid {}) exited before it could be signalled",
                            socket_path_, pid));
  }
  // The PID may have been reused between SO_PEERCRED and pidfd_open: ask again, so the pidfd
  // is known to name the process that serves the socket.
  if (const pid_t again = socket_peer_pid(socket_path_); again != pid) {
    throw Error(Code::kConflict,
                fmt::format("the server of {} changed from pid {} to pid {} while preparing "
                            "to reload it",
                            socket_path_, pid, again));
  }
  if (send_signal(pidfd.get(), pid, SIGHUP) < 0) {
    const int err = errno;
    throw Error(err == EPERM ? Code::kPermissionDenied : Code::kUnavailable,
                fmt::format("sending SIGHUP to pid {} serving {}: {}", pid, socket_path_,
                            std::strerror(err)));
  }
  last_pid_ = pid;

  if (exits_within(pidfd.get(), pid, options_.settle)) {
    throw Error(Code::kUnavailable,
                fmt::format("CRI-O (pid {}, serving {}) exited after SIGHUP", pid, socket_path_));
  }
  const cri::Client client(cri::ClientOptions{.endpoint = socket_path_,
                                              .timeout = options_.call_timeout,
                                              .pull_timeout = options_.call_timeout,
                                              .max_receive_message_bytes = 4 * 1024 * 1024});
  const Clock::TimePoint deadline =
      clock_.now() + std::chrono::duration_cast<Clock::Duration>(options_.deadline);
  std::optional<std::string> last_error;
  while (true) {
    try {
      client.version();
      last_error.reset();
      break;
    } catch (const Error& e) {
      last_error = e.what();
    }
    if (exits_within(pidfd.get(), pid, std::chrono::milliseconds(0))) {
      throw Error(Code::kUnavailable,
                  fmt::format("CRI-O (pid {}, serving {}) exited after SIGHUP", pid, socket_path_));
    }
    if (clock_.now() >= deadline) break;
    clock_.sleep_for(std::chrono::milliseconds(100), std::stop_token{});
  }
  if (last_error) {
    throw Error(Code::kDeadlineExceeded,
                fmt::format("CRI Version on {} did not answer within {} ms after SIGHUP to pid "
                            "{}: {}",
                            socket_path_, options_.deadline.count(), pid, *last_error));
  }
  if (exits_within(pidfd.get(), pid, std::chrono::milliseconds(0))) {
    throw Error(Code::kUnavailable,
                fmt::format("CRI-O (pid {}, serving {}) exited after SIGHUP", pid, socket_path_));
  }
  const pid_t after = socket_peer_pid(socket_path_);
  if (after != pid) {
    throw Error(Code::kUnavailable,
                fmt::format("{} is now served by pid {}, not by pid {} that was sent SIGHUP: the "
                            "runtime restarted instead of reloading",
                            socket_path_, after, pid));
  }
}

}  // namespace stowage::agent
