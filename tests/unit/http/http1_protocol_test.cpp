// The pure half of Http1Client (http1_protocol.h): URL parsing, redirect resolution and response
// framing, byte by byte and in one piece. No sockets.
#include "http/http1_protocol.h"

#include <gtest/gtest.h>

#include "base/error.h"

namespace stowage::http {
namespace {

struct Decoded {
  std::string body;
  bool done = false;
};

// Feeds the whole input in pieces of `piece` bytes, then finish() if asked.
Decoded decode(ResponseDecoder& d, std::string_view input, std::size_t piece, bool eof) {
  Decoded out;
  while (!input.empty() && !d.done()) {
    std::string_view chunk = input.substr(0, piece);
    input.remove_prefix(chunk.size());
    while (!chunk.empty() && !d.done()) {
      std::string_view body;
      chunk.remove_prefix(d.feed(chunk, &body));
      out.body += body;
    }
  }
  if (eof && !d.done()) d.finish();
  out.done = d.done();
  return out;
}

Code error_code(std::string_view input, bool eof = true, ResponseLimits limits = {}) {
  ResponseDecoder d(false, false, limits);
  try {
    decode(d, input, input.size() + 1, eof);
  } catch (const Error& e) {
    return e.code();
  }
  ADD_FAILURE() << "no error for " << input;
  return Code::kInternal;
}

TEST(Http1Url, ParsesSchemesHostsPortsAndTargets) {
  auto u = parse_http1_url("HTTPS://User:p%40ss@Registry.Example:5000/v2/x?n=1#frag");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->scheme, "https");
  EXPECT_EQ(u->host, "registry.example");
  EXPECT_EQ(u->port, 5000);
  EXPECT_TRUE(u->explicit_port);
  EXPECT_EQ(u->target, "/v2/x?n=1");
  EXPECT_EQ(u->user, "User");
  EXPECT_EQ(u->password, "p@ss");
  EXPECT_EQ(u->authority(), "registry.example:5000");

  u = parse_http1_url("http://[::1]/");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, 80);
  EXPECT_EQ(u->authority(), "[::1]");
  EXPECT_EQ(u->host_port(), "[::1]:80");

  u = parse_http1_url("https://h?q");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->target, "/?q");
  EXPECT_EQ(u->port, 443);

  for (const char* bad :
       {"ftp://h/", "http://", "http://h:0/", "http://h:65536/", "http://h:x/", "http://h /",
        "http://[::1/", "http://[nothex]/", "h/x", "http://a:b:c/"}) {
    EXPECT_FALSE(parse_http1_url(bad)) << bad;
  }
}

TEST(Http1Url, ResolvesLocationsLikeABrowser) {
  const std::string base = "http://h:8080/a/b/c?q=1";
  EXPECT_EQ(resolve_location(base, "/x"), "http://h:8080/x");
  EXPECT_EQ(resolve_location(base, "d"), "http://h:8080/a/b/d");
  EXPECT_EQ(resolve_location(base, "../d?z"), "http://h:8080/a/d?z");
  EXPECT_EQ(resolve_location(base, "../../../../d"), "http://h:8080/d");
  EXPECT_EQ(resolve_location(base, "./"), "http://h:8080/a/b/");
  EXPECT_EQ(resolve_location(base, "?only"), "http://h:8080/a/b/c?only");
  EXPECT_EQ(resolve_location(base, "//other/p"), "http://other/p");
  EXPECT_EQ(resolve_location(base, "HTTPS://s3.example/bucket/../blob?sig=1#f"),
            "HTTPS://s3.example/blob?sig=1");
  EXPECT_EQ(resolve_location(base, "/with space"), "http://h:8080/with%20space");
  EXPECT_EQ(resolve_location("http://u:p@h/a", "b"), "http://u:p@h/b");
  EXPECT_FALSE(resolve_location(base, "file:///etc/passwd"));
  EXPECT_FALSE(resolve_location(base, "javascript:x"));
}

TEST(Http1Url, BasicCredentials) {
  EXPECT_EQ(basic_credentials("robot", "s@fe"), "Basic cm9ib3Q6c0BmZQ==");
  EXPECT_TRUE(is_ip_literal("10.0.0.1"));
  EXPECT_TRUE(is_ip_literal("fe80::1"));
  EXPECT_FALSE(is_ip_literal("registry.local"));
}

TEST(ResponseDecoder, FramesAContentLengthBodyInAnyPieces) {
  const std::string wire =
      "HTTP/1.1 200 OK\r\nContent-Length: 11\r\nX-A: 1\r\nX-A: 2\r\n\r\nhello worldEXTRA";
  for (std::size_t piece : {1UL, 2UL, 7UL, wire.size()}) {
    ResponseDecoder d(false, false);
    const Decoded out = decode(d, wire, piece, false);
    EXPECT_TRUE(out.done);
    EXPECT_EQ(out.body, "hello world");
    EXPECT_EQ(d.status(), 200);
    EXPECT_EQ(d.headers().get_all("x-a"), (std::vector<std::string>{"1", "2"}));
    EXPECT_TRUE(d.keep_alive());
    EXPECT_EQ(d.framing(), ResponseDecoder::Framing::kLength);
  }
}

TEST(ResponseDecoder, DecodesChunkedBodiesSkipsInterimHeadsAndIgnoresTrailers) {
  const std::string wire =
      "HTTP/1.1 100 Continue\r\n\r\n"
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
      "4\r\nWiki\r\nA;ext=\"x\"\r\npedia in\r\n\r\n0\r\nX-Trailer: 1\r\n\r\n";
  for (std::size_t piece : {1UL, 3UL, wire.size()}) {
    ResponseDecoder d(false, false);
    const Decoded out = decode(d, wire, piece, false);
    EXPECT_TRUE(out.done);
    EXPECT_EQ(out.body, "Wikipedia in\r\n");
    EXPECT_FALSE(d.headers().contains("X-Trailer"));
    EXPECT_TRUE(d.keep_alive());
  }
}

TEST(ResponseDecoder, ReadsToCloseWithoutFraming) {
  ResponseDecoder d(false, false);
  EXPECT_EQ(decode(d, "HTTP/1.1 200 OK\r\n\r\nall of it", 4, true).body, "all of it");
  EXPECT_FALSE(d.keep_alive());

  ResponseDecoder unknown_coding(false, false);
  EXPECT_EQ(
      decode(unknown_coding, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzz", 100, true)
          .body,
      "zz");
  EXPECT_FALSE(unknown_coding.keep_alive());
}

TEST(ResponseDecoder, KnowsWhichResponsesHaveNoBody) {
  ResponseDecoder head(true, false);
  EXPECT_TRUE(decode(head, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", 100, false).done);
  EXPECT_TRUE(head.keep_alive());
  ResponseDecoder no_content(false, false);
  EXPECT_TRUE(decode(no_content, "HTTP/1.1 204 No Content\r\n\r\n", 100, false).done);
  ResponseDecoder connect(false, true);
  EXPECT_TRUE(decode(connect, "HTTP/1.1 200 Connection established\r\n\r\n", 100, false).done);
  ResponseDecoder refused(false, true);
  EXPECT_FALSE(
      decode(refused, "HTTP/1.1 407 Proxy Auth\r\nContent-Length: 2\r\n\r\n", 100, false).done);
}

TEST(ResponseDecoder, HonoursConnectionCloseAndHttp10) {
  ResponseDecoder close(false, false);
  decode(close, "HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n",
         100, false);
  EXPECT_TRUE(close.done());
  EXPECT_FALSE(close.keep_alive());
  ResponseDecoder old(false, false);
  decode(old, "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 100, false);
  EXPECT_FALSE(old.keep_alive());
  ResponseDecoder both(false, false);
  decode(both,
         "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 100,
         false);
  EXPECT_TRUE(both.done());
  EXPECT_FALSE(both.keep_alive());
}

TEST(ResponseDecoder, RefusesMalformedInput) {
  EXPECT_EQ(error_code("HTTP/2 200\r\n\r\n"), Code::kUnavailable);
  EXPECT_EQ(error_code("ICY 200 OK\r\n\r\n"), Code::kUnavailable);
  EXPECT_EQ(error_code("HTTP/1.1 101 Switching Protocols\r\n\r\n"), Code::kUnavailable);
  EXPECT_EQ(error_code("HTTP/1.1 200 OK\r\nno colon\r\n\r\n"), Code::kUnavailable);
  EXPECT_EQ(error_code("HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n"), Code::kUnavailable);
  EXPECT_EQ(error_code("HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n"), Code::kUnavailable);
  EXPECT_EQ(error_code("HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n"), Code::kUnavailable);
  EXPECT_EQ(error_code("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"), Code::kUnavailable);
  EXPECT_EQ(error_code("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n"),
            Code::kUnavailable);
  EXPECT_EQ(
      error_code("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n"),
      Code::kUnavailable);
  EXPECT_EQ(error_code("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n"),
            Code::kUnavailable);
  EXPECT_EQ(error_code("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n;x\r\n"),
            Code::kUnavailable);
}

TEST(ResponseDecoder, EnforcesItsLimits) {
  ResponseLimits small{64, 8};
  EXPECT_EQ(error_code("HTTP/1.1 200 OK\r\nX: " + std::string(100, 'x') + "\r\n\r\n", false, small),
            Code::kUnavailable);
  EXPECT_EQ(error_code("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;" +
                           std::string(20, 'e') + "\r\n",
                       false, small),
            Code::kUnavailable);
  // Endless interim responses exhaust the same head budget.
  std::string interim;
  for (int i = 0; i < 10; ++i) interim += "HTTP/1.1 100 Continue\r\n\r\n";
  EXPECT_EQ(error_code(interim, false, small), Code::kUnavailable);
}

TEST(ResponseDecoder, AnEarlyCloseSaysWhatWasMissing) {
  auto message = [](std::string_view wire) -> std::string {
    ResponseDecoder d(false, false);
    try {
      decode(d, wire, 100, true);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Code::kUnavailable);
      return e.what();
    }
    return "no error";
  };
  EXPECT_EQ(message(""), "empty reply from server");
  EXPECT_NE(message("HTTP/1.1 200 OK\r\n").find("head"), std::string::npos);
  EXPECT_NE(message("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc").find("7 bytes"),
            std::string::npos);
  EXPECT_NE(message("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
                .find("last chunk"),
            std::string::npos);
}

TEST(ResponseDecoder, ARefusedFirstByteStillCountsAsStarted) {
  // A malformed answer was an answer: the request must not be replayed on another connection.
  ResponseDecoder d(false, false);
  EXPECT_FALSE(d.started());
  std::string_view body;
  EXPECT_THROW(d.feed("garbage\r\n", &body), Error);
  EXPECT_TRUE(d.started());

  ResponseDecoder nothing(false, false);
  EXPECT_EQ(nothing.feed("", &body), 0U);
  EXPECT_FALSE(nothing.started());
}

}  // namespace
}  // namespace stowage::http
