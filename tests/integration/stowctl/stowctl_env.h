// Runs the stowctl binary as a user would, hermetically: every invocation gets its own --root,
// --registries-conf, --authfile and --cert-dir inside a temp dir, with HOME, XDG_* and TMPDIR
// pointed there too, so nothing on the machine is read or written. Shared by the stowctl
// integration tests, with the checks every one of them makes on outputs.
//   StowctlEnv env;
//   env.allow_insecure(registry.host());
//   const auto r = env.run({"pull", registry.host() + "/team/app:1"});
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "support/process.h"

namespace stowage::itest {

// The stowctl binary under test (STOWCTL_PATH, set by CMake).
std::string stowctl_path();

class StowctlEnv {
 public:
  explicit StowctlEnv(std::string_view name = "stowctl-test");

  // stowctl with the hermetic global flags first, then `args`.
  test::RunResult run(const std::vector<std::string>& args, std::string stdin_data = {},
                      std::chrono::milliseconds timeout = std::chrono::seconds(60)) const;
  // The same, started in the background (stdout and stderr in files under the temp dir).
  std::unique_ptr<test::Process> start(const std::vector<std::string>& args,
                                       std::string_view log_name) const;

  // Replaces registries.conf.
  void write_registries_conf(std::string_view text) const;
  // registries.conf marking each host insecure (plain HTTP allowed), nothing else.
  void allow_insecure(const std::vector<std::string>& hosts) const;
  // Trusts `ca_pem` for `host` (<cert-dir>/<host>/ca.crt).
  void trust_ca(const std::string& host, const std::string& ca_pem) const;

  const std::filesystem::path& dir() const { return dir_.path(); }
  std::filesystem::path root() const { return dir_ / "root"; }
  std::filesystem::path registries_conf() const { return dir_ / "registries.conf"; }
  std::filesystem::path authfile() const { return dir_ / "auth.json"; }
  std::filesystem::path cert_dir() const { return dir_ / "certs.d"; }
  std::filesystem::path path(std::string_view name) const { return dir_ / name; }

  // The global flags placed before every command.
  std::vector<std::string> global_flags() const;
  test::RunOptions run_options() const;

 private:
  test::TempDir dir_;
};

// Why these tests cannot run here (docker-registry or skopeo missing), or nullopt.
std::optional<std::string> registry_skip_reason();

// The failure shape every stowctl error must have: a non-zero exit, no timeout, and stderr is
// exactly one line starting "Error: " (no stack trace, no "terminate called").
::testing::AssertionResult fails_with_one_error_line(const test::RunResult& r);

// Standard base64 with padding (what auth.json and HTTP Basic carry).
std::string base64(std::string_view data);

// Lines of `text` without their newlines (a trailing newline gives no empty last line).
std::vector<std::string> lines(const std::string& text);
// The first whitespace-separated column of each line after the header (table outputs).
std::vector<std::string> first_column(const std::string& table);

}  // namespace stowage::itest
