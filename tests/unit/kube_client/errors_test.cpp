#include "kube/errors.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace stowage::kube {
namespace {

using nlohmann::json;
using std::chrono::seconds;

const std::chrono::system_clock::time_point kNow{seconds(1'700'000'000)};

http::Response answer(int status, std::string body, http::Headers headers = {}) {
  http::Response r;
  r.status = status;
  r.body = std::move(body);
  r.headers = std::move(headers);
  r.method = "PUT";
  r.url = "https://10.0.0.1:6443/api/v1/namespaces/ns/configmaps/cm";
  return r;
}

// Bodies as kube-apiserver 1.36 writes them.
constexpr const char* kNotFound =
    R"j({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"configmaps \"cm\" not found","reason":"NotFound","details":{"name":"cm","kind":"configmaps"},"code":404})j";
constexpr const char* kAlreadyExists =
    R"j({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"configmaps \"cm\" already exists","reason":"AlreadyExists","details":{"name":"cm","kind":"configmaps"},"code":409})j";
constexpr const char* kConflict =
    R"j({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Operation cannot be fulfilled on configmaps \"cm\": the object has been modified; please apply your changes to the latest version and try again","reason":"Conflict","details":{"name":"cm","kind":"configmaps"},"code":409})j";
constexpr const char* kApplyConflict =
    R"j({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Apply failed with 1 conflict: conflict with \"other\": .data.k","reason":"Conflict","details":{"causes":[{"reason":"FieldManagerConflict","message":"conflict with \"other\"","field":".data.k"}]},"code":409})j";
constexpr const char* kInvalid =
    R"j({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"ConfigMap \"cm\" is invalid: data[a b]: Invalid value: \"a b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.'","reason":"Invalid","details":{"name":"cm","kind":"ConfigMap","causes":[{"reason":"FieldValueInvalid","message":"Invalid value: \"a b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.'","field":"data[a b]"}]},"code":422})j";
constexpr const char* kInvalidTerse =
    R"j({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"NodeCache.stowage.io \"n1\" is invalid","reason":"Invalid","details":{"causes":[{"reason":"FieldValueRequired","message":"Required value","field":"spec.images[0].name"},{"reason":"FieldValueNotSupported","message":"Unsupported value: \"Sometimes\": supported values: \"OnRemoval\", \"Never\"","field":"spec.prune.policy"}]},"code":422})j";
constexpr const char* kExpired =
    R"j({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 5 (1234)","reason":"Expired","code":410})j";
constexpr const char* kTooMany =
    R"j({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Too many requests, please try again later.","reason":"TooManyRequests","details":{"retryAfterSeconds":7},"code":429})j";
constexpr const char* kUnauthorized =
    R"j({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401})j";
constexpr const char* kForbidden =
    R"j({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"configmaps \"cm\" is forbidden: User \"agent\" cannot update resource \"configmaps\" in API group \"\" in the namespace \"ns\"","reason":"Forbidden","details":{"name":"cm","kind":"configmaps"},"code":403})j";
constexpr const char* kTooLarge =
    R"j({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Timeout: Too large resource version: 99999, current: 1234","reason":"Timeout","details":{"causes":[{"reason":"ResourceVersionTooLarge","message":"Too large resource version"}],"retryAfterSeconds":1},"code":504})j";

TEST(ErrorFromResponse, MapsRealStatusBodies) {
  const struct {
    int status;
    const char* body;
    Code code;
    const char* reason;
  } cases[] = {
      {404, kNotFound, Code::kNotFound, "NotFound"},
      {409, kAlreadyExists, Code::kAlreadyExists, "AlreadyExists"},
      {409, kConflict, Code::kConflict, "Conflict"},
      {409, kApplyConflict, Code::kConflict, "Conflict"},
      {410, kExpired, Code::kGone, "Expired"},
      {422, kInvalid, Code::kInvalidArgument, "Invalid"},
      {429, kTooMany, Code::kResourceExhausted, "TooManyRequests"},
      {401, kUnauthorized, Code::kUnauthenticated, "Unauthorized"},
      {403, kForbidden, Code::kPermissionDenied, "Forbidden"},
      {504, kTooLarge, Code::kGone, "Timeout"},
      {500, R"j({"kind":"Status","reason":"InternalError","code":500})j", Code::kUnavailable,
       "InternalError"},
      {503, R"j({"kind":"Status","reason":"ServiceUnavailable","code":503})j", Code::kUnavailable,
       "ServiceUnavailable"},
      {400, R"j({"kind":"Status","reason":"BadRequest","code":400})j", Code::kInvalidArgument,
       "BadRequest"},
      {415, R"j({"kind":"Status","reason":"UnsupportedMediaType","code":415})j",
       Code::kInvalidArgument, "UnsupportedMediaType"},
  };
  for (const auto& c : cases) {
    const KubeError e =
        error_from_response(answer(c.status, c.body), "update configmaps ns/cm", kNow);
    EXPECT_EQ(e.code(), c.code) << c.body;
    EXPECT_EQ(e.http_status(), c.status);
    EXPECT_EQ(e.reason(), c.reason);
  }
}

TEST(ErrorFromResponse, MessageSaysWhatWasDoneAndWhy) {
  const KubeError e = error_from_response(answer(404, kNotFound), "get configmaps ns/cm", kNow);
  EXPECT_STREQ(
      e.what(),
      "get configmaps ns/cm: PUT https://10.0.0.1:6443/api/v1/namespaces/ns/configmaps/cm: "
      "HTTP 404 Not Found: configmaps \"cm\" not found");
}

TEST(ErrorFromResponse, InvalidCarriesFieldCausesWithoutRepeatingThem) {
  const KubeError full = error_from_response(answer(422, kInvalid), "create", kNow);
  ASSERT_EQ(full.causes().size(), 1u);
  EXPECT_EQ(full.causes()[0],
            (StatusCause{"FieldValueInvalid",
                         "Invalid value: \"a b\": a valid config key must consist of alphanumeric "
                         "characters, '-', '_' or '.'",
                         "data[a b]"}));
  // The server's message already names the cause: not repeated.
  EXPECT_EQ(std::string(full.what()).find("data[a b]: Invalid value"),
            std::string(full.what()).rfind("data[a b]: Invalid value"));

  const KubeError terse = error_from_response(answer(422, kInvalidTerse), "create", kNow);
  EXPECT_EQ(terse.causes().size(), 2u);
  EXPECT_NE(std::string(terse.what())
                .find("is invalid; spec.images[0].name: Required value; "
                      "spec.prune.policy: Unsupported value: \"Sometimes\""),
            std::string::npos)
      << terse.what();
}

TEST(ErrorFromResponse, RetryAfterFromHeaderOrDetails) {
  const KubeError details = error_from_response(answer(429, kTooMany), "list", kNow);
  EXPECT_EQ(details.retry_after(), seconds(7));
  const KubeError header =
      error_from_response(answer(429, kTooMany, {{"Retry-After", "3"}}), "list", kNow);
  EXPECT_EQ(header.retry_after(), seconds(3));  // the header wins
  const KubeError date = error_from_response(
      answer(503, "", {{"Retry-After", "Tue, 14 Nov 2023 22:13:25 GMT"}}), "list", kNow);
  EXPECT_EQ(date.retry_after(), seconds(5));
  EXPECT_EQ(date.code(), Code::kUnavailable);
  EXPECT_EQ(error_from_response(answer(503, ""), "list", kNow).retry_after(), std::nullopt);
}

TEST(ErrorFromResponse, NonStatusBodiesStillMap) {
  const KubeError e = error_from_response(answer(502, "<html>\n<body>Bad   gateway</body></html>"),
                                          "get configmaps ns/cm", kNow);
  EXPECT_EQ(e.code(), Code::kUnavailable);
  EXPECT_EQ(e.reason(), "");
  EXPECT_NE(std::string(e.what()).find("HTTP 502 Bad Gateway: <html> <body>Bad gateway</body>"),
            std::string::npos)
      << e.what();
  const KubeError binary = error_from_response(answer(404, std::string("\x01\x02", 2)), "x", kNow);
  EXPECT_EQ(binary.code(), Code::kNotFound);
  EXPECT_EQ(std::string(binary.what()).find('\x01'), std::string::npos);
}

TEST(WatchStatus, DetectsExpiredAndTooLarge) {
  EXPECT_TRUE(is_expired_status(json::parse(kExpired)));
  EXPECT_TRUE(is_expired_status(json::parse(R"j({"kind":"Status","reason":"Gone"})j")));
  EXPECT_TRUE(is_expired_status(json::parse(R"j({"kind":"Status","code":410})j")));
  EXPECT_FALSE(
      is_expired_status(json::parse(R"j({"kind":"Status","code":500,"reason":"InternalError"})j")));
  EXPECT_FALSE(is_expired_status(json::parse(R"j({"kind":"ConfigMap","code":410})j")));
  EXPECT_FALSE(is_expired_status(json::parse("[]")));

  const auto too_large = parse_status(json::parse(kTooLarge));
  ASSERT_TRUE(too_large);
  EXPECT_TRUE(is_too_large_resource_version(*too_large));
  EXPECT_TRUE(is_too_large_resource_version(
      *parse_status(json::parse(R"j({"kind":"Status","message":"Too large resource version"})j"))));
  EXPECT_FALSE(is_too_large_resource_version(*parse_status(json::parse(kExpired))));
}

TEST(WatchStatus, ErrorFromStatusUsesTheCodeItCarries) {
  const auto s = parse_status(json::parse(kExpired));
  ASSERT_TRUE(s);
  const KubeError e = error_from_status(*s, "watch configmaps in ns");
  EXPECT_EQ(e.code(), Code::kGone);
  EXPECT_STREQ(e.what(), "watch configmaps in ns: 410 Expired: too old resource version: 5 (1234)");
  const KubeError no_code = error_from_status(
      *parse_status(json::parse(R"j({"kind":"Status","reason":"Expired"})j")), "w");
  EXPECT_EQ(no_code.code(), Code::kGone);
  const KubeError unknown =
      error_from_status(*parse_status(json::parse(R"j({"kind":"Status","message":"boom"})j")), "w");
  EXPECT_EQ(unknown.code(), Code::kInternal);
}

}  // namespace
}  // namespace stowage::kube
