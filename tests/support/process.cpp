#include "support/process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <system_error>
#include <thread>

#include "base/error.h"
#include "base/fd.h"

extern char** environ;

namespace stowage::test {
namespace {

using std::chrono::milliseconds;

[[noreturn]] void throw_sys(std::string_view doing) {
  const int err = errno;
  throw Error(Code::kInternal, fmt::format("{}: {}", doing, std::strerror(err)));
}

std::string tail(const std::string& text, std::size_t bytes) {
  if (text.size() <= bytes) return text;
  return "..." + text.substr(text.size() - bytes);
}

bool env_name_matches(std::string_view name, const std::vector<std::string>& patterns) {
  for (const auto& p : patterns) {
    if (!p.empty() && p.back() == '*') {
      if (name.starts_with(std::string_view(p).substr(0, p.size() - 1))) return true;
    } else if (name == p) {
      return true;
    }
  }
  return false;
}

std::vector<std::string> child_environment(const ProcessOptions& options) {
  std::vector<std::string> out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string_view entry(*e);
    const std::string_view name = entry.substr(0, entry.find('='));
    if (env_name_matches(name, options.unset_env)) continue;
    const bool overridden = std::any_of(options.env.begin(), options.env.end(),
                                        [&](const auto& kv) { return kv.first == name; });
    if (!overridden) out.emplace_back(entry);
  }
  for (const auto& [k, v] : options.env) out.push_back(std::string(k).append("=").append(v));
  return out;
}

int open_or_throw(const std::filesystem::path& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
  if (fd < 0) throw_sys(fmt::format("opening {}", path.string()));
  return fd;
}

int pidfd_open(pid_t pid) {
#ifdef SYS_pidfd_open
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#else
  (void)pid;
  return -1;
#endif
}

}  // namespace

TempDir::TempDir(std::string_view prefix) {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl =
      fmt::format("{}/{}-XXXXXX", base != nullptr && *base != '\0' ? base : "/tmp", prefix);
  if (::mkdtemp(tmpl.data()) == nullptr) throw_sys(fmt::format("creating temp dir {}", tmpl));
  path_ = tmpl;
}

TempDir::~TempDir() {
  const char* keep = std::getenv("STOWAGE_KEEP_TEMP");
  if (keep != nullptr && *keep != '\0' && std::string_view(keep) != "0") {
    std::cerr << "stowage-test: keeping " << path_ << "\n";
    return;
  }
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
  if (ec) std::cerr << "stowage-test: could not remove " << path_ << ": " << ec.message() << "\n";
}

void write_text_file(const std::filesystem::path& path, std::string_view contents) {
  std::error_code ec;
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), ec);
  if (ec) {
    throw Error(Code::kInternal,
                fmt::format("creating {}: {}", path.parent_path().string(), ec.message()));
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
  out.close();
  if (!out) throw Error(Code::kInternal, fmt::format("writing {}", path.string()));
}

std::string read_text_file(const std::filesystem::path& path) {
  if (path.empty()) return "";
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::optional<std::filesystem::path> find_executable(std::string_view name) {
  const auto usable = [](const std::filesystem::path& p) {
    std::error_code ec;
    return std::filesystem::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0;
  };
  if (name.empty()) return std::nullopt;
  if (name.find('/') != std::string_view::npos) {
    const std::filesystem::path p(name);
    return usable(p) ? std::optional(p) : std::nullopt;
  }
  const char* env_path = std::getenv("PATH");
  std::string dirs = env_path != nullptr ? env_path : "/usr/local/bin:/usr/bin:/bin";
  dirs += ":/usr/local/sbin:/usr/sbin:/sbin";
  std::istringstream ss(dirs);
  for (std::string dir; std::getline(ss, dir, ':');) {
    if (dir.empty()) continue;
    const auto candidate = std::filesystem::path(dir) / name;
    if (usable(candidate)) return candidate;
  }
  return std::nullopt;
}

int free_port() {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) throw_sys("free_port: socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    throw_sys("free_port: bind 127.0.0.1:0");
  }
  socklen_t len = sizeof addr;
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    throw_sys("free_port: getsockname");
  }
  return ntohs(addr.sin_port);
}

bool unix_socket_accepts(const std::filesystem::path& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string p = path.string();
  if (p.size() >= sizeof addr.sun_path) return false;
  std::memcpy(addr.sun_path, p.c_str(), p.size() + 1);
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return false;
  return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
}

std::optional<int> http_get_status(int port, std::string_view path, milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  const auto wait_io = [&](int fd, short events) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd, events, 0};
    return ::poll(&p, 1, static_cast<int>(left)) == 1 && (p.revents & (events | POLLHUP)) != 0;
  };
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (fd.get() < 0) return std::nullopt;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno != EINPROGRESS || !wait_io(fd.get(), POLLOUT)) return std::nullopt;
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
      return std::nullopt;
    }
  }
  const std::string request = fmt::format(
      "GET {} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUser-Agent: stowage-test\r\nConnection: "
      "close\r\n\r\n",
      path, port);
  std::size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = ::send(fd.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!wait_io(fd.get(), POLLOUT)) return std::nullopt;
    } else {
      return std::nullopt;
    }
  }
  std::string response;
  while (response.find("\r\n") == std::string::npos && response.size() < 4096) {
    if (!wait_io(fd.get(), POLLIN)) return std::nullopt;
    char buf[1024];
    const ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    if (n > 0) {
      response.append(buf, static_cast<std::size_t>(n));
    } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
      break;
    }
  }
  // "HTTP/1.1 200 OK"
  if (!response.starts_with("HTTP/1.") || response.size() < 12 || response[8] != ' ') {
    return std::nullopt;
  }
  int status = 0;
  for (std::size_t i = 9; i < 12; ++i) {
    if (response[i] < '0' || response[i] > '9') return std::nullopt;
    status = status * 10 + (response[i] - '0');
  }
  return status;
}

bool wait_for(const std::function<bool()>& predicate, Clock::time_point deadline) {
  milliseconds interval(5);
  while (true) {
    if (predicate()) return true;
    const auto now = Clock::now();
    if (now >= deadline) return false;
    std::this_thread::sleep_until(std::min(now + interval, deadline));
    interval = std::min(interval * 2, milliseconds(100));
    if (Clock::now() >= deadline) return predicate();
  }
}

bool wait_for(const std::function<bool()>& predicate, milliseconds timeout) {
  return wait_for(predicate, Clock::now() + timeout);
}

const std::vector<std::string>& hermetic_unset_env() {
  static const std::vector<std::string> kNames = {
      "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY",  "all_proxy",
      "ALL_PROXY",  "no_proxy",    "NO_PROXY",   "CONTAINERD_*", "REGISTRY_*"};
  return kNames;
}

std::string join_command(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) {
    if (!out.empty()) out += ' ';
    const bool plain = !a.empty() && a.find_first_not_of(
                                         "abcdefghijklmnopqrstuvwxyz"
                                         "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                         "0123456789-_./:=@,+%") == std::string::npos;
    if (plain) {
      out += a;
    } else {
      out += '\'';
      for (const char c : a) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
      out += '\'';
    }
  }
  return out;
}

Process::Process(ProcessOptions options) : options_(std::move(options)) {
  if (options_.argv.empty()) throw Error(Code::kInvalidArgument, "starting a process: empty argv");
  const std::string command = join_command(options_.argv);
  const auto program = find_executable(options_.argv[0]);
  if (!program) {
    throw Error(Code::kNotFound,
                fmt::format("starting `{}`: {} not found on PATH", command, options_.argv[0]));
  }

  // Everything the child needs is prepared before fork(): after it, only async-signal-safe calls.
  const std::string program_path = program->string();
  std::vector<char*> argv;
  argv.reserve(options_.argv.size() + 1);
  for (auto& a : options_.argv) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_strings = child_environment(options_);
  std::vector<char*> envp;
  envp.reserve(env_strings.size() + 1);
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  const std::string working_dir = options_.working_dir.string();

  Fd in(open_or_throw(options_.stdin_path.empty() ? "/dev/null" : options_.stdin_path, O_RDONLY));
  constexpr int out_flags = O_WRONLY | O_CREAT | O_TRUNC | O_APPEND;
  Fd out(
      open_or_throw(options_.stdout_path.empty() ? "/dev/null" : options_.stdout_path, out_flags));
  Fd err;
  if (!options_.stderr_path.empty() && options_.stderr_path == options_.stdout_path) {
    err.reset(::dup(out.get()));
    if (err.get() < 0) throw_sys("dup");
  } else {
    err.reset(open_or_throw(options_.stderr_path.empty() ? "/dev/null" : options_.stderr_path,
                            out_flags));
  }
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw_sys("pipe2");
  Fd exec_error_read(pipe_fds[0]);
  Fd exec_error_write(pipe_fds[1]);

  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw_sys(fmt::format("starting `{}`: fork", command));
  if (pid == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; ++s) {
      if (s != SIGKILL && s != SIGSTOP) ::sigaction(s, &dfl, nullptr);
    }
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    int step_errno = 0;
    if (!working_dir.empty() && ::chdir(working_dir.c_str()) != 0) step_errno = errno;
    // dup2 onto itself keeps O_CLOEXEC: clear it instead.
    const auto place = [](int from, int to) {
      return from == to ? ::fcntl(to, F_SETFD, 0) : ::dup2(from, to);
    };
    if (step_errno == 0 &&
        (place(in.get(), 0) < 0 || place(out.get(), 1) < 0 || place(err.get(), 2) < 0)) {
      step_errno = errno;
    }
    if (step_errno == 0) {
#ifdef SYS_close_range
      // Every other inherited descriptor closes at exec (the error pipe stays open until then).
      ::syscall(SYS_close_range, 3U, ~0U, 4U /* CLOSE_RANGE_CLOEXEC */);
#endif
      ::execve(program_path.c_str(), argv.data(), envp.data());
      step_errno = errno;
    }
    [[maybe_unused]] const ssize_t n =
        ::write(exec_error_write.get(), &step_errno, sizeof step_errno);
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // also here, so that signalling the group right away cannot miss it
  pid_ = pid;
  exec_error_write.reset();
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(exec_error_read.get(), &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  if (n > 0) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    pid_ = -1;
    throw Error(Code::kInternal,
                fmt::format("starting `{}`: {}", command, std::strerror(child_errno)));
  }
  pidfd_ = pidfd_open(pid);
}

Process::~Process() {
  if (pid_ > 0) stop();
  if (pidfd_ >= 0) ::close(pidfd_);
}

void Process::reap(int status) {
  if (WIFEXITED(status)) {
    exit_code_ = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    exit_code_ = 128 + WTERMSIG(status);
  } else {
    exit_code_ = -1;
  }
}

bool Process::running() {
  if (exit_code_ || pid_ <= 0) return false;
  int status = 0;
  const pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    reap(status);
    return false;
  }
  if (r < 0 && errno == ECHILD) {
    exit_code_ = -1;
    return false;
  }
  return true;
}

std::optional<int> Process::wait(Clock::time_point deadline) {
  while (running()) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return std::nullopt;
    if (pidfd_ >= 0) {
      // Readable once the process has exited: no polling interval.
      pollfd p{pidfd_, POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 60'000)));
    } else {
      wait_for([&] { return !running(); }, std::min(deadline, Clock::now() + milliseconds(200)));
    }
  }
  return exit_code_;
}

int Process::stop(milliseconds grace) {
  if (pid_ <= 0) return exit_code_.value_or(-1);
  if (running()) {
    ::kill(-pid_, SIGTERM);
    if (!wait(Clock::now() + grace)) {
      ::kill(-pid_, SIGKILL);
      if (!wait(Clock::now() + std::chrono::seconds(30))) {
        int status = 0;
        if (::waitpid(pid_, &status, 0) == pid_) reap(status);
      }
    }
    // Members of the group that outlived its leader. The group id cannot be reused while any
    // member is alive, so this reaches only our own stragglers.
    ::kill(-pid_, SIGKILL);
  }
  return exit_code_.value_or(-1);
}

std::string Process::describe(std::size_t tail_bytes) const {
  std::string state = exit_code_ ? fmt::format("exited with code {}", *exit_code_) : "running";
  std::string out = fmt::format("`{}` (pid {}, {})", join_command(options_.argv), pid_, state);
  if (!options_.stderr_path.empty()) {
    out += fmt::format("\n--- {} ---\n{}", options_.stderr_path.string(),
                       tail(stderr_text(), tail_bytes));
  }
  if (!options_.stdout_path.empty() && options_.stdout_path != options_.stderr_path) {
    out += fmt::format("\n--- {} ---\n{}", options_.stdout_path.string(),
                       tail(stdout_text(), tail_bytes));
  }
  return out;
}

std::string RunResult::describe() const {
  return fmt::format(
      "`{}` {}\n--- stdout ---\n{}\n--- stderr ---\n{}", command,
      timed_out ? std::string("timed out") : fmt::format("exited with code {}", exit_code),
      tail(out, 4000), tail(err, 4000));
}

RunResult run(std::vector<std::string> argv, const RunOptions& options) {
  TempDir dir("stowage-run");
  RunResult result;
  result.command = join_command(argv);
  ProcessOptions po;
  po.argv = std::move(argv);
  po.env = options.env;
  po.unset_env = options.unset_env;
  po.working_dir = options.working_dir;
  po.stdout_path = dir / "stdout";
  po.stderr_path = dir / "stderr";
  if (!options.stdin_data.empty()) {
    po.stdin_path = dir / "stdin";
    write_text_file(po.stdin_path, options.stdin_data);
  }
  Process process(std::move(po));
  const auto code = process.wait(Clock::now() + options.timeout);
  if (!code) {
    result.timed_out = true;
    result.exit_code = process.stop(std::chrono::seconds(2));
  } else {
    result.exit_code = *code;
  }
  result.out = process.stdout_text();
  result.err = process.stderr_text();
  return result;
}

}  // namespace stowage::test
