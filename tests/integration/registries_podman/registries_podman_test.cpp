// libs/registries against real podman (4.3.1, Debian 12) as the oracle. Every file under testdata/
// is given to `podman info --format json` and to libs/registries; they must agree on the verdict,
// on the error text (`Error: getting registries: <X>` in podman, what() == <X> here) and on the
// `registries` object of `podman info` (podman_info_registries_json here).
//
// Hermetic podman: each run happens in a private mount namespace (`unshare -m`, which makes mount
// propagation private) with a tmpfs over /etc/containers/registries.conf.d, so podman never sees
// the machine's drop-ins; HOME points into the test's temp dir, so no per-user registries.conf(.d)
// exists; storage (vfs), runroot and tmpdir live in the test's temp dir as well.
//
// Podman 4.3 does read the system drop-in dir when CONTAINERS_REGISTRIES_CONF is set (checked:
// the reference's §9 "when set, drop-in dirs are not read" is the 2026 lookup, not 4.3's), so the
// drop-in cases keep CONTAINERS_REGISTRIES_CONF=<main.conf> and copy d/ into the tmpfs.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "base/error.h"
#include "registries/conf.h"

namespace stowage::registries {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kTestdata =
    fs::path(STOWAGE_SOURCE_DIR) / "tests" / "integration" / "registries_podman" / "testdata";

// ---- processes and files ------------------------------------------------------------------

// A fresh directory under the system temp dir, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "registries-podman-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) {
      throw std::system_error(errno, std::generic_category(), "mkdtemp " + pattern);
    }
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

struct CommandResult {
  int exit_code = -1;  // 128 + signal when killed
  std::string out;
  std::string err;
};

// Runs argv (argv[0] looked up in PATH) with exactly `env`, stdin from /dev/null, stdout and
// stderr captured through files in `scratch`. No shell parses anything here.
CommandResult run_command(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                          const fs::path& scratch) {
  const std::string out_path = (scratch / "stdout").string();
  const std::string err_path = (scratch / "stderr").string();
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> envp;
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, argv[0].c_str(), &actions, nullptr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::system_error(rc, std::generic_category(), "posix_spawnp " + argv[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw std::system_error(errno, std::generic_category(), "waitpid");
  }
  CommandResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.out = read_text(out_path);
  result.err = read_text(err_path);
  return result;
}

std::optional<fs::path> find_in_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path != nullptr ? path : "/usr/sbin:/usr/bin:/sbin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    if (dir.empty()) continue;
    const fs::path candidate = fs::path(dir) / name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

// Why podman cannot be the oracle on this machine, or "" when it can.
std::string podman_unavailable_reason() {
  if (geteuid() != 0) return "needs root: unshare -m and the tmpfs mount need CAP_SYS_ADMIN";
  if (!find_in_path("podman")) return "podman is not installed (not found in PATH)";
  if (!find_in_path("unshare")) return "unshare (util-linux) is not installed (not found in PATH)";
  return "";
}

// ---- test cases -----------------------------------------------------------------------------

// One registries.conf (a testdata file), or a main file plus a drop-in directory (a testdata
// directory holding main.conf and d/).
struct Case {
  std::string name;
  fs::path main;
  fs::path dropin_dir;  // empty: no drop-ins
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.main.lexically_relative(kTestdata).string();
  if (!c.dropin_dir.empty()) *os << " + " << c.dropin_dir.lexically_relative(kTestdata).string();
}

// The cases under testdata/<dir>: each *.conf file, and each subdirectory with a main.conf.
// Called during test registration; a missing directory yields no cases, which GoogleTest reports
// as an uninstantiated suite.
std::vector<Case> cases_in(const std::string& dir) {
  std::vector<Case> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(kTestdata / dir, ec)) {
    const fs::path& p = entry.path();
    if (entry.is_regular_file() && p.extension() == ".conf") {
      out.push_back({p.stem().string(), p, {}});
    } else if (entry.is_directory() && fs::exists(p / "main.conf")) {
      out.push_back({p.filename().string(), p / "main.conf", p / "d"});
    }
  }
  std::sort(out.begin(), out.end(), [](const Case& a, const Case& b) { return a.name < b.name; });
  return out;
}

// GoogleTest names allow only [A-Za-z0-9_]: "mirror-by-digest-only" -> "mirror_by_digest_only".
std::string case_test_name(const testing::TestParamInfo<Case>& info) {
  std::string name = info.param.name;
  for (char& ch : name) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return name;
}

// ---- podman ----------------------------------------------------------------------------------

// Run by `sh -c` inside the new mount namespace. Paths arrive as $1..$4, never inside the script.
constexpr const char* kNamespaceScript =
    "mount -t tmpfs none /etc/containers/registries.conf.d && "
    "{ [ -z \"$1\" ] || cp -R \"$1\"/. /etc/containers/registries.conf.d/; } && "
    "exec podman --root \"$2\" --runroot \"$3\" --tmpdir \"$4\" --storage-driver vfs "
    "info --format json";

// `podman info --format json` for `c` with CONTAINERS_REGISTRIES_CONF=<c.main> and exactly the
// case's drop-ins in /etc/containers/registries.conf.d.
CommandResult run_podman(const Case& c, const TempDir& tmp) {
  const fs::path home = tmp.path() / "home";
  const fs::path tmpdir = tmp.path() / "tmp";
  fs::create_directories(home);
  fs::create_directories(tmpdir);
  const char* path = std::getenv("PATH");
  return run_command(
      {"unshare", "-m", "sh", "-c", kNamespaceScript, "sh", c.dropin_dir.string(),
       (tmp.path() / "root").string(), (tmp.path() / "runroot").string(), tmpdir.string()},
      {"PATH=" + std::string(path != nullptr ? path : "/usr/sbin:/usr/bin:/sbin:/bin"),
       "HOME=" + home.string(), "CONTAINERS_REGISTRIES_CONF=" + c.main.string()},
      tmp.path());
}

constexpr std::string_view kPodmanErrorLead = "Error: getting registries: ";

// <X> of podman's last "Error: " line, which must read "Error: getting registries: <X>".
std::optional<std::string> podman_registries_error(const CommandResult& podman) {
  std::istringstream lines(podman.err);
  std::optional<std::string> last;
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with("Error: ")) last = line;
  }
  if (!last || !last->starts_with(kPodmanErrorLead)) {
    ADD_FAILURE() << "podman's stderr has no \"" << kPodmanErrorLead << "...\" line:\n"
                  << podman.err;
    return std::nullopt;
  }
  return last->substr(kPodmanErrorLead.size());
}

// Podman names a drop-in by its path in the namespace; we name it by the testdata path.
std::string with_our_dropin_paths(std::string message, const Case& c) {
  if (c.dropin_dir.empty()) return message;
  const std::string theirs = "\"/etc/containers/registries.conf.d/";
  const std::string ours = "\"" + c.dropin_dir.string() + "/";
  for (size_t at = message.find(theirs); at != std::string::npos;
       at = message.find(theirs, at + ours.size())) {
    message.replace(at, theirs.size(), ours);
  }
  return message;
}

// Go encodes a nil slice as null and an empty one as []. Podman's v1 conversion (ConvertToV2)
// allocates Mirrors, so v1 tables print "Mirrors": [] where v2 tables without mirrors print null;
// both mean "no mirrors". This is the only normalization: [] becomes null on both sides.
json normalized(json registries) {
  for (auto& [key, table] : registries.items()) {
    if (table.is_object() && table.contains("Mirrors") && table["Mirrors"].is_array() &&
        table["Mirrors"].empty()) {
      table["Mirrors"] = nullptr;
    }
  }
  return registries;
}

json podman_registries(const CommandResult& podman) {
  const json info = json::parse(podman.out);
  return normalized(info.at("registries"));
}

json our_registries(const Config& config) {
  return normalized(json::parse(podman_info_registries_json(config)));
}

// ---- our side --------------------------------------------------------------------------------

Config load_ours(const Case& c) {
  if (c.dropin_dir.empty()) return load_file(c.main, FileRole::kMain);
  return load_config(c.main, c.dropin_dir, /*main_must_exist=*/true);
}

// what() of the stowage::Error our loader throws, or nullopt when it accepts the case.
std::optional<std::string> our_error(const Case& c) {
  try {
    load_ours(c);
  } catch (const Error& e) {
    return std::string(e.what());
  }
  return std::nullopt;
}

// How much of an error message two parsers are expected to share.
enum class Compare {
  kText,      // the whole message
  kTomlLine,  // `loading registries configuration "<path>": toml: line N`
  kTomlOnly,  // `loading registries configuration "<path>": toml: line `
};

// The part of `message` up to and including "toml: line N" (or "toml: line " when `with_line` is
// false), or "" when it is no TOML error.
std::string toml_prefix(const std::string& message, bool with_line) {
  constexpr std::string_view kToml = ": toml: line ";
  const auto at = message.find(kToml);
  if (at == std::string::npos) return "";
  auto end = at + kToml.size();
  while (with_line && end < message.size() &&
         std::isdigit(static_cast<unsigned char>(message[end]))) {
    ++end;
  }
  return message.substr(0, end);
}

// ---- shared checks ---------------------------------------------------------------------------

class PodmanOracle : public testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    if (const std::string reason = podman_unavailable_reason(); !reason.empty()) {
      GTEST_SKIP() << reason;
    }
  }
};

// Podman accepts; we accept and render the same `registries` object.
void expect_same_acceptance(const Case& c) {
  TempDir tmp;
  const CommandResult podman = run_podman(c, tmp);
  ASSERT_EQ(podman.exit_code, 0) << "podman refused a config expected to be valid:\n" << podman.err;
  const json theirs = podman_registries(podman);
  Config config;
  try {
    config = load_ours(c);
  } catch (const Error& e) {
    FAIL() << "podman accepts, we refuse: " << e.what()
           << "\npodman's registries: " << theirs.dump(2);
  }
  const json ours = our_registries(config);
  EXPECT_EQ(ours, theirs) << "ours:   " << ours.dump(2) << "\npodman: " << theirs.dump(2);
}

// Podman refuses; we refuse with the same message, compared as `compare` says.
void expect_same_refusal(const Case& c, Compare compare) {
  TempDir tmp;
  const CommandResult podman = run_podman(c, tmp);
  ASSERT_NE(podman.exit_code, 0) << "podman accepted a config expected to be invalid: "
                                 << json::parse(podman.out).at("registries").dump(2);
  const std::optional<std::string> theirs = podman_registries_error(podman);
  ASSERT_TRUE(theirs);
  const std::string expected = with_our_dropin_paths(*theirs, c);
  const std::optional<std::string> ours = our_error(c);
  ASSERT_TRUE(ours) << "podman refuses, we accept; podman: " << *theirs;
  if (compare == Compare::kText) {
    EXPECT_EQ(*ours, expected);
  } else {
    const bool with_line = compare == Compare::kTomlLine;
    const std::string prefix = toml_prefix(expected, with_line);
    ASSERT_FALSE(prefix.empty()) << "podman's message is no TOML error: " << expected;
    EXPECT_EQ(toml_prefix(*ours, with_line), prefix)
        << "ours:   " << *ours << "\npodman: " << expected;
  }
}

// ---- valid ------------------------------------------------------------------------------------

class ValidConfig : public PodmanOracle {};

TEST_P(ValidConfig, PodmanAndWeAcceptWithTheSameRegistries) {
  expect_same_acceptance(GetParam());
}

INSTANTIATE_TEST_SUITE_P(Podman, ValidConfig, testing::ValuesIn(cases_in("valid")), case_test_name);

// ---- invalid ----------------------------------------------------------------------------------

// TOML syntax errors come from different parsers (BurntSushi/toml in podman, toml++ here) with
// different wording, so the toml-syntax-* cases compare the verdict and the
// `loading registries configuration "<path>": toml: line N` prefix only. For
// toml-syntax-bad-table (`[[registry]` then a newline) they also disagree on N: BurntSushi reports
// line 2 (it has consumed the newline), toml++ line 1, so only `...: toml: line ` is compared.
// Every other case, including the toml-type-* decoding errors, compares the whole text.
Compare comparison_for(const Case& c) {
  if (c.name == "toml-syntax-bad-table") return Compare::kTomlOnly;
  if (c.name.starts_with("toml-syntax-")) return Compare::kTomlLine;
  return Compare::kText;
}

class InvalidConfig : public PodmanOracle {};

TEST_P(InvalidConfig, PodmanAndWeRefuseWithTheSameMessage) {
  expect_same_refusal(GetParam(), comparison_for(GetParam()));
}

INSTANTIATE_TEST_SUITE_P(Podman, InvalidConfig, testing::ValuesIn(cases_in("invalid")),
                         case_test_name);

// ---- drop-in directories ----------------------------------------------------------------------

// dropin/<case>/{main.conf,d/}: merged like podman merges /etc/containers/registries.conf.d.
// Cases named rejects-* must be refused by both with the same text; the others accepted by both
// with the same result.
class DropInConfig : public PodmanOracle {};

TEST_P(DropInConfig, PodmanAndWeMergeTheSame) {
  const Case& c = GetParam();
  if (c.name.starts_with("rejects-")) {
    expect_same_refusal(c, Compare::kText);
  } else {
    expect_same_acceptance(c);
  }
}

INSTANTIATE_TEST_SUITE_P(Podman, DropInConfig, testing::ValuesIn(cases_in("dropin")),
                         case_test_name);

// ---- where podman 4.3 is laxer ----------------------------------------------------------------

// Reference §18: a node may run any supported version, so we refuse the union of what any version
// refuses. For these podman 4.3 accepts; we refuse with the message recorded in the case's
// main.conf as a "# stowage: <message>" line ({main} and {dropin} stand for the case's paths). If
// podman starts refusing one, or we start accepting it, this says so.
std::string recorded_message(const Case& c) {
  std::istringstream lines(read_text(c.main));
  for (std::string line; std::getline(lines, line);) {
    constexpr std::string_view kLead = "# stowage: ";
    if (!line.starts_with(kLead)) continue;
    std::string message = line.substr(kLead.size());
    for (const auto& [placeholder, value] :
         {std::pair<std::string, std::string>{"{main}", c.main.string()},
          std::pair<std::string, std::string>{"{dropin}", c.dropin_dir.string()}}) {
      for (auto at = message.find(placeholder); at != std::string::npos;
           at = message.find(placeholder, at + value.size())) {
        message.replace(at, placeholder.size(), value);
      }
    }
    return message;
  }
  return "";
}

class PodmanLaxerConfig : public PodmanOracle {};

TEST_P(PodmanLaxerConfig, PodmanAcceptsAndWeRefuse) {
  const Case& c = GetParam();
  const std::string expected = recorded_message(c);
  ASSERT_FALSE(expected.empty()) << "record our message as a \"# stowage: \" line in " << c.main;
  TempDir tmp;
  const CommandResult podman = run_podman(c, tmp);
  EXPECT_EQ(podman.exit_code, 0) << "podman 4.3 now refuses this; move it to invalid/:\n"
                                 << podman.err;
  if (podman.exit_code == 0) {
    EXPECT_TRUE(json::parse(podman.out).at("registries").is_object());
  }
  const std::optional<std::string> ours = our_error(c);
  ASSERT_TRUE(ours) << "we now accept what our stricter rules refused";
  EXPECT_EQ(*ours, expected);
}

INSTANTIATE_TEST_SUITE_P(Podman, PodmanLaxerConfig, testing::ValuesIn(cases_in("laxer")),
                         case_test_name);

// ---- a known version difference --------------------------------------------------------------

class PodmanVersionDifference : public testing::Test {
 protected:
  void SetUp() override {
    if (const std::string reason = podman_unavailable_reason(); !reason.empty()) {
      GTEST_SKIP() << reason;
    }
  }
};

// Podman 4.3's containers/image trims a trailing '/' from a mirror location only in a loop copy
// (`for _, mir := range reg.Mirrors`), so the untrimmed text is kept; current containers/image
// (container-libs `mir := &reg.Mirrors[j]`) stores the trimmed one, as we do. Everything else
// about the file must agree.
TEST_F(PodmanVersionDifference, MirrorLocationTrailingSlashKeptByPodman43) {
  const Case c{"mirror-location-trailing-slash",
               kTestdata / "differs" / "mirror-location-trailing-slash.conf",
               {}};
  TempDir tmp;
  const CommandResult podman = run_podman(c, tmp);
  ASSERT_EQ(podman.exit_code, 0) << podman.err;
  json theirs = podman_registries(podman);
  json& mirror = theirs["example.com/foo"]["Mirrors"][0]["Location"];
  EXPECT_EQ(mirror, "mirror2.example.net/foo/") << "podman now trims mirror locations";
  mirror = "mirror2.example.net/foo";
  const json ours = our_registries(load_ours(c));
  EXPECT_EQ(ours, theirs) << "ours:   " << ours.dump(2) << "\npodman: " << theirs.dump(2);
}

// ---- the testdata itself ----------------------------------------------------------------------

TEST(RegistriesPodmanTestdata, CoversEnoughCases) {
  EXPECT_GE(cases_in("valid").size(), 20u);
  EXPECT_GE(cases_in("invalid").size(), 15u);
  EXPECT_GE(cases_in("laxer").size(), 6u);
  EXPECT_GE(cases_in("dropin").size(), 5u);
  for (const auto& c : cases_in("laxer")) {
    EXPECT_FALSE(recorded_message(c).empty()) << c.main << " has no \"# stowage: \" line";
  }
}

}  // namespace
}  // namespace stowage::registries
