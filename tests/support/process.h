// Test support for the integration and e2e tiers: child processes (daemons and run-to-completion
// tools) with their output in files, polling with a deadline, free loopback ports and temp dirs.
// Used by the registry and containerd fixtures and directly by tests that drive real peers.
// Nothing here is thread-safe unless said so; one test thread owns each object.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace stowage::test {

using Clock = std::chrono::steady_clock;

// A fresh directory under $TMPDIR (or /tmp) removed with its contents on destruction. Set
// STOWAGE_KEEP_TEMP=1 to keep it for a post-mortem (its path is printed to stderr then).
class TempDir {
 public:
  explicit TempDir(std::string_view prefix = "stowage-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(std::string_view name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// Writes `contents` to `path`, creating parent directories. Throws stowage::Error.
void write_text_file(const std::filesystem::path& path, std::string_view contents);
// The whole file, or "" when it does not exist or cannot be read (for logs and diagnostics).
std::string read_text_file(const std::filesystem::path& path);

// The absolute path of `name` on $PATH (plus /usr/sbin and /sbin), or nullopt. A name containing
// '/' is returned as is when it is an executable file.
std::optional<std::filesystem::path> find_executable(std::string_view name);

// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released). Another
// process may take it before the caller binds it: servers started on it should retry on
// "address already in use".
int free_port();

// True when a unix socket at `path` accepts a connection.
bool unix_socket_accepts(const std::filesystem::path& path);

// Plain-HTTP GET of `path` on 127.0.0.1:`port`; the response status code, or nullopt when nothing
// answered within `timeout` (refused, reset, not HTTP).
std::optional<int> http_get_status(int port, std::string_view path,
                                   std::chrono::milliseconds timeout = std::chrono::seconds(2));

// Calls `predicate` until it returns true or `deadline` passes, at a short, growing interval
// (5 ms to 100 ms). Returns whether it became true; it is checked once more at the deadline.
bool wait_for(const std::function<bool()>& predicate, Clock::time_point deadline);
bool wait_for(const std::function<bool()>& predicate, std::chrono::milliseconds timeout);

// Environment variables the fixtures remove from their children: proxies (Go and curl honour
// them, which would send loopback-only tests elsewhere) and CONTAINERD_*/REGISTRY_* overrides.
const std::vector<std::string>& hermetic_unset_env();

struct ProcessOptions {
  // argv[0] is the program: a path, or a name looked up with find_executable().
  std::vector<std::string> argv;
  // Set on top of the inherited environment (after `unset_env` is applied).
  std::vector<std::pair<std::string, std::string>> env;
  // Names removed from the inherited environment; a trailing '*' matches a prefix.
  std::vector<std::string> unset_env = hermetic_unset_env();
  // Empty: /dev/null. stdout and stderr may name the same file (both append to it).
  std::filesystem::path stdin_path;
  std::filesystem::path stdout_path;
  std::filesystem::path stderr_path;
  // Empty: the current directory.
  std::filesystem::path working_dir;
};

// A running child process. It leads its own process group and is killed (SIGKILL) if the thread
// that started it dies. stop() and the destructor end the whole group: SIGTERM, then SIGKILL
// after the grace period. Processes that leave the group (setsid daemons, containerd shims) are
// not reached.
class Process {
 public:
  // Starts the program; throws stowage::Error (NotFound when the program is missing, Internal
  // when fork/exec fails) naming the command.
  explicit Process(ProcessOptions options);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  // False once the process has exited (it is reaped then).
  bool running();
  // The exit status, or 128 + signal number when a signal ended it; nullopt while running.
  std::optional<int> exit_code() const { return exit_code_; }
  // Waits for the process to exit until `deadline`; its exit code, or nullopt on timeout.
  std::optional<int> wait(Clock::time_point deadline);
  // SIGTERM to the group, SIGKILL after `grace`; returns the exit code. Idempotent.
  int stop(std::chrono::milliseconds grace = std::chrono::seconds(10));

  const ProcessOptions& options() const { return options_; }
  std::string stdout_text() const { return read_text_file(options_.stdout_path); }
  std::string stderr_text() const { return read_text_file(options_.stderr_path); }
  // The command line, state, and the last `tail_bytes` of stderr (and of stdout when it is a
  // different file), for assertion and exception messages.
  std::string describe(std::size_t tail_bytes = 4000) const;

 private:
  void reap(int status);

  ProcessOptions options_;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  std::optional<int> exit_code_;
};

struct RunOptions {
  std::vector<std::pair<std::string, std::string>> env;
  std::vector<std::string> unset_env = hermetic_unset_env();
  std::filesystem::path working_dir;
  // Written to the child's stdin; empty: /dev/null.
  std::string stdin_data;
  // The child is stopped (SIGTERM, then SIGKILL) when it runs longer.
  std::chrono::milliseconds timeout = std::chrono::seconds(60);
};

struct RunResult {
  std::string command;  // argv joined with spaces, for messages
  int exit_code = -1;   // 128 + signal number when a signal ended it
  bool timed_out = false;
  std::string out;
  std::string err;

  bool ok() const { return exit_code == 0 && !timed_out; }
  // Command, exit code and both outputs, for assertion messages.
  std::string describe() const;
};

// Runs a command to completion with its output captured. Throws only when it cannot be started.
RunResult run(std::vector<std::string> argv, const RunOptions& options = {});

// Joins argv with spaces, quoting arguments that need it, for messages.
std::string join_command(const std::vector<std::string>& argv);

}  // namespace stowage::test
