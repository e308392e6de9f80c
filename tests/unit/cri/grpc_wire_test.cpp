#include "cri/grpc_wire.h"

#include <gtest/gtest.h>

#include <string>

namespace stowage::cri::wire {
namespace {

using namespace std::chrono_literals;

TEST(GrpcWire, TimeoutUsesAtMostEightDigits) {
  EXPECT_EQ(encode_timeout(1500ms), "1500m");
  EXPECT_EQ(encode_timeout(99'999'999ms), "99999999m");
  EXPECT_EQ(encode_timeout(100'000'000ms), "100000S");  // rounded up, never shorter
  EXPECT_EQ(encode_timeout(100'000'001ms), "100001S");
  EXPECT_EQ(encode_timeout(std::chrono::hours(24 * 365 * 5000)), "43800000H");
  EXPECT_EQ(encode_timeout(0ms), "0m");
  EXPECT_EQ(encode_timeout(-5ms), "0m");
}

TEST(GrpcWire, MessageIsPercentDecoded) {
  EXPECT_EQ(decode_message("image %22a%3Ab%22 not found"), "image \"a:b\" not found");
  EXPECT_EQ(decode_message("caf%C3%A9"), "caf\xC3\xA9");
  // Malformed escapes stay as they are.
  EXPECT_EQ(decode_message("100%"), "100%");
  EXPECT_EQ(decode_message("%zz%4"), "%zz%4");
  EXPECT_EQ(decode_message("%4g"), "%4g");
  EXPECT_EQ(decode_message(""), "");
}

TEST(GrpcWire, HttpStatusWithoutGrpcStatus) {
  EXPECT_EQ(code_for_http_status(400), 13);
  EXPECT_EQ(code_for_http_status(401), 16);
  EXPECT_EQ(code_for_http_status(403), 7);
  EXPECT_EQ(code_for_http_status(404), 12);
  for (const int s : {429, 502, 503, 504}) {
    EXPECT_EQ(code_for_http_status(s), 14) << s;
  }
  EXPECT_EQ(code_for_http_status(200), 13);
  EXPECT_EQ(code_for_http_status(500), 2);
  EXPECT_EQ(code_for_http_status(0), 2);
}

TEST(GrpcWire, StatusMustBeASmallNumber) {
  EXPECT_EQ(parse_status("0"), 0);
  EXPECT_EQ(parse_status("14"), 14);
  EXPECT_EQ(parse_status("99"), 99);
  EXPECT_FALSE(parse_status(""));
  EXPECT_FALSE(parse_status("100"));
  EXPECT_FALSE(parse_status("-1"));
  EXPECT_FALSE(parse_status("1 "));
  EXPECT_FALSE(parse_status("OK"));
}

TEST(GrpcWire, UnaryBodyRoundTrips) {
  for (const std::string& m : {std::string(), std::string("x"), std::string(70'000, '\xff')}) {
    const std::string framed = frame_message(m);
    ASSERT_EQ(framed.size(), m.size() + 5);
    const UnaryBody body = parse_unary_body(framed);
    EXPECT_EQ(body.error, "");
    EXPECT_EQ(body.message, m);
  }
  EXPECT_EQ(frame_message("abc"), std::string("\0\0\0\0\3abc", 8));
  EXPECT_EQ(frame_message(std::string(0x010203, 'a')).substr(0, 5), std::string("\0\0\1\2\3", 5));
}

TEST(GrpcWire, UnaryBodyFaults) {
  EXPECT_EQ(parse_unary_body("").error, "the response carried no message");
  EXPECT_NE(parse_unary_body(std::string("\0\0\0", 3)).error.find("truncated"), std::string::npos);
  EXPECT_NE(parse_unary_body(std::string("\0\0\0\0\5abc", 8)).error.find("3 of 5 bytes"),
            std::string::npos);
  EXPECT_NE(parse_unary_body(std::string("\1\0\0\0\1a", 6)).error.find("compressed"),
            std::string::npos);
  EXPECT_NE(parse_unary_body(std::string("\2\0\0\0\1a", 6)).error.find("flag byte 2"),
            std::string::npos);
  EXPECT_EQ(parse_unary_body(frame_message("a") + frame_message("b")).error,
            "the response carried more than one message");
}

}  // namespace
}  // namespace stowage::cri::wire
