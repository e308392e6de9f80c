// The registry wire formats without a registry: Link pagination, Content-Range and upload
// ranges, URL resolution of relative Locations, distribution error bodies and their codes,
// Retry-After, tag lists, catalogs and /v1/search results.
#include "oci/distribution.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>

namespace stowage::oci {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(LinkHeader, FindsRelativeNextLink) {
  EXPECT_EQ(parse_link_next({R"(</v2/team/app/tags/list?last=b&n=2>; rel="next")"}),
            "/v2/team/app/tags/list?last=b&n=2");
}

TEST(LinkHeader, PicksNextAmongSeveralLinksAndFields) {
  EXPECT_EQ(parse_link_next({R"(<https://r/prev>; rel="prev", <https://r/next?n=1>; rel=next)"}),
            "https://r/next?n=1");
  EXPECT_EQ(parse_link_next({R"(<https://r/a>; rel="prev")", R"(<https://r/b>; rel="next")"}),
            "https://r/b");
  EXPECT_EQ(parse_link_next({R"(<https://r/c>; title="a, b; c"; REL="first next")"}),
            "https://r/c");
}

TEST(LinkHeader, NoNextIsNullopt) {
  EXPECT_EQ(parse_link_next({}), std::nullopt);
  EXPECT_EQ(parse_link_next({R"(<https://r/a>; rel="prev")"}), std::nullopt);
  EXPECT_EQ(parse_link_next({"garbage"}), std::nullopt);
  EXPECT_EQ(parse_link_next({"<unterminated; rel=next"}), std::nullopt);
  EXPECT_EQ(parse_link_next({R"(<>; rel="next")"}), std::nullopt);
}

TEST(ContentRange, ParsesRangeAndTotal) {
  EXPECT_EQ(parse_content_range("bytes 500-1499/2048"), (ContentRange{500, 1499, 2048}));
  EXPECT_EQ(parse_content_range("bytes 0-0/*"), (ContentRange{0, 0, std::nullopt}));
  EXPECT_EQ(parse_content_range("Bytes 10-19/20"), (ContentRange{10, 19, 20}));
}

TEST(ContentRange, RefusesMalformedValues) {
  for (const char* bad : {"", "bytes", "bytes 5-4/10", "bytes 0-9/9", "bytes */100", "0-9/10",
                          "bytes a-b/c", "bytes 1-2/3x", "bytes 99999999999999999999-1/2"}) {
    EXPECT_EQ(parse_content_range(bad), std::nullopt) << bad;
  }
}

TEST(UploadRange, FormatsAndParsesBothForms) {
  EXPECT_EQ(format_upload_range(0, 1023), "0-1023");
  EXPECT_EQ(parse_upload_range("0-1023"), 1024U);
  EXPECT_EQ(parse_upload_range("bytes=0-9"), 10U);
  EXPECT_EQ(parse_upload_range("5-9"), std::nullopt);
  EXPECT_EQ(parse_upload_range("0-"), std::nullopt);
  EXPECT_EQ(parse_upload_range("nonsense"), std::nullopt);
}

TEST(Url, ResolvesRegistryLocations) {
  const std::string base = "http://127.0.0.1:5000/v2/team/app/blobs/uploads/";
  EXPECT_EQ(resolve_url(base, "/v2/team/app/blobs/uploads/u1?_state=x"),
            "http://127.0.0.1:5000/v2/team/app/blobs/uploads/u1?_state=x");
  EXPECT_EQ(resolve_url(base, "https://storage.example/obj?sig=1"),
            "https://storage.example/obj?sig=1");
  EXPECT_EQ(resolve_url(base, "//cdn.example/x"), "http://cdn.example/x");
  EXPECT_EQ(resolve_url(base, "u2"), "http://127.0.0.1:5000/v2/team/app/blobs/uploads/u2");
  EXPECT_EQ(resolve_url("http://h/v2/x/tags/list?n=2", "?n=2&last=b"),
            "http://h/v2/x/tags/list?n=2&last=b");
  EXPECT_THROW(resolve_url("not a url", "/x"), Error);
  EXPECT_THROW(resolve_url(base, "ftp://x/y"), Error);
}

TEST(Url, SameOriginComparesSchemeHostAndPort) {
  EXPECT_TRUE(same_origin("https://Quay.io/v2/", "https://quay.io:443/x"));
  EXPECT_TRUE(same_origin("http://h:5000/a", "http://h:5000/b"));
  EXPECT_FALSE(same_origin("http://h:5000/a", "http://h:5001/a"));
  EXPECT_FALSE(same_origin("https://h/a", "http://h/a"));
  EXPECT_FALSE(same_origin("https://registry.example/a", "https://storage.example/a"));
  EXPECT_FALSE(same_origin("https://h/a", "https://h@evil.example/a"));
  EXPECT_TRUE(same_origin("https://h/a", "https://user@h/b"));
}

TEST(Url, AppendsEncodedQueryParameters) {
  EXPECT_EQ(append_query("http://h/p", "digest", "sha256:ab"), "http://h/p?digest=sha256%3Aab");
  EXPECT_EQ(append_query("http://h/p?_state=s", "digest", "d"), "http://h/p?_state=s&digest=d");
  EXPECT_EQ(append_query("http://h/p?", "q", "a b/c"), "http://h/p?q=a%20b%2Fc");
}

TEST(ErrorBody, MapsDistributionCodes) {
  const std::string body =
      R"({"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"9.9"}}]})";
  const auto entries = parse_error_body(body);
  ASSERT_EQ(entries.size(), 1U);
  EXPECT_EQ(entries[0].code, "MANIFEST_UNKNOWN");
  EXPECT_EQ(entries[0].detail, R"({"Tag":"9.9"})");
  EXPECT_EQ(code_for_registry_error(404, entries), Code::kNotFound);
  EXPECT_EQ(
      describe_registry_failure("registry r: repository team/app: GET manifest 9.9", 404, body),
      R"(registry r: repository team/app: GET manifest 9.9: HTTP 404 Not Found: manifest )"
      R"(unknown (MANIFEST_UNKNOWN): {"Tag":"9.9"})");
}

TEST(ErrorBody, CodesWinOverStatus) {
  auto code = [](int status, const char* c) {
    return code_for_registry_error(status, {RegistryErrorEntry{c, "", ""}});
  };
  EXPECT_EQ(code(401, "UNAUTHORIZED"), Code::kUnauthenticated);
  EXPECT_EQ(code(403, "DENIED"), Code::kPermissionDenied);
  EXPECT_EQ(code(429, "TOOMANYREQUESTS"), Code::kResourceExhausted);
  EXPECT_EQ(code(400, "MANIFEST_BLOB_UNKNOWN"), Code::kInvalidArgument);
  EXPECT_EQ(code(404, "NAME_UNKNOWN"), Code::kNotFound);
  EXPECT_EQ(code(404, "NOT_FOUND"), Code::kNotFound);  // ECR
  EXPECT_EQ(code(503, "SOMETHING_NEW"), Code::kUnavailable);
  EXPECT_EQ(code_for_registry_error(502, {}), Code::kUnavailable);
}

TEST(ErrorBody, NonJsonBodiesGiveExcerptsOrNothing) {
  EXPECT_TRUE(parse_error_body("<html>oops</html>").empty());
  EXPECT_TRUE(parse_error_body("").empty());
  EXPECT_TRUE(parse_error_body(R"({"errors":"x"})").empty());
  EXPECT_EQ(describe_registry_failure("c", 502, "<html><body>bad gateway</body></html>"),
            "c: HTTP 502 Bad Gateway");
  EXPECT_EQ(describe_registry_failure("c", 404, "404 page not found\n"),
            "c: HTTP 404 Not Found: 404 page not found");
  EXPECT_EQ(describe_registry_failure("c", 500, std::string("\x01\x02", 2)),
            "c: HTTP 500 Internal Server Error");
}

TEST(ErrorBody, MessageTextIsKeptPrintable) {
  const auto entries = parse_error_body(
      "{\"errors\":[{\"code\":\"DENIED\",\"message\":\"no\\nway\\u0001\"},{\"message\":\"m\"}]}");
  ASSERT_EQ(entries.size(), 2U);
  EXPECT_EQ(entries[0].message, "no way?");
  EXPECT_EQ(describe_error_entry(entries[0]), "no way? (DENIED)");
  EXPECT_EQ(describe_error_entry(entries[1]), "m");
}

TEST(RetryAfter, SecondsAndHttpDates) {
  const auto now = std::chrono::system_clock::from_time_t(1'700'000'000);  // 2023-11-14 22:13:20
  EXPECT_EQ(retry_after_delay(http::Headers{{"Retry-After", "7"}}, now), std::chrono::seconds(7));
  EXPECT_EQ(retry_after_delay(http::Headers{{"Retry-After", "Tue, 14 Nov 2023 22:13:50 GMT"}}, now),
            std::chrono::seconds(30));
  EXPECT_EQ(retry_after_delay(http::Headers{{"Retry-After", "Tue, 14 Nov 2023 22:00:00 GMT"}}, now),
            std::chrono::seconds(0));
  EXPECT_EQ(retry_after_delay(http::Headers{{"Retry-After", "soon"}}, now), std::nullopt);
  EXPECT_EQ(retry_after_delay(http::Headers{}, now), std::nullopt);
}

TEST(RetryAfter, FarFutureDatesAndHugeNumbersAreClampedNotOverflowed) {
  const auto now = std::chrono::system_clock::from_time_t(1'700'000'000);
  const auto far = parse_retry_after_value("Tue, 14 Nov 6752 01:13:50 GMT", now);
  ASSERT_TRUE(far.has_value());
  const std::chrono::seconds ten_years(10LL * 365 * 24 * 3600);  // the clamp
  EXPECT_EQ(*far, ten_years);
  EXPECT_EQ(parse_retry_after_value("99999999999", now), ten_years);
  EXPECT_EQ(parse_retry_after_value("99999999999999999999999", now), std::nullopt);
  EXPECT_EQ(parse_retry_after_value("12abc", now), std::nullopt);
}

TEST(RetryAfter, RetryableStatuses) {
  for (int s : {408, 429, 500, 502, 503, 504}) EXPECT_TRUE(retryable_status(s)) << s;
  for (int s : {200, 400, 401, 403, 404, 416, 501}) EXPECT_FALSE(retryable_status(s)) << s;
}

TEST(Lists, TagsAndCatalog) {
  EXPECT_THAT(parse_tags_list(R"({"name":"team/app","tags":["1.0","2.0"]})"),
              ElementsAre("1.0", "2.0"));
  EXPECT_TRUE(parse_tags_list(R"({"name":"team/app","tags":null})").empty());
  EXPECT_THAT(parse_catalog(R"({"repositories":["a","b/c"]})"), ElementsAre("a", "b/c"));
  EXPECT_THROW(parse_tags_list(R"({"tags":[1]})"), Error);
  EXPECT_THROW(parse_tags_list("[]"), Error);
  EXPECT_THROW(parse_catalog("{"), Error);
  EXPECT_THROW(parse_catalog(std::string(100, '[') + std::string(100, ']')), Error);
}

TEST(Search, ParsesDockerHubResults) {
  const auto results = parse_search_results(
      R"({"num_results":2,"query":"nginx","results":[)"
      R"({"name":"nginx","description":"Official build","star_count":20000,"is_official":true,)"
      R"("is_automated":false,"is_trusted":false},)"
      R"({"name":"bitnami/nginx","description":null,"star_count":150,"is_automated":true},)"
      R"({"description":"no name, skipped"}]})");
  ASSERT_EQ(results.size(), 2U);
  EXPECT_EQ(results[0], (SearchResult{"nginx", "Official build", 20000, true, false}));
  EXPECT_EQ(results[1], (SearchResult{"bitnami/nginx", "", 150, false, true}));
  EXPECT_TRUE(parse_search_results(R"({"results":[]})").empty());
  EXPECT_THROW(parse_search_results(R"({"results":[{"name":"x","star_count":-1}]})"), Error);
  EXPECT_THROW(parse_search_results(R"({"results":[{"name":"x","is_official":"yes"}]})"), Error);
  EXPECT_THROW(parse_search_results("not json"), Error);
}

}  // namespace
}  // namespace stowage::oci
