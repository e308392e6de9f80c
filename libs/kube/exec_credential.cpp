#include "kube/exec_credential.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>

#include "base/error.h"
#include "base/fd.h"
#include "kube/encoding.h"

extern char** environ;

namespace stowage::kube {
namespace {

using nlohmann::json;

constexpr std::size_t kMaxOutputBytes = 1u << 20;
constexpr std::size_t kStderrTailBytes = 400;

[[noreturn]] void unauthenticated(std::string message) {
  throw Error(Code::kUnauthenticated, std::move(message));
}

std::string plugin_name(const ExecConfig& config) {
  return fmt::format("exec plugin \"{}\"", config.command);
}

std::string string_member(const json& obj, const char* key, const std::string& what,
                          const ExecConfig& config) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    return {};
  }
  if (!it->is_string()) {
    unauthenticated(fmt::format("{}: {}.{} is not a string", plugin_name(config), what, key));
  }
  return it->get<std::string>();
}

// The last bytes of a plugin's stderr on one line, for messages.
std::string stderr_tail(std::string_view err) {
  while (!err.empty() && (err.back() == '\n' || err.back() == '\r' || err.back() == ' ')) {
    err.remove_suffix(1);
  }
  if (err.size() > kStderrTailBytes) {
    err = err.substr(err.size() - kStderrTailBytes);
  }
  std::string out;
  for (const char c : err) {
    const auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u == 0x7f) ? ' ' : c;
  }
  return out;
}

struct ProcessResult {
  int exit_code = -1;  // 128 + signal when a signal ended it
  std::string out;
  std::string err;
};

// Starts argv[0] (looked up on PATH when it has no '/') with `environment`, stdin from /dev/null,
// and collects stdout and stderr until it exits or `timeout` passes (then SIGKILL).
ProcessResult run_process(const ExecConfig& config, const std::vector<std::string>& argv,
                          const std::vector<std::string>& environment) {
  int out_pipe[2];
  int err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    unauthenticated(fmt::format("{}: pipe: {}", plugin_name(config), std::strerror(errno)));
  }
  Fd out_r(out_pipe[0]), out_w(out_pipe[1]);
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    unauthenticated(fmt::format("{}: pipe: {}", plugin_name(config), std::strerror(errno)));
  }
  Fd err_r(err_pipe[0]), err_w(err_pipe[1]);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_w.get(), 1);
  posix_spawn_file_actions_adddup2(&actions, err_w.get(), 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);

  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) {
    args.push_back(const_cast<char*>(a.c_str()));
  }
  args.push_back(nullptr);
  std::vector<char*> envp;
  envp.reserve(environment.size() + 1);
  for (const auto& e : environment) {
    envp.push_back(const_cast<char*>(e.c_str()));
  }
  envp.push_back(nullptr);

  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, args[0], &actions, &attr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    std::string message =
        fmt::format("{}: cannot start: {}", plugin_name(config), std::strerror(rc));
    if ((rc == ENOENT || rc == EACCES) && !config.install_hint.empty()) {
      message += "\n" + config.install_hint;
    }
    unauthenticated(std::move(message));
  }
  out_w.reset();
  err_w.reset();

  ProcessResult result;
  const auto deadline = std::chrono::steady_clock::now() + config.timeout;
  bool timed_out = false;
  bool too_much = false;
  pollfd fds[2] = {{out_r.get(), POLLIN, 0}, {err_r.get(), POLLIN, 0}};
  int open_fds = 2;
  while (open_fds > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    const int n = ::poll(fds, 2, static_cast<int>(std::min<long long>(left.count(), 1000)));
    if (n < 0 && errno != EINTR) {
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) {
        continue;
      }
      char buf[8192];
      const ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
      if (got > 0) {
        std::string& sink = i == 0 ? result.out : result.err;
        if (sink.size() + static_cast<std::size_t>(got) > kMaxOutputBytes) {
          too_much = true;
          break;
        }
        sink.append(buf, static_cast<std::size_t>(got));
      } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
        fds[i].fd = -1;
        --open_fds;
      }
    }
    if (too_much) {
      break;
    }
  }
  // Output closed: wait for the exit, still within the deadline (a plugin may close its output
  // and linger).
  int status = 0;
  while (!timed_out && !too_much) {
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid || (done < 0 && errno != EINTR)) {
      break;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      timed_out = true;
      break;
    }
    ::poll(nullptr, 0, 5);
  }
  if (timed_out || too_much) {
    ::kill(pid, SIGKILL);
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  if (timed_out) {
    throw Error(Code::kDeadlineExceeded, fmt::format("{}: did not finish within {} ms",
                                                     plugin_name(config), config.timeout.count()));
  }
  if (too_much) {
    unauthenticated(
        fmt::format("{}: printed more than {} bytes", plugin_name(config), kMaxOutputBytes));
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

}  // namespace

void validate_exec_config(const ExecConfig& c, std::string_view where) {
  if (c.api_version.empty()) {
    throw_invalid(fmt::format("{}.apiVersion: required", where));
  }
  if (c.api_version != kExecApiV1 && c.api_version != kExecApiV1Beta1) {
    throw_invalid(fmt::format("{}.apiVersion: \"{}\" is not supported (use {} or {})", where,
                              c.api_version, kExecApiV1, kExecApiV1Beta1));
  }
  if (c.command.empty()) {
    throw_invalid(fmt::format("{}.command: required", where));
  }
  if (c.interactive_mode.empty()) {
    if (c.api_version == kExecApiV1) {
      throw_invalid(fmt::format("{}.interactiveMode: required for {}", where, kExecApiV1));
    }
  } else if (c.interactive_mode != "Never" && c.interactive_mode != "IfAvailable" &&
             c.interactive_mode != "Always") {
    throw_invalid(fmt::format("{}.interactiveMode: \"{}\" is not Never, IfAvailable or Always",
                              where, c.interactive_mode));
  } else if (c.interactive_mode == "Always") {
    throw_invalid(
        fmt::format("{}.interactiveMode: Always needs a terminal, and this program "
                    "never runs plugins interactively",
                    where));
  }
  for (std::size_t i = 0; i < c.env.size(); ++i) {
    if (c.env[i].name.empty() || c.env[i].name.find('=') != std::string::npos) {
      throw_invalid(fmt::format("{}.env[{}].name: must be a non-empty name without '='", where, i));
    }
  }
}

std::string exec_info(const ExecConfig& config, const std::optional<json>& cluster) {
  json spec = {{"interactive", false}};
  if (config.provide_cluster_info && cluster) {
    spec["cluster"] = *cluster;
  }
  const json info = {
      {"apiVersion", config.api_version}, {"kind", "ExecCredential"}, {"spec", std::move(spec)}};
  return info.dump(-1, ' ', false, json::error_handler_t::replace);
}

ExecCredential parse_exec_credential(std::string_view output, const ExecConfig& config) {
  const json doc = json::parse(output, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    unauthenticated(fmt::format("{}: output is not a JSON ExecCredential", plugin_name(config)));
  }
  const std::string kind = string_member(doc, "kind", "ExecCredential", config);
  if (kind != "ExecCredential") {
    unauthenticated(
        fmt::format("{}: output has kind \"{}\", want ExecCredential", plugin_name(config), kind));
  }
  const std::string api = string_member(doc, "apiVersion", "ExecCredential", config);
  if (api != config.api_version) {
    unauthenticated(fmt::format("{}: output has apiVersion \"{}\", want \"{}\"",
                                plugin_name(config), api, config.api_version));
  }
  const auto status = doc.find("status");
  if (status == doc.end() || !status->is_object()) {
    unauthenticated(fmt::format("{}: output has no status", plugin_name(config)));
  }
  ExecCredential c;
  c.token = string_member(*status, "token", "status", config);
  c.client_cert_pem = string_member(*status, "clientCertificateData", "status", config);
  c.client_key_pem = string_member(*status, "clientKeyData", "status", config);
  if (c.client_cert_pem.empty() != c.client_key_pem.empty()) {
    unauthenticated(
        fmt::format("{}: status has only one of clientCertificateData and "
                    "clientKeyData",
                    plugin_name(config)));
  }
  if (c.token.empty() && c.client_cert_pem.empty()) {
    unauthenticated(fmt::format("{}: status has neither a token nor a client certificate",
                                plugin_name(config)));
  }
  const std::string expiry = string_member(*status, "expirationTimestamp", "status", config);
  if (!expiry.empty()) {
    c.expiration = parse_rfc3339(expiry);
    if (!c.expiration) {
      unauthenticated(fmt::format("{}: status.expirationTimestamp \"{}\" is not RFC 3339",
                                  plugin_name(config), expiry));
    }
  }
  return c;
}

ExecCredential run_exec_plugin(const ExecConfig& config, const std::optional<json>& cluster) {
  std::vector<std::string> argv{config.command};
  argv.insert(argv.end(), config.args.begin(), config.args.end());
  // The inherited environment, then the config's variables, then KUBERNETES_EXEC_INFO.
  std::map<std::string, std::string> vars;
  std::vector<std::string> order;
  auto put = [&](const std::string& name, const std::string& value) {
    if (vars.emplace(name, value).second) {
      order.push_back(name);
    } else {
      vars[name] = value;
    }
  };
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string_view entry(*e);
    const auto eq = entry.find('=');
    if (eq == std::string_view::npos) {
      continue;
    }
    put(std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1)));
  }
  for (const auto& v : config.env) {
    put(v.name, v.value);
  }
  put("KUBERNETES_EXEC_INFO", exec_info(config, cluster));
  std::vector<std::string> environment;
  environment.reserve(order.size());
  for (const auto& name : order) {
    environment.push_back(name + "=" + vars[name]);
  }

  const ProcessResult r = run_process(config, argv, environment);
  if (r.exit_code != 0) {
    std::string message =
        fmt::format("{}: exited with status {}", plugin_name(config), r.exit_code);
    if (const std::string tail = stderr_tail(r.err); !tail.empty()) {
      message += ": " + tail;
    }
    if (r.exit_code == 127 && !config.install_hint.empty()) {
      message += "\n" + config.install_hint;
    }
    unauthenticated(std::move(message));
  }
  return parse_exec_credential(r.out, config);
}

}  // namespace stowage::kube
