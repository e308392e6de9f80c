// Header fields and the response-head parser: case-insensitive, multi-valued lookup, and the
// raw-line handling a transport relies on (interim responses, redirects, folding, trailers).
#include "http/headers.h"

#include <gtest/gtest.h>

namespace stowage::http {
namespace {

TEST(Headers, LooksUpNamesIgnoringCase) {
  Headers h{{"Content-Type", "application/json"}};
  EXPECT_TRUE(h.contains("content-type"));
  EXPECT_EQ(h.get("CONTENT-TYPE"), "application/json");
  EXPECT_EQ(h.get("Content-Length"), std::nullopt);
}

TEST(Headers, KeepsEveryValueInOrder) {
  Headers h;
  h.add("WWW-Authenticate", "Bearer realm=\"a\"");
  h.add("Other", "x");
  h.add("www-authenticate", "Basic realm=\"b\"");
  EXPECT_EQ(h.get("WWW-Authenticate"), "Bearer realm=\"a\"");
  EXPECT_EQ(h.get_all("Www-Authenticate"),
            (std::vector<std::string>{"Bearer realm=\"a\"", "Basic realm=\"b\""}));
  EXPECT_EQ(h.size(), 3U);
}

TEST(Headers, SetReplacesAllValuesAndRemoveCounts) {
  Headers h{{"A", "1"}, {"a", "2"}, {"B", "3"}};
  h.set("A", "9");
  EXPECT_EQ(h.get_all("a"), std::vector<std::string>{"9"});
  EXPECT_EQ(h.remove("b"), 1U);
  EXPECT_EQ(h.remove("b"), 0U);
  EXPECT_EQ(h.size(), 1U);
}

TEST(StatusLine, ParsesHttp1AndHttp2) {
  auto s = parse_status_line("HTTP/1.1 404 Not Found\r\n");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->version, "1.1");
  EXPECT_EQ(s->status, 404);
  EXPECT_EQ(s->reason, "Not Found");
  s = parse_status_line("HTTP/2 200 \r\n");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->version, "2");
  EXPECT_EQ(s->status, 200);
  EXPECT_EQ(s->reason, "");
  s = parse_status_line("HTTP/1.0 204");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->status, 204);
}

TEST(StatusLine, RejectsOtherLines) {
  EXPECT_FALSE(parse_status_line("Content-Type: text/plain\r\n"));
  EXPECT_FALSE(parse_status_line("HTTP/1.1 20 OK"));
  EXPECT_FALSE(parse_status_line("HTTP/1.1 2000 OK"));
  EXPECT_FALSE(parse_status_line("HTTP/x 200 OK"));
  EXPECT_FALSE(parse_status_line("HTTP/1.1 099 Low"));
  EXPECT_FALSE(parse_status_line("HTTP/ 200"));
  EXPECT_FALSE(parse_status_line(""));
}

TEST(HeaderLine, TrimsValueAndKeepsColonsInside) {
  auto f = parse_header_line("Location:   http://h:5000/v2/  \r\n");
  ASSERT_TRUE(f);
  EXPECT_EQ(f->first, "Location");
  EXPECT_EQ(f->second, "http://h:5000/v2/");
  f = parse_header_line("Empty:\r\n");
  ASSERT_TRUE(f);
  EXPECT_EQ(f->second, "");
}

TEST(HeaderLine, RejectsLinesWithoutValidName) {
  EXPECT_FALSE(parse_header_line("no colon here"));
  EXPECT_FALSE(parse_header_line(": value"));
  EXPECT_FALSE(parse_header_line("Bad Name: value"));
  EXPECT_FALSE(parse_header_line("Bad\x01: value"));
}

void feed_all(ResponseHeadParser& p, std::initializer_list<std::string_view> lines) {
  for (auto line : lines) {
    p.feed(line);
  }
}

TEST(ResponseHeadParser, CollectsOneHead) {
  ResponseHeadParser p;
  feed_all(p, {"HTTP/1.1 200 OK\r\n", "Content-Length: 5\r\n", "X-Multi: a\r\n", "x-multi: b\r\n"});
  EXPECT_FALSE(p.complete());
  p.feed("\r\n");
  ASSERT_TRUE(p.complete());
  EXPECT_EQ(p.status(), 200);
  EXPECT_EQ(p.version(), "1.1");
  EXPECT_EQ(p.reason(), "OK");
  EXPECT_EQ(p.headers().get("content-length"), "5");
  EXPECT_EQ(p.headers().get_all("X-MULTI"), (std::vector<std::string>{"a", "b"}));
}

TEST(ResponseHeadParser, SkipsInterimResponses) {
  ResponseHeadParser p;
  feed_all(p, {"HTTP/1.1 100 Continue\r\n", "X-Interim: 1\r\n", "\r\n"});
  EXPECT_FALSE(p.complete());
  feed_all(p, {"HTTP/1.1 201 Created\r\n", "Location: /x\r\n", "\r\n"});
  ASSERT_TRUE(p.complete());
  EXPECT_EQ(p.status(), 201);
  EXPECT_FALSE(p.headers().contains("X-Interim"));
  EXPECT_EQ(p.headers().get("Location"), "/x");
}

TEST(ResponseHeadParser, KeepsOnlyTheLastHeadAfterRedirects) {
  ResponseHeadParser p;
  feed_all(p, {"HTTP/1.1 307 Temporary Redirect\r\n", "Location: /b\r\n", "\r\n"});
  ASSERT_TRUE(p.complete());
  EXPECT_EQ(p.status(), 307);
  feed_all(p, {"HTTP/1.1 200 OK\r\n", "Content-Type: text/plain\r\n"});
  EXPECT_FALSE(p.complete());
  p.feed("\r\n");
  ASSERT_TRUE(p.complete());
  EXPECT_EQ(p.status(), 200);
  EXPECT_FALSE(p.headers().contains("Location"));
  EXPECT_EQ(p.headers().get("content-type"), "text/plain");
}

TEST(ResponseHeadParser, JoinsFoldedLinesAndIgnoresTrailers) {
  ResponseHeadParser p;
  feed_all(p, {"HTTP/1.1 200 OK\r\n", "X-Long: first\r\n", " \t second\r\n", "Junk line\r\n",
               "\r\n", "X-Trailer: t\r\n"});
  ASSERT_TRUE(p.complete());
  EXPECT_EQ(p.headers().get("X-Long"), "first second");
  EXPECT_EQ(p.headers().size(), 1U);
  EXPECT_FALSE(p.headers().contains("X-Trailer"));
}

TEST(ResponseHeadParser, IgnoresLinesBeforeAStatusLine) {
  ResponseHeadParser p;
  feed_all(p, {"X-Stray: 1\r\n", "\r\n"});
  EXPECT_FALSE(p.complete());
  EXPECT_EQ(p.status(), 0);
}

}  // namespace
}  // namespace stowage::http
