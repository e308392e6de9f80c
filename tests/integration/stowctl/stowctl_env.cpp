#include "stowctl_env.h"

#include <fmt/format.h>

#include <sstream>

#include "support/image_seed.h"
#include "support/registry_fixture.h"

namespace stowage::itest {

namespace fs = std::filesystem;

std::string stowctl_path() {
  return STOWCTL_PATH;
}

StowctlEnv::StowctlEnv(std::string_view name) : dir_(name) {
  for (const char* sub : {"root", "certs.d", "home", "run", "config", "data", "tmp"}) {
    fs::create_directories(dir_ / sub);
  }
  fs::permissions(dir_ / "run", fs::perms::owner_all, fs::perm_options::replace);
  write_registries_conf("");
}

std::vector<std::string> StowctlEnv::global_flags() const {
  return {stowctl_path(),
          "--root",
          root().string(),
          "--registries-conf",
          registries_conf().string(),
          "--authfile",
          authfile().string(),
          "--cert-dir",
          cert_dir().string()};
}

test::RunOptions StowctlEnv::run_options() const {
  test::RunOptions o;
  o.env = {{"HOME", (dir_ / "home").string()},
           {"XDG_RUNTIME_DIR", (dir_ / "run").string()},
           {"XDG_CONFIG_HOME", (dir_ / "config").string()},
           {"XDG_DATA_HOME", (dir_ / "data").string()},
           {"TMPDIR", (dir_ / "tmp").string()}};
  o.unset_env.insert(o.unset_env.end(), {"REGISTRY_AUTH_FILE", "DOCKER_CONFIG", "STOWAGE_ROOT",
                                         "CONTAINERS_REGISTRIES_CONF", "CONTAINERS_*"});
  return o;
}

test::RunResult StowctlEnv::run(const std::vector<std::string>& args, std::string stdin_data,
                                std::chrono::milliseconds timeout) const {
  std::vector<std::string> argv = global_flags();
  argv.insert(argv.end(), args.begin(), args.end());
  test::RunOptions o = run_options();
  o.stdin_data = std::move(stdin_data);
  o.timeout = timeout;
  return test::run(std::move(argv), o);
}

std::unique_ptr<test::Process> StowctlEnv::start(const std::vector<std::string>& args,
                                                 std::string_view log_name) const {
  test::ProcessOptions po;
  po.argv = global_flags();
  po.argv.insert(po.argv.end(), args.begin(), args.end());
  const test::RunOptions o = run_options();
  po.env = o.env;
  po.unset_env = o.unset_env;
  po.stdout_path = dir_ / fmt::format("{}.out", log_name);
  po.stderr_path = dir_ / fmt::format("{}.err", log_name);
  return std::make_unique<test::Process>(std::move(po));
}

void StowctlEnv::write_registries_conf(std::string_view text) const {
  test::write_text_file(registries_conf(), text);
}

void StowctlEnv::allow_insecure(const std::vector<std::string>& hosts) const {
  std::string text;
  for (const auto& h : hosts) {
    text += fmt::format("[[registry]]\nlocation = \"{}\"\ninsecure = true\n\n", h);
  }
  write_registries_conf(text);
}

void StowctlEnv::trust_ca(const std::string& host, const std::string& ca_pem) const {
  test::write_text_file(cert_dir() / host / "ca.crt", ca_pem);
}

std::optional<std::string> registry_skip_reason() {
  if (auto r = test::RegistryFixture::unavailable_reason()) return r;
  return test::seed_unavailable_reason();
}

::testing::AssertionResult fails_with_one_error_line(const test::RunResult& r) {
  if (r.timed_out) return ::testing::AssertionFailure() << "timed out: " << r.describe();
  if (r.exit_code == 0) return ::testing::AssertionFailure() << "exit 0: " << r.describe();
  if (r.exit_code >= 128) {
    return ::testing::AssertionFailure() << "ended by a signal: " << r.describe();
  }
  const auto err = lines(r.err);
  if (err.size() != 1) {
    return ::testing::AssertionFailure() << err.size() << " stderr lines: " << r.describe();
  }
  if (!err.front().starts_with("Error: ")) {
    return ::testing::AssertionFailure() << "stderr is not \"Error: ...\": " << r.describe();
  }
  for (const char* bad : {"terminate called", "what():", "Aborted", "Segmentation"}) {
    if (r.err.find(bad) != std::string::npos || r.out.find(bad) != std::string::npos) {
      return ::testing::AssertionFailure() << "crash output (" << bad << "): " << r.describe();
    }
  }
  return ::testing::AssertionSuccess();
}

std::string base64(std::string_view data) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < data.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(data[i]) << 16) |
                       (static_cast<unsigned char>(data[i + 1]) << 8) |
                       static_cast<unsigned char>(data[i + 2]);
    for (int shift : {18, 12, 6, 0}) out += kAlphabet[(v >> shift) & 63];
  }
  if (const std::size_t rest = data.size() - i; rest > 0) {
    unsigned v = static_cast<unsigned char>(data[i]) << 16;
    if (rest == 2) v |= static_cast<unsigned char>(data[i + 1]) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

std::vector<std::string> first_column(const std::string& table) {
  std::vector<std::string> out;
  const auto all = lines(table);
  for (std::size_t i = 1; i < all.size(); ++i) {
    std::istringstream in(all[i]);
    std::string word;
    if (in >> word) out.push_back(word);
  }
  return out;
}

}  // namespace stowage::itest
