#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/error.h"
#include "base/files.h"
#include "oci/auth.h"

namespace stowage::oci {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

std::string error_of(auto&& fn, Code code = Code::kInvalidArgument) {
  try {
    fn();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return {};
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "oci-auth-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

Reference image_ref(std::string_view s) {
  return Reference::parse_normalized(s);
}

std::string b64(std::string_view s) {
  return base64_encode(s);
}

// --- Credentials and base64 ---

TEST(Base64, EncodesAndDecodesRfc4648Vectors) {
  const std::pair<std::string, std::string> vectors[] = {
      {"", ""},
      {"f", "Zg=="},
      {"fo", "Zm8="},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="},
      {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"},
      {"\xff\xfe", "//4="},
  };
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(base64_encode(plain), encoded);
    EXPECT_EQ(base64_decode(encoded), plain);
  }
  EXPECT_EQ(base64_decode("Zm8"), "fo");               // padding optional
  EXPECT_EQ(base64_decode("Zm9v\r\nYmFy"), "foobar");  // line breaks ignored
  for (const char* bad : {"Z", "Zm9v!", "Zg=x", "Zg===", "Zm=", "-_8="}) {
    EXPECT_FALSE(base64_decode(bad).has_value()) << bad;
  }
}

TEST(Credentials, DecodesAuthField) {
  struct Case {
    std::string auth;
    std::optional<Credentials> want;
  };
  const Case cases[] = {
      {b64("user:pass"), Credentials{"user", "pass", ""}},
      {b64("user:pa:ss"), Credentials{"user", "pa:ss", ""}},
      {b64(std::string("user:pass\0\0", 11)), Credentials{"user", "pass", ""}},
      {b64(std::string("u:\0p\0", 5)), Credentials{"u", "p", ""}},
      {b64(":"), Credentials{"", "", ""}},
      {b64("nocolon"), std::nullopt},
      {"", std::nullopt},
  };
  for (const auto& c : cases) EXPECT_EQ(decode_auth_field(c.auth), c.want) << c.auth;
  const std::string msg = error_of([] { decode_auth_field("c2VjcmV0!!"); });
  EXPECT_THAT(msg, Not(HasSubstr("c2VjcmV0")));
  EXPECT_EQ(encode_auth_field({"user", "pass", ""}), "dXNlcjpwYXNz");
  EXPECT_EQ(basic_authorization({"user", "pass", ""}), "Basic dXNlcjpwYXNz");
}

TEST(Credentials, NeverPrintSecrets) {
  const Credentials c{"alice", "hunter2", "refresh-abc"};
  std::ostringstream os;
  os << c;
  for (const std::string& text :
       {os.str(), to_string(c), fmt::format("{}", c), ::testing::PrintToString(c)}) {
    EXPECT_THAT(text, HasSubstr("alice"));
    EXPECT_THAT(text, Not(HasSubstr("hunter2")));
    EXPECT_THAT(text, Not(HasSubstr("refresh-abc")));
    EXPECT_THAT(text, HasSubstr("<redacted>"));
  }
  EXPECT_EQ(to_string(Credentials{"bob", "", ""}),
            "username=\"bob\" password=<none> identity_token=<none>");
  EXPECT_EQ(redact("secret"), "<redacted>");
  EXPECT_EQ(redact(""), "");
  EXPECT_EQ(redact_authorization("Bearer eyJhbGciOi"), "Bearer <redacted>");
  EXPECT_EQ(redact_authorization("Basic dXNlcjpwYXNz"), "Basic <redacted>");
  EXPECT_EQ(redact_authorization("opaque"), "<redacted>");
  EXPECT_TRUE(Credentials{}.empty());
  EXPECT_FALSE((Credentials{"", "", "t"}.empty()));
}

// --- Locations ---

TEST(AuthLocations, FollowContainersPrecedence) {
  AuthEnvironment env;
  env.home = "/home/u";
  env.uid = 1000;
  using L = std::vector<AuthFileLocation>;
  const auto C = AuthFileFormat::kContainers;
  const auto D = AuthFileFormat::kDocker;
  const auto G = AuthFileFormat::kDockerCfgLegacy;

  EXPECT_EQ(auth_read_locations(env), (L{{"/run/containers/1000/auth.json", C},
                                         {"/home/u/.config/containers/auth.json", C},
                                         {"/home/u/.docker/config.json", D},
                                         {"/home/u/.dockercfg", G}}));
  EXPECT_EQ(auth_write_location(env), (AuthFileLocation{"/run/containers/1000/auth.json", C}));

  AuthEnvironment xdg = env;
  xdg.xdg_runtime_dir = "/run/user/1000";
  xdg.xdg_config_home = "/cfg";
  EXPECT_EQ(auth_read_locations(xdg), (L{{"/run/user/1000/containers/auth.json", C},
                                         {"/cfg/containers/auth.json", C},
                                         {"/home/u/.docker/config.json", D},
                                         {"/home/u/.dockercfg", G}}));
  EXPECT_EQ(auth_write_location(xdg).path, "/run/user/1000/containers/auth.json");

  AuthEnvironment no_home;
  no_home.uid = 0;
  EXPECT_EQ(auth_read_locations(no_home), (L{{"/run/containers/0/auth.json", C}}));

  // Explicit files: --authfile > REGISTRY_AUTH_FILE > DOCKER_CONFIG; then only that file.
  AuthEnvironment all = xdg;
  all.registry_auth_file = "/etc/reg-auth.json";
  all.docker_config = "/dcfg";
  EXPECT_EQ(auth_read_locations(all, "/flag.json"), (L{{"/flag.json", C}}));
  EXPECT_EQ(auth_write_location(all, "/flag.json").path, "/flag.json");
  EXPECT_EQ(auth_read_locations(all), (L{{"/etc/reg-auth.json", C}}));
  all.registry_auth_file.clear();
  EXPECT_EQ(auth_read_locations(all), (L{{"/dcfg/config.json", D}}));
  EXPECT_EQ(auth_write_location(all), (AuthFileLocation{"/dcfg/config.json", D}));
}

TEST(AuthLocations, RefusesMissingRuntimeDir) {
  TempDir tmp;
  AuthEnvironment env;
  EXPECT_NO_THROW(check_runtime_dir(env));
  env.xdg_runtime_dir = tmp.path().string();
  EXPECT_NO_THROW(check_runtime_dir(env));
  env.xdg_runtime_dir = (tmp.path() / "missing").string();
  EXPECT_THAT(error_of([&] { check_runtime_dir(env); }, Code::kNotFound),
              HasSubstr("directory set by $XDG_RUNTIME_DIR does not exist. Either create the "
                        "directory or unset $XDG_RUNTIME_DIR."));
}

// --- Parsing and lookup ---

TEST(AuthFile, ParsesEntriesOfEveryShape) {
  const std::string text = R"({
    "auths": {
      "registry.example.com": {"auth": ")" +
                           b64("user:pass") + R"("},
      "quay.io/team": {"auth": ")" +
                           b64("team:tpw") + R"(", "identitytoken": "idt"},
      "localhost:5001": {},
      "plain.example.com": {"username": "pu", "password": "pp"},
      "both.example.com": {"auth": ")" +
                           b64("a:b") + R"(", "username": "x", "password": "y"},
      "nocolon.example.com": {"auth": ")" +
                           b64("justtoken") + R"("},
      "bad.example.com": {"auth": "!!!"}
    },
    "credHelpers": {"gcr.io": "gcloud"},
    "credsStore": "desktop"
  })";
  const AuthFile f = AuthFile::parse(text);
  EXPECT_EQ(f.get("registry.example.com"), (Credentials{"user", "pass", ""}));
  EXPECT_EQ(f.get("quay.io/team"), (Credentials{"team", "tpw", "idt"}));
  EXPECT_EQ(f.get("localhost:5001"), Credentials{});
  EXPECT_EQ(f.get("plain.example.com"), (Credentials{"pu", "pp", ""}));
  EXPECT_EQ(f.get("both.example.com"), (Credentials{"a", "b", ""}));
  EXPECT_EQ(f.get("nocolon.example.com"), Credentials{});
  EXPECT_EQ(f.get("absent.example.com"), std::nullopt);
  const std::string msg = error_of([&] { f.get("bad.example.com"); });
  EXPECT_THAT(msg, HasSubstr("auth file entry \"bad.example.com\""));
  EXPECT_THAT(msg, Not(HasSubstr("!!!")));
  EXPECT_EQ(f.credential_helper("gcr.io"), "gcloud");
  EXPECT_EQ(f.credential_helper("quay.io"), std::nullopt);
  EXPECT_EQ(f.creds_store(), "desktop");
  EXPECT_EQ(f.keys().size(), 7u);
}

TEST(AuthFile, RefusesBadDocumentsWithoutEchoingSecrets) {
  struct Case {
    std::string text;
    std::string want;
  };
  const Case cases[] = {
      {"[]", "must be a JSON object"},
      {R"({"auths": []})", "\"auths\" must be an object"},
      {R"({"auths": {"h": "x"}})", "entry \"h\" must be an object"},
      {R"({"auths": {"h": {"auth": 5}}})", "entry \"h\": \"auth\" must be a string"},
      {R"({"auths": {"h": {"identitytoken": {}}}})", "\"identitytoken\" must be a string"},
      {R"({"credHelpers": []})", "\"credHelpers\" must be an object"},
      {R"({"credHelpers": {"gcr.io": 1}})", "\"credHelpers\" value of \"gcr.io\" must be a string"},
      {R"({"credsStore": 1})", "\"credsStore\" must be a string"},
      {R"({"auths": {"h": {"auth": "hunter2-secret)", "invalid JSON at byte"},
      {R"({"auths": {"h": {"auth": "hunter2"}}, "n": 9e999})", "a number is out of range"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    const std::string msg =
        error_of([&] { AuthFile::parse(c.text, AuthFileFormat::kContainers, "/x/auth.json"); });
    EXPECT_THAT(msg, HasSubstr("auth file \"/x/auth.json\""));
    EXPECT_THAT(msg, HasSubstr(c.want));
    EXPECT_THAT(msg, Not(HasSubstr("hunter2")));
  }
  EXPECT_NO_THROW(AuthFile::parse("{}"));
  EXPECT_NO_THROW(AuthFile::parse(R"({"auths": null})"));
  EXPECT_THAT(error_of([] { AuthFile::parse(std::string(kMaxAuthFileBytes + 1, ' ')); }),
              HasSubstr("more than the"));
}

TEST(AuthFile, LooksUpMostSpecificKeyFirst) {
  const std::string text = R"({"auths": {
      "quay.io": {"auth": ")" +
                           b64("host:1") + R"("},
      "quay.io/repo": {"auth": ")" +
                           b64("ns:2") + R"("},
      "quay.io/repo/ns/image": {"auth": ")" +
                           b64("image:3") + R"("},
      "quay.io/repo/empty": {},
      "https://legacy.example.com/v1/": {"auth": ")" +
                           b64("legacy:4") + R"("},
      "http://plain.example.com": {"auth": ")" +
                           b64("plain:5") + R"("},
      "https://index.docker.io/v1/": {"auth": ")" +
                           b64("hub:6") + R"("},
      "other.example.com/ns": {"auth": ")" +
                           b64("ns-only:7") + R"("},
      "localhost:5000": {"auth": ")" +
                           b64("local:8") + R"("}
  }})";
  const AuthFile f = AuthFile::parse(text);
  struct Case {
    std::string image;
    std::optional<std::string> key;
    std::string username;
  };
  const Case cases[] = {
      {"quay.io/repo/ns/image:tag", "quay.io/repo/ns/image", "image"},
      {"quay.io/repo/ns/other", "quay.io/repo", "ns"},
      {"quay.io/repo/x", "quay.io/repo", "ns"},
      {"quay.io/repository", "quay.io", "host"},
      {"quay.io/repo/empty/x", "quay.io/repo/empty", ""},  // first key found decides
      {"legacy.example.com/a/b", "https://legacy.example.com/v1/", "legacy"},
      {"plain.example.com/a", "http://plain.example.com", "plain"},
      {"docker.io/library/nginx", "https://index.docker.io/v1/", "hub"},
      {"nginx", "https://index.docker.io/v1/", "hub"},
      {"other.example.com/ns/x", "other.example.com/ns", "ns-only"},
      {"other.example.com/elsewhere/x", std::nullopt, ""},  // keys without scheme keep paths
      {"localhost:5000/app", "localhost:5000", "local"},
      {"localhost:5001/app", std::nullopt, ""},
      {"ghcr.io/a/b", std::nullopt, ""},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.image);
    const auto m = f.find(image_ref(c.image));
    if (!c.key) {
      EXPECT_FALSE(m.has_value());
      continue;
    }
    ASSERT_TRUE(m.has_value());
    EXPECT_EQ(m->key, *c.key);
    EXPECT_EQ(m->credentials.username, c.username);
    EXPECT_TRUE(m->helper.empty());
  }
}

TEST(AuthFile, HubKeysNormalize) {
  for (const char* key : {"docker.io", "registry-1.docker.io", "index.docker.io",
                          "https://registry-1.docker.io/v2/"}) {
    const AuthFile f =
        AuthFile::parse(fmt::format(R"({{"auths":{{"{}":{{"auth":"{}"}}}}}})", key, b64("u:p")));
    const auto m = f.find(image_ref("busybox"));
    ASSERT_TRUE(m.has_value()) << key;
    EXPECT_EQ(m->key, key);
  }
}

TEST(AuthFile, CredentialHelpersWin) {
  const AuthFile f = AuthFile::parse(R"({"auths":{"gcr.io":{"auth":")" + b64("u:p") +
                                     R"("}},"credHelpers":{"gcr.io":"gcloud"}})");
  const auto m = f.find(image_ref("gcr.io/project/app"));
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->helper, "gcloud");
  EXPECT_TRUE(m->credentials.empty());
  EXPECT_EQ(f.find_registry("gcr.io")->helper, "gcloud");
}

TEST(AuthFile, LegacyDockercfgMatchesHostsOnly) {
  const AuthFile f =
      AuthFile::parse(R"({"https://index.docker.io/v1/":{"auth":")" + b64("hub:p") +
                          R"(","email":"e@x"},"quay.io/ns":{"auth":")" + b64("ns:p") + R"("}})",
                      AuthFileFormat::kDockerCfgLegacy, "~/.dockercfg");
  EXPECT_EQ(f.find(image_ref("nginx"))->credentials.username, "hub");
  // Legacy keys are cut at the first '/': quay.io/ns reads as quay.io.
  EXPECT_EQ(f.find(image_ref("quay.io/other/x"))->credentials.username, "ns");
}

TEST(AuthFile, FindsRegistryAlone) {
  const AuthFile f = AuthFile::parse(R"({"auths":{"https://quay.io":{"auth":")" + b64("q:p") +
                                     R"("},"quay.io/ns":{"auth":")" + b64("ns:p") + R"("}}})");
  ASSERT_TRUE(f.find_registry("quay.io").has_value());
  EXPECT_EQ(f.find_registry("quay.io")->key, "https://quay.io");
  EXPECT_FALSE(f.find_registry("ghcr.io").has_value());
}

// --- Writing ---

TEST(AuthFile, LoginAndLogoutKeepUnknownFields) {
  AuthFile f = AuthFile::parse(R"({
    "auths": {"quay.io": {"auth": "b2xkOm9sZA==", "email": "me@example.com", "username": "x",
                          "password": "y", "identitytoken": "old"}},
    "credHelpers": {"gcr.io": "gcloud"},
    "HttpHeaders": {"User-Agent": "x"},
    "experimental": "enabled"
  })");
  f.set("quay.io", Credentials{"new", "pw", ""});
  f.set("registry.example.com/team/app", Credentials{"t", "tp", "idt"});
  EXPECT_EQ(f.serialize(),
            "{\n"
            "\t\"HttpHeaders\": {\n\t\t\"User-Agent\": \"x\"\n\t},\n"
            "\t\"auths\": {\n"
            "\t\t\"quay.io\": {\n\t\t\t\"auth\": \"bmV3OnB3\",\n\t\t\t\"email\": "
            "\"me@example.com\"\n\t\t},\n"
            "\t\t\"registry.example.com/team/app\": {\n\t\t\t\"auth\": \"dDp0cA==\",\n"
            "\t\t\t\"identitytoken\": \"idt\"\n\t\t}\n"
            "\t},\n"
            "\t\"credHelpers\": {\n\t\t\"gcr.io\": \"gcloud\"\n\t},\n"
            "\t\"experimental\": \"enabled\"\n"
            "}");
  EXPECT_TRUE(f.remove("quay.io"));
  EXPECT_FALSE(f.remove("quay.io"));
  EXPECT_EQ(f.keys(), std::vector<std::string>{"registry.example.com/team/app"});
  EXPECT_EQ(AuthFile::parse(f.serialize()).get("registry.example.com/team/app"),
            (Credentials{"t", "tp", "idt"}));
}

TEST(AuthFile, RefusesKeysLoginWouldNotWrite) {
  struct Case {
    std::string key;
    std::string want;  // empty: accepted
    bool namespaced = false;
  };
  const Case cases[] = {
      {"quay.io", ""},
      {"localhost:5000", ""},
      {"localhost:5000/foo", "", true},
      {"quay.io/a/b", "", true},
      {"https://quay.io", "contains http[s]:// prefix"},
      {"http://quay.io", "contains http[s]:// prefix"},
      {"quay.io/a@sha256:x", "contains a '@' character"},
      {"quay.io/a:tag", "contains a ':' character after host[:port]"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.key);
    if (c.want.empty()) {
      EXPECT_EQ(validate_auth_key(c.key), c.namespaced);
      AuthFile f;
      EXPECT_NO_THROW(f.set(c.key, {"u", "p", ""}));
    } else {
      EXPECT_THAT(error_of([&] { validate_auth_key(c.key); }), HasSubstr(c.want));
      AuthFile f;
      EXPECT_THROW(f.set(c.key, {"u", "p", ""}), Error);
    }
  }
}

TEST(AuthFile, DockerFormatWritesTheHubKey) {
  AuthFile docker(AuthFileFormat::kDocker);
  docker.set("docker.io", {"u", "p", ""});
  EXPECT_EQ(docker.keys(), std::vector<std::string>{std::string(kDockerHubAuthKey)});
  EXPECT_EQ(docker.find(image_ref("alpine"))->key, kDockerHubAuthKey);
  EXPECT_TRUE(docker.remove("docker.io"));
  EXPECT_TRUE(docker.keys().empty());

  AuthFile containers;
  containers.set("docker.io", {"u", "p", ""});
  EXPECT_EQ(containers.keys(), std::vector<std::string>{"docker.io"});
  containers.set("index.docker.io", {"u", "p", ""});
  EXPECT_TRUE(containers.remove("docker.io"));
  EXPECT_EQ(containers.keys(), std::vector<std::string>{"index.docker.io"});
  EXPECT_TRUE(containers.remove("docker.io"));  // falls back to the normalized key
  EXPECT_EQ(AuthFile().serialize(), "{\n\t\"auths\": {}\n}");
}

TEST(AuthFile, SavesAtomicallyWithPrivateModes) {
  TempDir tmp;
  const AuthFileLocation loc{tmp.path() / "run" / "containers" / "auth.json",
                             AuthFileFormat::kContainers};
  EXPECT_FALSE(load_auth_file(loc).has_value());
  AuthFile f;
  f.set("quay.io", {"u", "p", ""});
  save_auth_file(loc, f);
  struct stat st {};
  ASSERT_EQ(::stat(loc.path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(loc.path.parent_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(::stat(loc.path.parent_path().parent_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  const auto back = load_auth_file(loc);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->get("quay.io"), (Credentials{"u", "p", ""}));
  // Existing files are replaced whole; no temp files remain.
  f.remove("quay.io");
  save_auth_file(loc, f);
  EXPECT_TRUE(load_auth_file(loc)->keys().empty());
  EXPECT_EQ(std::distance(fs::directory_iterator(loc.path.parent_path()), fs::directory_iterator()),
            1);
}

TEST(AuthFile, FindsCredentialsAcrossFilesInOrder) {
  TempDir tmp;
  const auto write = [&](const std::string& name, const std::string& text) {
    atomic_write_file(tmp.path() / name, text, 0600);
    return tmp.path() / name;
  };
  const auto first = write("first.json", R"({"auths":{"quay.io/empty":{},"ghcr.io":{"auth":")" +
                                             b64("first:p") + R"("}}})");
  const auto second = write("second.json", R"({"auths":{"quay.io":{"auth":")" + b64("second:p") +
                                               R"("}},"credHelpers":{"gcr.io":"gcloud"}})");
  const std::vector<AuthFileLocation> locations{
      {tmp.path() / "missing.json", AuthFileFormat::kContainers},
      {first, AuthFileFormat::kContainers},
      {second, AuthFileFormat::kDocker}};
  const auto ghcr = find_credentials(locations, image_ref("ghcr.io/a/b"));
  ASSERT_TRUE(ghcr.has_value());
  EXPECT_EQ(ghcr->credentials.username, "first");
  EXPECT_EQ(ghcr->file, first);
  // An empty entry in the first file falls through to the next file.
  const auto quay = find_credentials(locations, image_ref("quay.io/empty/x"));
  ASSERT_TRUE(quay.has_value());
  EXPECT_EQ(quay->credentials.username, "second");
  EXPECT_EQ(quay->file, second);
  const auto gcr = find_credentials(locations, image_ref("gcr.io/p/x"));
  ASSERT_TRUE(gcr.has_value());
  EXPECT_EQ(gcr->helper, "gcloud");
  EXPECT_FALSE(find_credentials(locations, image_ref("docker.io/x/y")).has_value());
  write("broken.json", "{");
  EXPECT_THROW(find_credentials({{tmp.path() / "broken.json", AuthFileFormat::kContainers}},
                                image_ref("quay.io/a")),
               Error);
}

}  // namespace
}  // namespace stowage::oci
