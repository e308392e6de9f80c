// Listen addresses of the health server: host:port, :port, [ipv6]:port; malformed text is an
// InvalidArgument that quotes it.
#include <gtest/gtest.h>

#include "base/error.h"
#include "http/health_server.h"

namespace stowage::http {
namespace {

TEST(ListenAddress, ParsesHostAndPort) {
  auto a = parse_listen_address("127.0.0.1:0");
  EXPECT_EQ(a.host, "127.0.0.1");
  EXPECT_EQ(a.port, 0);
  a = parse_listen_address("0.0.0.0:8081");
  EXPECT_EQ(a.host, "0.0.0.0");
  EXPECT_EQ(a.port, 8081);
  a = parse_listen_address("localhost:65535");
  EXPECT_EQ(a.host, "localhost");
  EXPECT_EQ(a.port, 65535);
}

TEST(ListenAddress, EmptyHostMeansAllInterfaces) {
  auto a = parse_listen_address(":9090");
  EXPECT_EQ(a.host, "0.0.0.0");
  EXPECT_EQ(a.port, 9090);
}

TEST(ListenAddress, ParsesBracketedIpv6) {
  auto a = parse_listen_address("[::1]:0");
  EXPECT_EQ(a.host, "::1");
  EXPECT_EQ(a.port, 0);
}

TEST(ListenAddress, RejectsMalformedText) {
  for (auto text : {"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1:65536",
                    "127.0.0.1:-1", "::1:80", "[::1]80", "[nope]:80", "[::1]"}) {
    try {
      parse_listen_address(text);
      FAIL() << "accepted " << text;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Code::kInvalidArgument) << text;
      EXPECT_NE(std::string(e.what()).find(std::string("\"") + text + "\""), std::string::npos)
          << e.what();
    }
  }
}

}  // namespace
}  // namespace stowage::http
