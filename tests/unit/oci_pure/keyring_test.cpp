#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "base/error.h"
#include "oci/auth.h"

namespace stowage::oci {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(GlobMatch, FollowsFilepathMatch) {
  struct Case {
    const char* pattern;
    const char* name;
    bool want;
  };
  // Go's path/filepath match_test.go vectors (ASCII ones); malformed patterns match nothing.
  const Case cases[] = {
      {"abc", "abc", true},
      {"*", "abc", true},
      {"*c", "abc", true},
      {"a*", "a", true},
      {"a*", "abc", true},
      {"a*", "ab/c", false},
      {"a*/b", "abc/b", true},
      {"a*/b", "a/c/b", false},
      {"a*b*c*d*e*/f", "axbxcxdxe/f", true},
      {"a*b*c*d*e*/f", "axbxcxdxexxx/f", true},
      {"a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false},
      {"a*b*c*d*e*/f", "axbxcxdxexxx/fff", false},
      {"a*b?c*x", "abxbbxdbxebxczzx", true},
      {"a*b?c*x", "abxbbxdbxebxczzy", false},
      {"ab[c]", "abc", true},
      {"ab[b-d]", "abc", true},
      {"ab[e-g]", "abc", false},
      {"ab[^c]", "abc", false},
      {"ab[^b-d]", "abc", false},
      {"ab[^e-g]", "abc", true},
      {"a\\*b", "a*b", true},
      {"a\\*b", "ab", false},
      {"a?b", "a/b", false},
      {"a*b", "a/b", false},
      {"[\\]a]", "]", true},
      {"[\\-]", "-", true},
      {"[x\\-]", "x", true},
      {"[x\\-]", "-", true},
      {"[x\\-]", "z", false},
      {"[\\-x]", "x", true},
      {"[\\-x]", "-", true},
      {"[\\-x]", "a", false},
      {"[]a]", "]", false},
      {"[-]", "-", false},
      {"[x-]", "x", false},
      {"[-x]", "x", false},
      {"\\", "a", false},
      {"[a-b-c]", "a", false},
      {"[", "a", false},
      {"[^", "a", false},
      {"[^bc", "a", false},
      {"a[", "a", false},
      {"a[", "ab", false},
      {"*x", "xxx", true},
      {"", "", true},
      {"", "a", false},
      {"*", "", true},
      {"*-good", "prefix-good", true},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(glob_match(c.pattern, c.name), c.want) << c.pattern << " vs " << c.name;
  }
}

std::vector<std::string> users(const std::vector<KeyringMatch>& matches) {
  std::vector<std::string> out;
  for (const auto& m : matches) out.push_back(m.credentials.username);
  return out;
}

Credentials C(std::string user) {
  return Credentials{std::move(user), "pw", ""};
}

TEST(DockerKeyring, MatchesLikeKubelet) {
  DockerKeyring k;
  EXPECT_TRUE(k.add("*.kubernetes.io", C("glob")));
  EXPECT_TRUE(k.add("prefix.*.io", C("mid-glob")));
  EXPECT_TRUE(k.add("https://quay.io", C("quay")));
  EXPECT_TRUE(k.add("http://quay.io/foo", C("quay-foo")));
  EXPECT_TRUE(k.add("quay.io/foo/bar", C("quay-foo-bar")));
  EXPECT_TRUE(k.add("https://registry.example.com/v2/", C("v2")));
  EXPECT_TRUE(k.add("https://old.example.com/v1/team", C("v1-team")));
  EXPECT_TRUE(k.add("localhost:5000", C("local")));
  EXPECT_TRUE(k.add("[::1]:5000", C("v6")));
  EXPECT_TRUE(k.add("*.example.org:8443", C("port-glob")));
  using V = std::vector<std::string>;
  struct Case {
    std::string image;
    V want;
  };
  const Case cases[] = {
      {"prefix.kubernetes.io/app", V{"mid-glob", "glob"}},
      {"a.kubernetes.io/app:1.0", V{"glob"}},
      {"kubernetes.io/app", V{}},        // label count differs
      {"a.b.kubernetes.io/app", V{}},    // label count differs
      {"a.kubernetes.io:443/app", V{}},  // port must match
      {"quay.io/foo/bar/baz", V{"quay-foo-bar", "quay-foo", "quay"}},
      {"quay.io/foo/bar:tag", V{"quay-foo-bar", "quay-foo", "quay"}},
      {"quay.io/foobar/x", V{"quay-foo", "quay"}},  // kubelet: plain string prefix of the path
      {"quay.io/other", V{"quay"}},
      {"registry.example.com/anything", V{"v2"}},
      {"old.example.com/team/app", V{"v1-team"}},
      {"old.example.com/other", V{}},
      {"localhost:5000/app", V{"local"}},
      {"localhost/app", V{}},
      {"localhost:5001/app", V{}},
      {"[::1]:5000/app", V{"v6"}},
      {"a.example.org:8443/x", V{"port-glob"}},
      {"a.example.org/x", V{}},
  };
  for (const auto& c : cases) EXPECT_EQ(users(k.lookup(c.image)), c.want) << c.image;
  const auto matches = k.lookup("quay.io/foo/bar");
  ASSERT_EQ(matches.size(), 3u);
  EXPECT_EQ(matches[0].key, "quay.io/foo/bar");
  EXPECT_EQ(matches[1].key, "quay.io/foo");
  EXPECT_EQ(matches[2].key, "quay.io");
}

TEST(DockerKeyring, FallsBackToDockerHubForHubNames) {
  DockerKeyring k;
  k.add("https://index.docker.io/v1/", C("hub"));
  k.add("quay.io", C("quay"));
  using V = std::vector<std::string>;
  const std::pair<std::string, V> cases[] = {
      {"nginx", V{"hub"}},
      {"library/nginx", V{"hub"}},
      {"user/app:1", V{"hub"}},
      {"docker.io/library/nginx", V{"hub"}},
      {"index.docker.io/library/nginx", V{"hub"}},
      {"quay.io/a", V{"quay"}},
      {"ghcr.io/a", V{}},
      {"localhost:5000/a", V{}},
      {"/a", V{}},
  };
  for (const auto& [image, want] : cases) EXPECT_EQ(users(k.lookup(image)), want) << image;
  DockerKeyring plain;
  plain.add("docker.io", C("docker-io"));
  EXPECT_EQ(users(plain.lookup("docker.io/library/nginx")), V{"docker-io"});
  EXPECT_EQ(users(plain.lookup("nginx")), V{});  // only the index.docker.io key is the fallback
}

TEST(DockerKeyring, KeepsEveryCredentialForRotation) {
  DockerKeyring k;
  k.add("quay.io", C("first"));
  k.add("https://quay.io/", C("second"));
  k.add_dockerconfigjson(R"({"auths":{"quay.io":{"auth":")" + base64_encode("third:p") + R"("}}})");
  EXPECT_EQ(users(k.lookup("quay.io/x")), (std::vector<std::string>{"first", "second", "third"}));
}

TEST(DockerKeyring, SkipsLocationsThatAreNotUrls) {
  DockerKeyring k;
  EXPECT_FALSE(k.add("quay.io:abc", C("bad-port")));
  EXPECT_FALSE(k.add("[::1", C("bad-v6")));
  EXPECT_FALSE(k.add("quay io", C("space")));
  EXPECT_FALSE(k.add("quay.io/%zz", C("bad-escape")));
  EXPECT_FALSE(k.add(std::string("quay.io\n"), C("control")));
  EXPECT_TRUE(k.lookup("quay.io/x").empty());
  EXPECT_TRUE(k.add("quay.io/a%2Fb", C("escaped")));
  EXPECT_EQ(users(k.lookup("quay.io/a/b/c")), std::vector<std::string>{"escaped"});
}

TEST(DockerKeyring, ParsesPullSecretPayloads) {
  DockerKeyring k;
  k.add_dockerconfigjson(R"({"auths":{
      "quay.io":{"username":"u1","password":"p1","auth":")" +
                         base64_encode("u2:p2") + R"(","email":"e@example.com"},
      "ghcr.io":{"username":"u3","password":"p3"},
      "gcr.io":{"identitytoken":"idt"}}})");
  k.add_dockercfg(R"({"https://registry.example.com":{"auth":")" + base64_encode("u4:p:4") +
                  R"(","email":"e"}})");
  EXPECT_EQ(k.lookup("quay.io/a")[0].credentials, (Credentials{"u2", "p2", ""}));
  EXPECT_EQ(k.lookup("ghcr.io/a")[0].credentials, (Credentials{"u3", "p3", ""}));
  EXPECT_EQ(k.lookup("gcr.io/a")[0].credentials, (Credentials{"", "", "idt"}));
  EXPECT_EQ(k.lookup("registry.example.com/a")[0].credentials, (Credentials{"u4", "p:4", ""}));
  k.add_dockerconfigjson("{}");  // no auths: nothing added
}

TEST(DockerKeyring, RefusesBadPayloadsWithoutEchoingSecrets) {
  struct Case {
    std::string payload;
    std::string want;
    bool legacy = false;
  };
  const Case cases[] = {
      {"[]", ".dockerconfigjson: must be a JSON object"},
      {R"({"auths":[]})", "\"auths\" must be an object"},
      {R"({"auths":{"h":1}})", "entry \"h\" must be an object"},
      {R"({"auths":{"h":{"password":7}}})", "\"password\" must be a string"},
      {R"({"auths":{"h":{"auth":"c2VjcmV0cGFzcw=="}}})",
       "unable to parse auth field, must be formatted as base64(username:password)"},
      {R"({"auths":{"h":{"auth":"secretpass!"}}})", "unable to parse auth field"},
      {R"({"auths":{"h":{"auth":"secretpass)", "invalid JSON at byte"},
      {R"("x")", ".dockercfg: must be a JSON object", true},
      {R"({"h":{"auth":"secretpass!"}})", ".dockercfg: entry \"h\": unable to parse", true},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.payload);
    DockerKeyring k;
    try {
      c.legacy ? k.add_dockercfg(c.payload) : k.add_dockerconfigjson(c.payload);
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Code::kInvalidArgument);
      EXPECT_THAT(e.what(), HasSubstr(c.want));
      EXPECT_THAT(e.what(), Not(HasSubstr("secretpass")));
      EXPECT_THAT(e.what(), Not(HasSubstr("c2VjcmV0")));
    }
    EXPECT_TRUE(k.lookup("h/x").empty());  // nothing of a refused payload is added
  }
}

}  // namespace
}  // namespace stowage::oci
