// Credentials never reach messages: URL user info, fragments and secret-looking query values are
// dropped; header names that carry secrets are recognised.
#include "http/redact.h"

#include <gtest/gtest.h>

namespace stowage::http {
namespace {

TEST(RedactUrl, LeavesPlainUrlsAlone) {
  EXPECT_EQ(redact_url("https://quay.io/v2/x/blobs/sha256:ab"),
            "https://quay.io/v2/x/blobs/sha256:ab");
  EXPECT_EQ(redact_url("http://127.0.0.1:5000/v2/_catalog?n=100&last=b"),
            "http://127.0.0.1:5000/v2/_catalog?n=100&last=b");
  EXPECT_EQ(redact_url("http://h"), "http://h");
  EXPECT_EQ(redact_url(""), "");
}

TEST(RedactUrl, DropsUserInfo) {
  EXPECT_EQ(redact_url("https://user:p%40ss@registry.corp:5000/v2/"),
            "https://registry.corp:5000/v2/");
  EXPECT_EQ(redact_url("https://token@h?x=1"), "https://h?x=1");
}

TEST(RedactUrl, RedactsSecretQueryValues) {
  EXPECT_EQ(redact_url("https://s3.example/b?X-Amz-Credential=AK&X-Amz-Signature=ff&"
                       "X-Amz-Security-Token=tt&X-Amz-Expires=300"),
            "https://s3.example/b?X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED&"
            "X-Amz-Security-Token=REDACTED&X-Amz-Expires=300");
  EXPECT_EQ(redact_url("https://auth.docker.io/token?service=registry&access_token=abc&password=x"),
            "https://auth.docker.io/token?service=registry&access_token=REDACTED&"
            "password=REDACTED");
  EXPECT_EQ(redact_url("https://blob.core/x?sv=1&sig=zz&flag"),
            "https://blob.core/x?sv=1&sig=REDACTED&flag");
}

TEST(RedactUrl, DropsFragment) {
  EXPECT_EQ(redact_url("https://h/p#access_token=abc"), "https://h/p");
}

TEST(SensitiveHeader, RecognisesCredentialCarriers) {
  for (auto name : {"Authorization", "proxy-authorization", "Cookie", "Set-Cookie",
                    "X-Registry-Auth", "X-Auth-Token", "X-Api-Key"}) {
    EXPECT_TRUE(is_sensitive_header(name)) << name;
  }
  for (auto name : {"Content-Type", "Accept", "Docker-Content-Digest", "Location"}) {
    EXPECT_FALSE(is_sensitive_header(name)) << name;
  }
}

}  // namespace
}  // namespace stowage::http
