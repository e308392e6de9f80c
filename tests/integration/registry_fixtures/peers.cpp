#include "peers.h"

#include <openssl/evp.h>
#include <unistd.h>

#include <cstdint>

namespace stowage::test::peers {
namespace {

// Run by `sh -c` inside the new mount namespace; the podman arguments follow as "$@".
constexpr const char* kPodmanScript =
    "mount -t tmpfs none /etc/containers/registries.conf.d && exec podman \"$@\"";

}  // namespace

std::optional<std::string> skopeo_missing() {
  if (!find_executable("skopeo")) return "skopeo not found on PATH (Debian package skopeo)";
  return std::nullopt;
}

std::optional<std::string> podman_missing() {
  if (::geteuid() != 0) return "podman runs as root here (vfs storage, unshare -m)";
  if (!find_executable("podman")) return "podman not found on PATH (Debian package podman)";
  if (!find_executable("unshare")) return "unshare not found on PATH (util-linux)";
  return std::nullopt;
}

std::optional<std::string> curl_missing() {
  if (!find_executable("curl")) return "curl not found on PATH (Debian package curl)";
  return std::nullopt;
}

RunResult skopeo(const std::vector<std::string>& args) {
  TempDir dir("stowage-skopeo");
  write_text_file(dir / "registries.conf", "");
  std::filesystem::create_directories(dir / "registries.d");
  std::vector<std::string> argv = {"skopeo", "--insecure-policy", "--registries.d",
                                   (dir / "registries.d").string()};
  argv.insert(argv.end(), args.begin(), args.end());
  RunOptions options;
  options.env = {{"CONTAINERS_REGISTRIES_CONF", (dir / "registries.conf").string()},
                 {"REGISTRY_AUTH_FILE", (dir / "auth.json").string()},
                 {"TMPDIR", dir.path().string()}};
  options.timeout = std::chrono::seconds(60);
  return test::run(std::move(argv), options);
}

Podman::Podman() : dir_("stowage-podman") {
  write_text_file(dir_ / "registries.conf", "");
  write_text_file(dir_ / "policy.json", R"({"default":[{"type":"insecureAcceptAnything"}]})"
                                        "\n");
  write_text_file(dir_ / "containers.conf", "");
  std::filesystem::create_directories(dir_ / "home");
  std::filesystem::create_directories(dir_ / "tmp");
}

RunResult Podman::run(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {"unshare",
                                   "-m",
                                   "sh",
                                   "-c",
                                   kPodmanScript,
                                   "sh",
                                   "--root",
                                   (dir_ / "root").string(),
                                   "--runroot",
                                   (dir_ / "runroot").string(),
                                   "--tmpdir",
                                   (dir_ / "tmp").string(),
                                   "--storage-driver",
                                   "vfs"};
  argv.insert(argv.end(), args.begin(), args.end());
  RunOptions options;
  options.env = {{"CONTAINERS_REGISTRIES_CONF", (dir_ / "registries.conf").string()},
                 {"CONTAINERS_CONF", (dir_ / "containers.conf").string()},
                 {"REGISTRY_AUTH_FILE", (dir_ / "auth.json").string()},
                 {"HOME", (dir_ / "home").string()},
                 {"TMPDIR", (dir_ / "tmp").string()}};
  options.timeout = std::chrono::seconds(90);
  return test::run(std::move(argv), options);
}

RunResult curl(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"curl", "--noproxy", "*"};
  argv.insert(argv.end(), args.begin(), args.end());
  RunOptions options;
  options.timeout = std::chrono::seconds(30);
  return test::run(std::move(argv), options);
}

http::Client& client() {
  static http::Client c([] {
    http::ClientOptions o;
    o.proxy = "";
    return o;
  }());
  return c;
}

std::string lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

std::string basic_auth(const std::string& user, const std::string& password) {
  const std::string plain = user + ":" + password;
  std::string out(4 * ((plain.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(plain.data()),
                                static_cast<int>(plain.size()));
  out.resize(static_cast<std::size_t>(n));
  return "Basic " + out;
}

std::string base64url_decode(std::string_view text) {
  std::string b64(text);
  for (char& c : b64) {
    if (c == '-') c = '+';
    if (c == '_') c = '/';
  }
  while (b64.size() % 4 != 0) b64 += '=';
  std::string out(b64.size() / 4 * 3 + 1, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(b64.data()),
                                static_cast<int>(b64.size()));
  if (n < 0) return "";
  std::size_t size = static_cast<std::size_t>(n);
  // EVP_DecodeBlock counts the padding as zero bytes.
  for (auto it = b64.rbegin(); it != b64.rend() && *it == '='; ++it) --size;
  out.resize(size);
  return out;
}

std::string noise(std::size_t size, unsigned seed) {
  std::string out(size, '\0');
  std::uint64_t x = 0x9E3779B97F4A7C15ULL ^ seed;
  for (std::size_t i = 0; i < size; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    out[i] = static_cast<char>(x >> 56);
  }
  return out;
}

}  // namespace stowage::test::peers
