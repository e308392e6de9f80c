// The one mapping of HTTP statuses and the one mapping of curl codes to stowage::Error codes,
// raise_for_status messages (what, to what, no credentials) and Retry-After parsing.
#include "http/errors.h"

#include <curl/curl.h>
#include <gtest/gtest.h>

#include "http/curl_errors.h"

namespace stowage::http {
namespace {

TEST(CodeForStatus, MapsTheStatusesCallersBranchOn) {
  EXPECT_EQ(code_for_status(400), Code::kInvalidArgument);
  EXPECT_EQ(code_for_status(401), Code::kUnauthenticated);
  EXPECT_EQ(code_for_status(403), Code::kPermissionDenied);
  EXPECT_EQ(code_for_status(404), Code::kNotFound);
  EXPECT_EQ(code_for_status(405), Code::kInvalidArgument);
  EXPECT_EQ(code_for_status(408), Code::kUnavailable);
  EXPECT_EQ(code_for_status(409), Code::kConflict);
  EXPECT_EQ(code_for_status(410), Code::kGone);
  EXPECT_EQ(code_for_status(412), Code::kConflict);
  EXPECT_EQ(code_for_status(416), Code::kInvalidArgument);
  EXPECT_EQ(code_for_status(422), Code::kInvalidArgument);
  EXPECT_EQ(code_for_status(429), Code::kResourceExhausted);
  EXPECT_EQ(code_for_status(499), Code::kInvalidArgument);
}

TEST(CodeForStatus, EveryServerErrorIsUnavailable) {
  for (int status = 500; status < 600; ++status) {
    EXPECT_EQ(code_for_status(status), Code::kUnavailable) << status;
  }
}

TEST(CodeForStatus, UnexpectedStatusesAreInternal) {
  EXPECT_EQ(code_for_status(100), Code::kInternal);
  EXPECT_EQ(code_for_status(200), Code::kInternal);
  EXPECT_EQ(code_for_status(302), Code::kInternal);
  EXPECT_EQ(code_for_status(0), Code::kInternal);
  EXPECT_EQ(code_for_status(600), Code::kInternal);
}

TEST(CodeForStatus, RetryableOnlyWhereRetryingCanHelp) {
  EXPECT_TRUE(code_retryable(code_for_status(503)));
  EXPECT_TRUE(code_retryable(code_for_status(429)));
  EXPECT_TRUE(code_retryable(code_for_status(409)));
  EXPECT_FALSE(code_retryable(code_for_status(401)));
  EXPECT_FALSE(code_retryable(code_for_status(403)));
  EXPECT_FALSE(code_retryable(code_for_status(404)));
}

TEST(CodeForCurl, NetworkFailuresAreUnavailable) {
  for (int rc : {CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY, CURLE_COULDNT_CONNECT,
                 CURLE_RECV_ERROR, CURLE_SEND_ERROR, CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE,
                 CURLE_SSL_CONNECT_ERROR, CURLE_HTTP2, CURLE_HTTP2_STREAM, CURLE_WEIRD_SERVER_REPLY,
                 CURLE_PROXY}) {
    EXPECT_EQ(code_for_curl(rc), Code::kUnavailable) << curl_easy_strerror(CURLcode(rc));
  }
}

TEST(CodeForCurl, TimeoutsAreDeadlineExceeded) {
  EXPECT_EQ(code_for_curl(CURLE_OPERATION_TIMEDOUT), Code::kDeadlineExceeded);
}

TEST(CodeForCurl, UntrustedServerIsUnauthenticatedAndNotRetried) {
  EXPECT_EQ(code_for_curl(CURLE_PEER_FAILED_VERIFICATION), Code::kUnauthenticated);
  EXPECT_EQ(code_for_curl(CURLE_SSL_PINNEDPUBKEYNOTMATCH), Code::kUnauthenticated);
  EXPECT_EQ(code_for_curl(CURLE_SSL_ISSUER_ERROR), Code::kUnauthenticated);
  EXPECT_FALSE(code_retryable(code_for_curl(CURLE_PEER_FAILED_VERIFICATION)));
}

TEST(CodeForCurl, BadLocalConfigurationIsInvalidArgument) {
  for (int rc : {CURLE_SSL_CACERT_BADFILE, CURLE_SSL_CERTPROBLEM, CURLE_URL_MALFORMAT,
                 CURLE_UNSUPPORTED_PROTOCOL, CURLE_TOO_MANY_REDIRECTS, CURLE_SEND_FAIL_REWIND}) {
    EXPECT_EQ(code_for_curl(rc), Code::kInvalidArgument) << curl_easy_strerror(CURLcode(rc));
  }
}

TEST(CodeForCurl, OtherCodes) {
  EXPECT_EQ(code_for_curl(CURLE_OUT_OF_MEMORY), Code::kResourceExhausted);
  EXPECT_EQ(code_for_curl(CURLE_BAD_CONTENT_ENCODING), Code::kDataLoss);
  EXPECT_EQ(code_for_curl(CURLE_REMOTE_ACCESS_DENIED), Code::kPermissionDenied);
  EXPECT_EQ(code_for_curl(CURLE_FAILED_INIT), Code::kInternal);
  EXPECT_EQ(code_for_curl(CURLE_OK), Code::kInternal);
  EXPECT_EQ(code_for_curl(12345), Code::kInternal);
  EXPECT_EQ(code_for_curl(-1), Code::kInternal);
}

Response response(int status, std::string url, std::string body = "") {
  Response r;
  r.status = status;
  r.method = "GET";
  r.url = std::move(url);
  r.body = std::move(body);
  return r;
}

TEST(RaiseForStatus, ReturnsOnSuccess) {
  EXPECT_NO_THROW(raise_for_status(response(200, "http://h/"), "x"));
  EXPECT_NO_THROW(raise_for_status(response(204, "http://h/"), "x"));
}

TEST(RaiseForStatus, SaysWhatAndToWhatWithTheRightCode) {
  auto r = response(404, "https://quay.io/v2/x/manifests/1.0",
                    "{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\",\n\"message\":\"unknown\"}]}");
  try {
    raise_for_status(r, "resolving quay.io/x:1.0");
    FAIL() << "no throw";
  } catch (const HttpStatusError& e) {
    EXPECT_EQ(e.code(), Code::kNotFound);
    EXPECT_EQ(e.status(), 404);
    EXPECT_EQ(std::string(e.what()),
              "resolving quay.io/x:1.0: GET https://quay.io/v2/x/manifests/1.0: HTTP 404 Not "
              "Found: {\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\", \"message\":\"unknown\"}]}");
  }
}

TEST(RaiseForStatus, NeverPrintsCredentialsFromTheUrl) {
  auto r = response(403, "https://user:hunter2@s3.example/blob?X-Amz-Signature=deadbeef&n=1");
  try {
    raise_for_status(r, "fetching blob");
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kPermissionDenied);
    const std::string message = e.what();
    EXPECT_EQ(message.find("hunter2"), std::string::npos) << message;
    EXPECT_EQ(message.find("deadbeef"), std::string::npos) << message;
    EXPECT_NE(message.find("s3.example/blob"), std::string::npos) << message;
  }
}

TEST(RaiseForStatus, LeavesOutBinaryBodiesAndTruncatesLongOnes) {
  try {
    raise_for_status(response(500, "http://h/", std::string("\x1f\x8b\x08\x00", 4)), "");
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kUnavailable);
    EXPECT_EQ(std::string(e.what()), "GET http://h/: HTTP 500 Internal Server Error");
  }
  try {
    raise_for_status(response(400, "http://h/", std::string(5000, 'a')), "");
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_LT(std::string(e.what()).size(), 300U);
    EXPECT_TRUE(std::string(e.what()).ends_with("aaa..."));
  }
}

TEST(RaiseForStatus, CarriesRetryAfter) {
  auto r = response(429, "http://h/");
  r.headers.add("retry-after", "7");
  try {
    raise_for_status(r, "pulling");
    FAIL() << "no throw";
  } catch (const HttpStatusError& e) {
    EXPECT_EQ(e.code(), Code::kResourceExhausted);
    EXPECT_TRUE(e.retryable());
    EXPECT_EQ(e.retry_after(), "7");
  }
}

TEST(ParseRetryAfter, ReadsSecondsAndDates) {
  using std::chrono::seconds;
  const auto now = std::chrono::system_clock::from_time_t(784111777);  // Sun, 06 Nov 1994 08:49:37
  EXPECT_EQ(parse_retry_after("120", now), seconds(120));
  // Far-future dates and huge numbers are clamped to ten years instead of overflowing.
  EXPECT_EQ(parse_retry_after("Fri, 01 Jan 6752 00:00:00 GMT", now),
            seconds(10LL * 365 * 24 * 3600));
  EXPECT_EQ(parse_retry_after("99999999999999", now), seconds(10LL * 365 * 24 * 3600));
  EXPECT_EQ(parse_retry_after(" 0 ", now), seconds(0));
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now), seconds(30));
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now), seconds(0));
  EXPECT_EQ(parse_retry_after("", now), std::nullopt);
  EXPECT_EQ(parse_retry_after("12abc", now), std::nullopt);
  EXPECT_EQ(parse_retry_after("soon", now), std::nullopt);
}

TEST(ParseHttpDate, ReadsTheThreeFormsOfRfc9110) {
  constexpr long long kSunday = 784111777;  // Sun, 06 Nov 1994 08:49:37 GMT
  EXPECT_EQ(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), kSunday);
  EXPECT_EQ(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), kSunday);
  EXPECT_EQ(parse_http_date("Sun Nov  6 08:49:37 1994"), kSunday);
  EXPECT_EQ(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), 0);
  EXPECT_EQ(parse_http_date("Tue, 29 Feb 2028 23:59:60 GMT"), 1835481600LL);
  EXPECT_EQ(parse_http_date("Wednesday, 01-Jan-31 00:00:00 GMT"), 1924992000LL);  // 2031
  EXPECT_EQ(parse_http_date("Fri Dec 31 23:59:59 1999"), 946684799LL);
}

TEST(ParseHttpDate, RefusesWhatIsNotAnHttpDate) {
  for (const char* bad : {"", "Sun, 06 Nov 1994 08:49:37", "Sun, 06 Nov 1994 08:49:37 UTC",
                          "Sun, 6 Nov 1994 08:49:37 GMT", "Sun, 31 Feb 1994 08:49:37 GMT",
                          "Sun, 00 Nov 1994 08:49:37 GMT", "Sun, 06 Nox 1994 08:49:37 GMT",
                          "Sun, 06 Nov 1994 24:00:00 GMT", "Sun, 06 Nov 1994 08:60:00 GMT",
                          "Sun, 06 Nov 1994 08:49:37 GMT ", "Xyz, 06 Nov 1994 08:49:37 GMT",
                          "Sunday, 06-Nov-1994 08:49:37 GMT", "Sun Nov 06 08:49:37 94",
                          "Sun Nov  6 08:49:37 1994 GMT", "1994-11-06T08:49:37Z"}) {
    EXPECT_EQ(parse_http_date(bad), std::nullopt) << bad;
  }
}

TEST(ReasonPhrase, KnowsCommonStatuses) {
  EXPECT_EQ(reason_phrase(200), "OK");
  EXPECT_EQ(reason_phrase(429), "Too Many Requests");
  EXPECT_EQ(reason_phrase(599), "");
}

}  // namespace
}  // namespace stowage::http
