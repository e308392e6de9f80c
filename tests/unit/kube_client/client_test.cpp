#include "kube/client.h"

#include <gtest/gtest.h>

#include "base/error.h"
#include "fakes.h"

namespace stowage::kube {
namespace {

using nlohmann::json;
using std::chrono::seconds;
using testing::Answer;
using testing::FakeTransport;
using testing::SteppingClock;
using testing::TempDir;
using testing::write_file;

const GroupVersionResource kConfigMaps{"", "v1", "configmaps"};
const GroupVersionResource kNodeCaches{"stowage.io", "v1alpha1", "nodecaches"};
const ResourceRef kCm{kConfigMaps, "ns", "cm", ""};

constexpr const char* kUnauthorized =
    R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401})";
constexpr const char* kTooMany =
    R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Too many requests","reason":"TooManyRequests","code":429})";

RestConfig config_with_token(std::string token = "t0") {
  RestConfig rc;
  rc.server = "https://k8s.test:6443";
  rc.tls.ca_pem = "CA";
  rc.token_source = std::make_shared<StaticTokenSource>(std::move(token));
  rc.qps = 0;  // unlimited unless a test says otherwise
  return rc;
}

std::string cm_json(const std::string& name, const std::string& rv = "1") {
  return json({{"apiVersion", "v1"},
               {"kind", "ConfigMap"},
               {"metadata", {{"name", name}, {"namespace", "ns"}, {"resourceVersion", rv}}}})
      .dump();
}

KubeError kube_error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const KubeError& e) {
    return e;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a KubeError: " << e.what();
  }
  ADD_FAILURE() << "no error";
  return KubeError(Code::kInternal, "", 0, "", {}, std::nullopt);
}

TEST(Client, GetSendsTheRequestAndParsesTheObject) {
  FakeTransport transport;
  SteppingClock clock;
  RestConfig rc = config_with_token("secret-token");
  rc.user_agent = "stowage-operator/0.1";
  Client client(rc, transport, clock);
  transport.push(200, cm_json("cm"));
  const json obj = client.get(kCm);
  EXPECT_EQ(obj["metadata"]["name"], "cm");
  const auto reqs = transport.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].method, "GET");
  EXPECT_EQ(reqs[0].url, "https://k8s.test:6443/api/v1/namespaces/ns/configmaps/cm");
  EXPECT_EQ(reqs[0].headers.get("Authorization"), "Bearer secret-token");
  EXPECT_EQ(reqs[0].headers.get("Accept"), "application/json");
  EXPECT_EQ(reqs[0].headers.get("User-Agent"), "stowage-operator/0.1");
  EXPECT_EQ(reqs[0].tls.ca_pem, "CA");
  EXPECT_EQ(reqs[0].timeout, std::chrono::milliseconds(60'000));
}

TEST(Client, NotFoundIsAnErrorOrAnEmptyOptional) {
  FakeTransport transport;
  SteppingClock clock;
  Client client(config_with_token(), transport, clock);
  const std::string not_found =
      R"({"kind":"Status","apiVersion":"v1","status":"Failure","message":"configmaps \"cm\" not found","reason":"NotFound","code":404})";
  transport.push(404, not_found);
  const KubeError e = kube_error_of([&] { client.get(kCm); });
  EXPECT_EQ(e.code(), Code::kNotFound);
  EXPECT_TRUE(std::string(e.what()).starts_with("get configmaps ns/cm: GET https://k8s.test:6443"));
  EXPECT_EQ(std::string(e.what()).find("t0"), std::string::npos);
  transport.push(404, not_found);
  EXPECT_EQ(client.try_get(kCm), std::nullopt);
}

TEST(Client, Unauthorized401RereadsTheTokenFileAndRetriesOnce) {
  TempDir dir;
  write_file(dir / "token", "old");
  FakeClock clock;
  RestConfig rc = config_with_token();
  rc.token_source = std::make_shared<FileTokenSource>(dir / "token", clock);
  FakeTransport transport;
  Client client(rc, transport, clock);

  write_file(dir / "token", "rotated");  // rotated before the minute is up
  transport.push(401, kUnauthorized);
  transport.push(200, cm_json("cm"));
  EXPECT_EQ(client.get(kCm)["metadata"]["name"], "cm");
  auto reqs = transport.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].headers.get("Authorization"), "Bearer old");
  EXPECT_EQ(reqs[1].headers.get("Authorization"), "Bearer rotated");

  // Only once: a second 401 is the answer.
  transport.push(401, kUnauthorized);
  transport.push(401, kUnauthorized);
  transport.push(200, cm_json("cm"));
  EXPECT_EQ(kube_error_of([&] { client.get(kCm); }).code(), Code::kUnauthenticated);
  EXPECT_EQ(transport.requests().size(), 4u);
  EXPECT_EQ(transport.remaining(), 1u);
}

TEST(Client, Unauthorized401RerunsTheExecPluginWithItsCertificate) {
  TempDir dir;
  write_file(dir / "plugin.sh",
             "#!/bin/sh\n"
             "echo run >> \"" +
                 (dir / "count").string() +
                 "\"\n"
                 "N=$(wc -l < \"" +
                 (dir / "count").string() +
                 "\" | tr -d ' ')\n"
                 "echo '{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\","
                 "\"kind\":\"ExecCredential\",\"status\":{\"clientCertificateData\":\"CERT'$N'\","
                 "\"clientKeyData\":\"KEY'$N'\"}}'\n",
             true);
  ExecConfig exec;
  exec.api_version = kExecApiV1Beta1;
  exec.command = (dir / "plugin.sh").string();
  SteppingClock clock;
  RestConfig rc = config_with_token();
  rc.token_source = std::make_shared<ExecTokenSource>(exec, std::nullopt, clock);
  FakeTransport transport;
  Client client(rc, transport, clock);
  transport.push(401, kUnauthorized);
  transport.push(200, cm_json("cm"));
  client.get(kCm);
  const auto reqs = transport.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_FALSE(reqs[0].headers.contains("Authorization"));
  EXPECT_EQ(reqs[0].tls.client_cert_pem, "CERT1");
  EXPECT_EQ(reqs[0].tls.client_key_pem, "KEY1");
  EXPECT_EQ(reqs[1].tls.client_cert_pem, "CERT2");
  EXPECT_EQ(reqs[1].tls.client_key_pem, "KEY2");
}

TEST(Client, RetriesTooManyRequestsAfterRetryAfter) {
  FakeTransport transport;
  SteppingClock clock;
  Client client(config_with_token(), transport, clock);
  transport.push(429, kTooMany, {{"Retry-After", "2"}});
  transport.push(503, "", {{"Retry-After", "1"}});
  transport.push(200, cm_json("cm"));
  EXPECT_EQ(client.get(kCm)["metadata"]["name"], "cm");
  EXPECT_EQ(transport.requests().size(), 3u);
  EXPECT_EQ(clock.sleeps(), (std::vector<Clock::Duration>{seconds(2), seconds(1)}));
}

TEST(Client, RetryAfterIsCappedAndRetriesAreBounded) {
  FakeTransport transport;
  SteppingClock clock;
  Client client(config_with_token(), transport, clock,
                {.max_retries = 2, .max_retry_wait = seconds(5)});
  for (int i = 0; i < 4; ++i) transport.push(429, kTooMany, {{"Retry-After", "3600"}});
  const KubeError e = kube_error_of([&] { client.get(kCm); });
  EXPECT_EQ(e.code(), Code::kResourceExhausted);
  EXPECT_EQ(e.retry_after(), seconds(3600));
  EXPECT_EQ(transport.requests().size(), 3u);  // the first try and two retries
  EXPECT_EQ(clock.sleeps(), (std::vector<Clock::Duration>{seconds(5), seconds(5)}));
}

TEST(Client, NeverRetriesOtherAnswers) {
  const struct {
    int status;
    http::Headers headers;
    Code code;
  } cases[] = {
      {429, {}, Code::kResourceExhausted},  // no Retry-After
      {503, {}, Code::kUnavailable},
      {409, {{"Retry-After", "1"}}, Code::kConflict},
      {422, {{"Retry-After", "1"}}, Code::kInvalidArgument},
      {403, {{"Retry-After", "1"}}, Code::kPermissionDenied},
      {400, {{"Retry-After", "1"}}, Code::kInvalidArgument},
  };
  for (const auto& c : cases) {
    FakeTransport transport;
    SteppingClock clock;
    Client client(config_with_token(), transport, clock);
    transport.push(c.status, "", c.headers);
    transport.push(200, cm_json("cm"));
    EXPECT_EQ(kube_error_of([&] { client.get(kCm); }).code(), c.code) << c.status;
    EXPECT_EQ(transport.requests().size(), 1u) << c.status;
    EXPECT_TRUE(clock.sleeps().empty());
  }
}

TEST(Client, RateLimitsRequestsOnTheClock) {
  FakeTransport transport;
  SteppingClock clock;
  RestConfig rc = config_with_token();
  rc.qps = 2;
  rc.burst = 2;
  Client client(rc, transport, clock);
  for (int i = 0; i < 4; ++i) transport.push(200, cm_json("cm"));
  for (int i = 0; i < 4; ++i) client.get(kCm);
  EXPECT_EQ(clock.sleeps(), (std::vector<Clock::Duration>{std::chrono::milliseconds(500),
                                                          std::chrono::milliseconds(500)}));
}

TEST(Client, ApplySendsApplyPatchWithManagerAndForce) {
  FakeTransport transport;
  SteppingClock clock;
  Client client(config_with_token(), transport, clock);
  const json intent = {{"apiVersion", "stowage.io/v1alpha1"},
                       {"kind", "NodeCache"},
                       {"metadata", {{"name", "n1"}}},
                       {"status", {{"images", json::array({{{"name", "a"}}})}}}};
  transport.push(200, intent.dump());
  client.apply({kNodeCaches, "", "n1", "status"}, intent,
               {.field_manager = "stowage-agent", .force = true});
  const auto r = transport.requests().at(0);
  EXPECT_EQ(r.method, "PATCH");
  EXPECT_EQ(r.url,
            "https://k8s.test:6443/apis/stowage.io/v1alpha1/nodecaches/n1/status?fieldManager="
            "stowage-agent&force=true");
  EXPECT_EQ(r.headers.get("Content-Type"), "application/apply-patch+yaml");
  EXPECT_EQ(json::parse(std::get<std::string>(r.body)), intent);
}

TEST(Client, WritesUseTheRightVerbs) {
  FakeTransport transport;
  SteppingClock clock;
  Client client(config_with_token(), transport, clock);
  const json cm = json::parse(cm_json("cm", "7"));
  for (int i = 0; i < 5; ++i) transport.push(200, cm_json("cm"));
  client.create({kConfigMaps, "ns", "", ""}, cm);
  client.update(kCm, cm);
  client.update_status(ResourceRef{kNodeCaches, "", "n1", ""},
                       {{"metadata", {{"name", "n1"}, {"resourceVersion", "3"}}}});
  client.patch(kCm, PatchType::kMerge, {{"data", {{"a", "b"}}}});
  client.delete_(kCm, {.uid = "u1", .propagation_policy = "Background"});
  const auto reqs = transport.requests();
  ASSERT_EQ(reqs.size(), 5u);
  EXPECT_EQ(reqs[0].method + " " + reqs[0].url,
            "POST https://k8s.test:6443/api/v1/namespaces/ns/configmaps");
  EXPECT_EQ(reqs[1].method + " " + reqs[1].url,
            "PUT https://k8s.test:6443/api/v1/namespaces/ns/configmaps/cm");
  EXPECT_EQ(reqs[2].method + " " + reqs[2].url,
            "PUT https://k8s.test:6443/apis/stowage.io/v1alpha1/nodecaches/n1/status");
  EXPECT_EQ(reqs[3].method + " " + reqs[3].headers.get("Content-Type").value_or(""),
            "PATCH application/merge-patch+json");
  EXPECT_EQ(reqs[4].method, "DELETE");
  EXPECT_EQ(json::parse(std::get<std::string>(reqs[4].body))["preconditions"],
            json({{"uid", "u1"}}));
}

TEST(Client, ListAllFollowsContinueTokens) {
  FakeTransport transport;
  SteppingClock clock;
  Client client(config_with_token(), transport, clock);
  transport.push(200, R"({"kind":"ConfigMapList","apiVersion":"v1","metadata":
      {"resourceVersion":"100","continue":"tok1"},"items":[{"metadata":{"name":"a"}},
      {"metadata":{"name":"b"}}]})");
  transport.push(200, R"({"kind":"ConfigMapList","apiVersion":"v1","metadata":
      {"resourceVersion":"100","continue":"tok/2"},"items":[{"metadata":{"name":"c"}}]})");
  transport.push(200, R"({"kind":"ConfigMapList","apiVersion":"v1","metadata":
      {"resourceVersion":"100"},"items":[]})");
  const json all = client.list_all({kConfigMaps, "ns", "", ""},
                                   {.label_selector = "app=x", .resource_version = "0"}, 2);
  ASSERT_EQ(all["items"].size(), 3u);
  EXPECT_EQ(all["items"][2]["metadata"]["name"], "c");
  EXPECT_EQ(all["metadata"], json({{"resourceVersion", "100"}}));
  EXPECT_EQ(all["kind"], "ConfigMapList");
  const auto reqs = transport.requests();
  ASSERT_EQ(reqs.size(), 3u);
  const std::string base = "https://k8s.test:6443/api/v1/namespaces/ns/configmaps";
  EXPECT_EQ(reqs[0].url, base + "?labelSelector=app%3Dx&limit=2&resourceVersion=0");
  EXPECT_EQ(reqs[1].url, base + "?labelSelector=app%3Dx&limit=2&continue=tok1");
  EXPECT_EQ(reqs[2].url, base + "?labelSelector=app%3Dx&limit=2&continue=tok%2F2");
}

TEST(Client, ListPagesStopsOnARepeatedToken) {
  FakeTransport transport;
  SteppingClock clock;
  Client client(config_with_token(), transport, clock);
  for (int i = 0; i < 2; ++i) {
    transport.push(200, R"({"metadata":{"continue":"same"},"items":[]})");
  }
  EXPECT_THROW(client.list_all({kConfigMaps, "", "", ""}), Error);
}

TEST(Client, WatchStreamsChunksWithTimeouts) {
  FakeTransport transport;
  SteppingClock clock;
  Client client(config_with_token(), transport, clock);
  transport.push(Answer{
      200, {}, "", {"{\"type\":\"ADDED\",", "\"object\":{}}\n{\"type\"", ":\"BOOKMARK\"}\n"}});
  std::string got;
  client.watch({kConfigMaps, "", "", ""},
               {.resource_version = "5", .allow_watch_bookmarks = true, .metadata_only = true},
               [&](std::string_view chunk) {
                 got += chunk;
                 return true;
               });
  EXPECT_EQ(got, "{\"type\":\"ADDED\",\"object\":{}}\n{\"type\":\"BOOKMARK\"}\n");
  const auto r = transport.requests().at(0);
  EXPECT_EQ(r.url,
            "https://k8s.test:6443/api/v1/configmaps?watch=1&resourceVersion=5&"
            "allowWatchBookmarks=true&timeoutSeconds=290");
  EXPECT_EQ(r.headers.get("Accept"), std::string(kAcceptMetadata));
  EXPECT_EQ(r.low_speed_limit, 1u);
  EXPECT_EQ(r.low_speed_time, seconds(300));
  EXPECT_EQ(r.timeout, seconds(320));
}

TEST(Client, WatchThrowsTheStatusOfAFailedStartWithoutDeliveringIt) {
  FakeTransport transport;
  SteppingClock clock;
  Client client(config_with_token(), transport, clock);
  transport.push(Answer{
      403,
      {},
      R"({"kind":"Status","apiVersion":"v1","status":"Failure","message":"nodes is forbidden","reason":"Forbidden","code":403})",
      {"must not be delivered"}});
  bool called = false;
  const KubeError e = kube_error_of([&] {
    client.watch({{"", "v1", "nodes"}, "", "", ""}, {.timeout_seconds = 60}, [&](std::string_view) {
      called = true;
      return true;
    });
  });
  EXPECT_EQ(e.code(), Code::kPermissionDenied);
  EXPECT_EQ(e.reason(), "Forbidden");
  EXPECT_FALSE(called);
  EXPECT_EQ(transport.requests().at(0).low_speed_time, seconds(70));
}

TEST(Client, WatchEndsWhenTheCallbackSaysSo) {
  FakeTransport transport;
  SteppingClock clock;
  Client client(config_with_token(), transport, clock);
  transport.push(Answer{200, {}, "", {"a", "b", "c"}});
  int chunks = 0;
  client.watch({kConfigMaps, "ns", "", ""}, {}, [&](std::string_view) { return ++chunks < 2; });
  EXPECT_EQ(chunks, 2);
}

TEST(Client, ImpersonationHeaders) {
  FakeTransport transport;
  SteppingClock clock;
  RestConfig rc = config_with_token();
  rc.impersonate = {"jane", "42", {"a", "b"}, {{"scopes.example/x y", {"v1", "v2"}}}};
  Client client(rc, transport, clock);
  transport.push(200, "{}");
  client.get(kCm);
  const http::Headers h = transport.requests().at(0).headers;
  EXPECT_EQ(h.get("Impersonate-User"), "jane");
  EXPECT_EQ(h.get("Impersonate-Uid"), "42");
  EXPECT_EQ(h.get_all("Impersonate-Group"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(h.get_all("Impersonate-Extra-scopes.example%2Fx%20y"),
            (std::vector<std::string>{"v1", "v2"}));
}

TEST(Client, RefusesConfigsTheTransportCannotHonour) {
  FakeTransport transport;
  SteppingClock clock;
  RestConfig rc = config_with_token();
  rc.tls_server_name = "kubernetes.default";
  EXPECT_THROW(Client(rc, transport, clock), Error);
  rc.tls_server_name = "k8s.test";  // the same as the host: nothing to do
  EXPECT_NO_THROW(Client(rc, transport, clock));
  rc.server = "";
  EXPECT_THROW(Client(rc, transport, clock), Error);
}

TEST(Client, StopCancelsWaits) {
  FakeTransport transport;
  SteppingClock clock;
  std::stop_source stop;
  stop.request_stop();
  Client client(config_with_token(), transport, clock, {.stop = stop.get_token()});
  transport.push(429, kTooMany, {{"Retry-After", "1"}});
  EXPECT_THROW(client.get(kCm), Error);
  // A stopped watch returns quietly.
  client.watch({kConfigMaps, "", "", ""}, {}, [](std::string_view) { return true; });
}

}  // namespace
}  // namespace stowage::kube
