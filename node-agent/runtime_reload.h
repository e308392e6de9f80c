// Makes a node's CRI-O re-read its registries configuration: SIGHUP to the process that serves
// the CRI socket, found with SO_PEERCRED on a connection to that socket (so each agent signals
// only its own node's runtime; the agent pod needs hostPID to see that process), then a check that
// the same process still answers CRI Version within a deadline.
//   CrioReloader reloader({.endpoint = "unix:///var/run/crio/crio.sock"}, real_clock());
//   reloader.reload();  // throws stowage::Error with the reason when CRI-O did not come through
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <string>

#include "base/clock.h"
#include "cri/endpoint.h"

namespace stowage::agent {

// The PID of the process serving the unix socket at `socket_path` (SO_PEERCRED of a fresh
// connection). Throws Error: kUnavailable when nothing accepts connections there, kNotFound when
// that process is outside this PID namespace (the kernel reports PID 0 then).
pid_t socket_peer_pid(const std::filesystem::path& socket_path);

// A runtime's configuration reload: the seam between the registries applier and the runtime.
class RuntimeReloader {
 public:
  virtual ~RuntimeReloader() = default;
  // Makes the runtime re-read its registries configuration and checks it is still serving.
  // Throws stowage::Error with the reason when it is not.
  virtual void reload() = 0;
};

struct CrioReloadOptions {
  // CRI-O's CRI endpoint as this process sees it ("unix:///var/run/crio/crio.sock").
  std::string endpoint = std::string(cri::kCrioEndpoint);
  // How long the signalled process must stay alive after SIGHUP before its answers count.
  std::chrono::milliseconds settle = std::chrono::milliseconds(300);
  // How long after the signal CRI Version may take to answer again.
  std::chrono::milliseconds deadline = std::chrono::seconds(10);
  // Deadline of each Version call within that window.
  std::chrono::milliseconds call_timeout = std::chrono::seconds(2);
};

// Reloads CRI-O by SIGHUP. CRI-O keeps its old configuration and only logs when it rejects a
// reload, so success here means "still serving, same process", not "new config accepted": the
// caller validates the files strictly before writing them. Not thread-safe.
class CrioReloader final : public RuntimeReloader {
 public:
  // `clock` is borrowed and must outlive the reloader.
  CrioReloader(CrioReloadOptions options, Clock& clock);

  void reload() override;
  // The PID that the last reload() signalled; -1 before the first.
  pid_t last_pid() const { return last_pid_; }

 private:
  CrioReloadOptions options_;
  Clock& clock_;
  std::string socket_path_;
  pid_t last_pid_ = -1;
};

}  // namespace stowage::agent
