// http::Client against a real socket peer on 127.0.0.1: requests and responses on the wire,
// streaming both ways, the failures a registry or apiserver produces (reset mid-body, stall,
// refused connection), connection reuse, concurrency, redirects, cancellation, and that error
// messages name the request but never its credentials.
#include "http/client.h"

#include <gtest/gtest.h>

#include <future>
#include <map>
#include <thread>

#include "base/error.h"
#include "http/errors.h"
#include "test_server.h"

namespace stowage::http {
namespace {

using namespace std::chrono_literals;
using testing::Connection;
using testing::make_response;
using testing::RawRequest;
using testing::TestServer;

constexpr auto kDeadline = 10s;
constexpr std::size_t kChunkPiece = 64 << 10;
constexpr int kThreads = 8;
constexpr int kRequestsPerThread = 25;

ClientOptions no_proxy() {
  ClientOptions options;
  options.proxy = "";  // hermetic: ignore any proxy in the environment
  return options;
}

Request get(std::string url) {
  Request r;
  r.url = std::move(url);
  r.timeout = 20s;
  return r;
}

// Records every request the server saw, for assertions after the call.
struct Recorder {
  std::mutex mutex;  // guards requests
  std::vector<RawRequest> requests;
  void add(const RawRequest& r) {
    std::lock_guard lock(mutex);
    requests.push_back(r);
  }
  RawRequest last() {
    std::lock_guard lock(mutex);
    return requests.back();
  }
};

std::string pattern(std::size_t n) {
  std::string out(n, '\0');
  for (std::size_t i = 0; i < n; ++i) {
    out[i] = static_cast<char>('a' + (i * 7 + i / 251) % 26);
  }
  return out;
}

template <typename F>
Error expect_error(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "expected a stowage::Error";
  return Error(Code::kInternal, "no error");
}

TEST(Client, ReturnsStatusHeadersAndBody) {
  TestServer server([](const RawRequest&, Connection& c) {
    c.write(make_response(200, "hello", {{"X-Multi", "a"}, {"x-multi", "b"}, {"ETag", "\"1\""}}));
  });
  Client client(no_proxy());
  const Response r = client.send(get(server.url("/v2/")));
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.body, "hello");
  EXPECT_EQ(r.headers.get("etag"), "\"1\"");
  EXPECT_EQ(r.headers.get_all("X-MULTI"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(r.headers.get("content-length"), "5");
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.url, server.url("/v2/"));
  EXPECT_FALSE(r.aborted);
}

TEST(Client, ReturnsNonSuccessWithoutThrowing) {
  TestServer server([](const RawRequest&, Connection& c) {
    c.write(make_response(404, R"({"errors":[{"code":"MANIFEST_UNKNOWN"}]})",
                          {{"Content-Type", "application/json"}}));
  });
  Client client(no_proxy());
  const Response r = client.send(get(server.url("/v2/x/manifests/1")));
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body, R"({"errors":[{"code":"MANIFEST_UNKNOWN"}]})");
  const Error e = expect_error([&] { raise_for_status(r, "resolving x:1"); });
  EXPECT_EQ(e.code(), Code::kNotFound);
  EXPECT_NE(std::string(e.what()).find("resolving x:1: GET " + server.url("/v2/x/manifests/1") +
                                       ": HTTP 404 Not Found: {\"errors\""),
            std::string::npos)
      << e.what();
}

TEST(Client, SendsMethodHeadersAndBodyAsGiven) {
  Recorder seen;
  TestServer server([&](const RawRequest& r, Connection& c) {
    seen.add(r);
    c.write(make_response(201));
  });
  Client client(no_proxy());
  Request r = get(server.url("/v2/x/blobs/uploads/?digest=sha256%3Aab"));
  r.method = "PUT";
  r.body = std::string("payload");
  r.headers.add("Content-Type", "application/octet-stream");
  r.headers.add("X-Empty", "");
  r.headers.add("X-Twice", "1");
  r.headers.add("X-Twice", "2");
  EXPECT_EQ(client.send(r).status, 201);
  const RawRequest got = seen.last();
  EXPECT_EQ(got.method, "PUT");
  EXPECT_EQ(got.target, "/v2/x/blobs/uploads/?digest=sha256%3Aab");
  EXPECT_EQ(got.body, "payload");
  EXPECT_EQ(got.headers.get("Content-Length"), "7");
  EXPECT_EQ(got.headers.get("Content-Type"), "application/octet-stream");
  EXPECT_EQ(got.headers.get("X-Empty"), "");
  EXPECT_EQ(got.headers.get_all("X-Twice"), (std::vector<std::string>{"1", "2"}));
  EXPECT_EQ(got.headers.get("User-Agent"), "stowage/0.1");
  EXPECT_FALSE(got.headers.contains("Expect"));
}

TEST(Client, AddsNoContentTypeAndHandlesEmptyBodies) {
  Recorder seen;
  TestServer server([&](const RawRequest& r, Connection& c) {
    seen.add(r);
    // A HEAD answer carries the length of the body it does not send.
    c.write(r.method == "HEAD" ? "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"
                               : make_response(200, "x"));
  });
  Client client(no_proxy());

  Request post = get(server.url("/p"));
  post.method = "POST";
  post.body = std::string(R"({"a":1})");
  client.send(post);
  EXPECT_FALSE(seen.last().headers.contains("Content-Type"));
  EXPECT_EQ(seen.last().body, R"({"a":1})");

  post.body = std::string();
  client.send(post);
  EXPECT_EQ(seen.last().method, "POST");
  EXPECT_EQ(seen.last().headers.get("Content-Length"), "0");

  Request del = get(server.url("/d"));
  del.method = "DELETE";
  client.send(del);
  EXPECT_EQ(seen.last().method, "DELETE");
  EXPECT_FALSE(seen.last().headers.contains("Content-Length"));

  Request head = get(server.url("/h"));
  head.method = "HEAD";
  const Response r = client.send(head);
  EXPECT_EQ(seen.last().method, "HEAD");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.headers.get("Content-Length"), "1234");
  EXPECT_EQ(r.body, "");
}

TEST(Client, StreamsARequestBodyFromASource) {
  Recorder seen;
  TestServer server([&](const RawRequest& r, Connection& c) {
    seen.add(r);
    c.write(make_response(202));
  });
  Client client(no_proxy());
  const std::string data = pattern(3 << 20);
  for (const bool known_size : {false, true}) {
    std::size_t offset = 0;
    Request r = get(server.url("/upload"));
    r.method = "PATCH";
    r.body = BodySource{[&](std::span<char> buffer) {
                          const std::size_t n = std::min(buffer.size(), data.size() - offset);
                          std::copy_n(data.data() + offset, n, buffer.data());
                          offset += n;
                          return n;
                        },
                        known_size ? std::optional<std::uint64_t>(data.size()) : std::nullopt};
    EXPECT_EQ(client.send(r).status, 202);
    const RawRequest got = seen.last();
    EXPECT_EQ(got.method, "PATCH");
    EXPECT_EQ(got.chunked, !known_size);
    if (known_size) {
      EXPECT_EQ(got.headers.get("Content-Length"), std::to_string(data.size()));
    }
    EXPECT_TRUE(got.body == data) << "body of " << got.body.size() << " bytes differs";
  }
}

struct SourceFailed : std::runtime_error {
  SourceFailed() : std::runtime_error("disk read failed") {}
};

TEST(Client, ASourceExceptionReachesTheCaller) {
  TestServer server([](const RawRequest&, Connection& c) { c.write(make_response(201)); });
  Client client(no_proxy());
  Request r = get(server.url("/upload"));
  r.method = "PUT";
  r.body = BodySource{[](std::span<char>) -> std::size_t { throw SourceFailed(); }, 100};
  EXPECT_THROW(client.send(r), SourceFailed);
  EXPECT_EQ(client.send(get(server.url("/after"))).status, 201);
}

// Writes body with chunked transfer encoding, in pieces of kChunkPiece.
void write_chunked(Connection& c, const std::string& body) {
  c.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nDocker-Content-Digest: d\r\n\r\n");
  char size[32];
  for (std::size_t at = 0; at < body.size(); at += kChunkPiece) {
    const std::size_t n = std::min(kChunkPiece, body.size() - at);
    std::snprintf(size, sizeof(size), "%zx\r\n", n);
    if (!c.write(size) || !c.write(std::string_view(body).substr(at, n)) || !c.write("\r\n")) {
      return;
    }
  }
  c.write("0\r\n\r\n");
}

TEST(Client, StreamsALargeChunkedBodyToTheSink) {
  const std::string body = pattern(8 << 20);
  TestServer server([&](const RawRequest&, Connection& c) { write_chunked(c, body); });
  Client client(no_proxy());
  std::string received;
  int chunks = 0;
  int heads = 0;
  StreamHandlers handlers;
  handlers.on_head = [&](const Response& head) {
    ++heads;
    EXPECT_EQ(head.status, 200);
    EXPECT_EQ(head.headers.get("docker-content-digest"), "d");
    EXPECT_TRUE(received.empty());
    return BodyAction::kStream;
  };
  handlers.on_body = [&](std::string_view chunk) {
    received += chunk;
    ++chunks;
    return true;
  };
  const Response r = client.stream(get(server.url("/blob")), handlers);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(heads, 1);
  EXPECT_GT(chunks, 1);
  EXPECT_TRUE(received == body) << "received " << received.size() << " bytes";
  EXPECT_TRUE(r.body.empty());
  EXPECT_FALSE(r.aborted);
}

TEST(Client, HeadCallbackRefusesAnErrorBeforeAnyBodyReachesTheSink) {
  TestServer server([](const RawRequest&, Connection& c) {
    c.write(make_response(401, R"({"errors":[{"code":"UNAUTHORIZED"}]})",
                          {{"WWW-Authenticate", R"(Bearer realm="https://auth/token")"}}));
  });
  Client client(no_proxy());
  bool sink_called = false;
  StreamHandlers handlers;
  handlers.on_head = [](const Response& head) {
    return head.ok() ? BodyAction::kStream : BodyAction::kBuffer;
  };
  handlers.on_body = [&](std::string_view) { return sink_called = true; };
  const Response r = client.stream(get(server.url("/blob")), handlers);
  EXPECT_FALSE(sink_called);
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.body, R"({"errors":[{"code":"UNAUTHORIZED"}]})");
  EXPECT_EQ(r.headers.get("www-authenticate"), R"(Bearer realm="https://auth/token")");
  EXPECT_EQ(expect_error([&] { raise_for_status(r, "pulling"); }).code(), Code::kUnauthenticated);
}

TEST(Client, HeadCallbackCanAbortTheTransfer) {
  const std::string body = pattern(1 << 20);
  TestServer server([&](const RawRequest&, Connection& c) { c.write(make_response(500, body)); });
  Client client(no_proxy());
  bool sink_called = false;
  StreamHandlers handlers;
  handlers.on_head = [](const Response&) { return BodyAction::kAbort; };
  handlers.on_body = [&](std::string_view) { return sink_called = true; };
  const Response r = client.stream(get(server.url("/")), handlers);
  EXPECT_TRUE(r.aborted);
  EXPECT_EQ(r.status, 500);
  EXPECT_FALSE(sink_called);
}

TEST(Client, SinkCanStopTheTransferAndTheClientStaysUsable) {
  const std::string body = pattern(4 << 20);
  TestServer server([&](const RawRequest& r, Connection& c) {
    if (r.target == "/small") {
      c.write(make_response(200, "fine"));
    } else {
      write_chunked(c, body);
    }
  });
  Client client(no_proxy());
  std::size_t received = 0;
  StreamHandlers handlers;
  handlers.on_body = [&](std::string_view chunk) {
    received += chunk.size();
    return false;
  };
  const Response r = client.stream(get(server.url("/big")), handlers);
  EXPECT_TRUE(r.aborted);
  EXPECT_GT(received, 0U);
  EXPECT_LT(received, body.size());
  EXPECT_EQ(client.send(get(server.url("/small"))).body, "fine");
}

TEST(Client, AnUnsetSinkDiscardsAndBufferedErrorsAreCapped) {
  const std::string body = pattern(3 << 20);
  TestServer server([&](const RawRequest& r, Connection& c) {
    c.write(make_response(r.target == "/ok" ? 200 : 500, body));
  });
  Client client(no_proxy());
  const Response discarded = client.stream(get(server.url("/ok")), StreamHandlers{});
  EXPECT_EQ(discarded.status, 200);
  EXPECT_FALSE(discarded.aborted);
  EXPECT_TRUE(discarded.body.empty());

  StreamHandlers handlers;
  handlers.on_head = [](const Response&) { return BodyAction::kBuffer; };
  const Response capped = client.stream(get(server.url("/error")), handlers);
  EXPECT_EQ(capped.status, 500);
  EXPECT_TRUE(capped.aborted);
  EXPECT_EQ(capped.body.size(), std::size_t{1} << 20);
  EXPECT_TRUE(body.starts_with(capped.body));
}

struct DiskFull : std::runtime_error {
  DiskFull() : std::runtime_error("no space left") {}
};

TEST(Client, ASinkExceptionReachesTheCallerUnchanged) {
  TestServer server([](const RawRequest&, Connection& c) { c.write(make_response(200, "abc")); });
  Client client(no_proxy());
  StreamHandlers handlers;
  handlers.on_body = [](std::string_view) -> bool { throw DiskFull(); };
  EXPECT_THROW(client.stream(get(server.url("/")), handlers), DiskFull);
  handlers.on_body = [](std::string_view) -> bool {
    throw Error(Code::kDataLoss, "digest mismatch");
  };
  EXPECT_EQ(expect_error([&] { client.stream(get(server.url("/")), handlers); }).code(),
            Code::kDataLoss);
}

TEST(Client, AConnectionResetMidBodyIsUnavailableAndSaysHowFarItGot) {
  TestServer server([](const RawRequest&, Connection& c) {
    c.write("HTTP/1.1 200 OK\r\nContent-Length: 10485760\r\n\r\n");
    c.write(std::string(100 << 10, 'x'));
    c.reset();
  });
  Client client(no_proxy());
  const Error buffered =
      expect_error([&] { client.send(get(server.url("/v2/x/blobs/sha256:ab"))); });
  EXPECT_EQ(buffered.code(), Code::kUnavailable);
  EXPECT_TRUE(buffered.retryable());
  const std::string message = buffered.what();
  EXPECT_NE(message.find("GET " + server.url("/v2/x/blobs/sha256:ab") + ": "), std::string::npos)
      << message;
  EXPECT_NE(message.find("bytes of body"), std::string::npos) << message;

  std::size_t streamed = 0;
  StreamHandlers handlers;
  handlers.on_body = [&](std::string_view chunk) {
    streamed += chunk.size();
    return true;
  };
  EXPECT_EQ(expect_error([&] { client.stream(get(server.url("/b")), handlers); }).code(),
            Code::kUnavailable);
  EXPECT_LE(streamed, std::size_t{100 << 10});
}

TEST(Client, ALowSpeedLimitStopsAStalledTransfer) {
  TestServer server([](const RawRequest&, Connection& c) {
    c.write("HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n0123456789");
    c.stall();
  });
  Client client(no_proxy());
  Request r = get(server.url("/slow"));
  r.timeout = 0ms;
  r.low_speed_limit = 1024;
  r.low_speed_time = 1s;
  const auto start = std::chrono::steady_clock::now();
  const Error e = expect_error([&] { client.send(r); });
  EXPECT_EQ(e.code(), Code::kDeadlineExceeded);
  EXPECT_LT(std::chrono::steady_clock::now() - start, kDeadline);
  EXPECT_NE(std::string(e.what()).find(server.url("/slow")), std::string::npos) << e.what();
}

TEST(Client, TheTotalTimeoutIsDeadlineExceeded) {
  TestServer server([](const RawRequest&, Connection& c) { c.stall(); });
  Client client(no_proxy());
  Request r = get(server.url("/never"));
  r.timeout = 300ms;
  const Error e = expect_error([&] { client.send(r); });
  EXPECT_EQ(e.code(), Code::kDeadlineExceeded);
  EXPECT_TRUE(e.retryable());
}

TEST(Client, ARefusedConnectionIsUnavailable) {
  Client client(no_proxy());
  const std::string url = "http://127.0.0.1:" + std::to_string(testing::free_port()) + "/v2/";
  const Error e = expect_error([&] { client.send(get(url)); });
  EXPECT_EQ(e.code(), Code::kUnavailable);
  EXPECT_NE(std::string(e.what()).find("GET " + url + ": "), std::string::npos) << e.what();
}

TEST(Client, ErrorsNeverCarryCredentials) {
  Client client(no_proxy());
  Request r = get("http://robot:hunter2@127.0.0.1:" + std::to_string(testing::free_port()) +
                  "/token?service=reg&access_token=s3cr3t");
  r.headers.add("Authorization", "Bearer eyJsecret");
  const std::string message = expect_error([&] { client.send(r); }).what();
  for (auto secret : {"hunter2", "robot", "s3cr3t", "eyJsecret"}) {
    EXPECT_EQ(message.find(secret), std::string::npos) << message;
  }
  EXPECT_NE(message.find("service=reg"), std::string::npos) << message;
}

TEST(Client, StopTokenCancelsATransferInFlight) {
  TestServer server([](const RawRequest&, Connection& c) {
    c.write("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nabc");
    c.stall();
  });
  Client client(no_proxy());
  std::stop_source stop;
  Request r = get(server.url("/watch"));
  r.timeout = 0ms;
  r.stop = stop.get_token();
  auto done = std::async(std::launch::async, [&] { client.send(r); });
  ASSERT_TRUE(server.wait_for_requests(1, kDeadline));
  stop.request_stop();
  ASSERT_EQ(done.wait_for(kDeadline), std::future_status::ready);
  const Error e = expect_error([&] { done.get(); });
  EXPECT_EQ(e.code(), Code::kUnavailable);
  EXPECT_NE(std::string(e.what()).find("cancelled"), std::string::npos) << e.what();
}

TEST(Client, ReusesTheConnectionForConsecutiveRequests) {
  TestServer server(
      [](const RawRequest& r, Connection& c) { c.write(make_response(200, r.target)); });
  Client client(no_proxy());
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(client.send(get(server.url("/r" + std::to_string(i)))).body,
              "/r" + std::to_string(i));
  }
  EXPECT_EQ(server.connections_accepted(), 1);
  EXPECT_EQ(client.idle_handles(), 1U);
}

TEST(Client, ConcurrentRequestsEachUseTheirOwnHandle) {
  TestServer server(
      [](const RawRequest& r, Connection& c) { c.write(make_response(200, r.target)); });
  Client client(no_proxy());
  std::atomic<int> good{0};
  {
    std::vector<std::jthread> threads;
    threads.reserve(kThreads);
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kRequestsPerThread; ++i) {
          const std::string path = "/t" + std::to_string(t) + "/" + std::to_string(i);
          const Response r = client.send(get(server.url(path)));
          if (r.status == 200 && r.body == path) {
            ++good;
          }
        }
      });
    }
  }
  EXPECT_EQ(good.load(), kThreads * kRequestsPerThread);
  EXPECT_LE(server.connections_accepted(), kThreads);
  EXPECT_LE(client.idle_handles(), std::size_t{kThreads});
}

TEST(Client, LeavesRedirectsToTheCallerUnlessAsked) {
  TestServer server([](const RawRequest& r, Connection& c) {
    if (r.target == "/a") {
      c.write(make_response(307, "", {{"Location", "/b"}}));
    } else {
      c.write(make_response(200, "at " + r.target));
    }
  });
  Client client(no_proxy());
  Request r = get(server.url("/a"));
  Response first = client.send(r);
  EXPECT_EQ(first.status, 307);
  EXPECT_EQ(first.headers.get("location"), "/b");

  r.follow_redirects = true;
  Response followed = client.send(r);
  EXPECT_EQ(followed.status, 200);
  EXPECT_EQ(followed.body, "at /b");
  EXPECT_EQ(followed.url, server.url("/b"));
  EXPECT_FALSE(followed.headers.contains("Location"));
}

TEST(Client, RedirectLoopsAreBounded) {
  TestServer server([](const RawRequest&, Connection& c) {
    c.write(make_response(302, "", {{"Location", "/again"}}));
  });
  Client client(no_proxy());
  Request r = get(server.url("/again"));
  r.follow_redirects = true;
  r.max_redirects = 3;
  EXPECT_EQ(expect_error([&] { client.send(r); }).code(), Code::kInvalidArgument);
}

TEST(Client, RejectsHeaderInjectionBeforeSendingAnything) {
  TestServer server([](const RawRequest&, Connection& c) { c.write(make_response(200)); });
  Client client(no_proxy());
  Request r = get(server.url("/"));
  r.headers.add("X-Evil", "a\r\nAuthorization: Bearer stolen");
  const Error e = expect_error([&] { client.send(r); });
  EXPECT_EQ(e.code(), Code::kInvalidArgument);
  EXPECT_EQ(std::string(e.what()).find("stolen"), std::string::npos) << e.what();
  Request bad_method = get(server.url("/"));
  bad_method.method = "GET /x HTTP/1.1\r\n";
  EXPECT_EQ(expect_error([&] { client.send(bad_method); }).code(), Code::kInvalidArgument);
  EXPECT_EQ(server.requests_received(), 0);
}

TEST(Client, BufferedBodiesRespectTheLimit) {
  TestServer server([](const RawRequest&, Connection& c) {
    c.write(make_response(200, std::string(5000, 'z')));
  });
  Client client(no_proxy());
  Request r = get(server.url("/big"));
  r.max_body_bytes = 1000;
  const Error e = expect_error([&] { client.send(r); });
  EXPECT_EQ(e.code(), Code::kResourceExhausted);
  r.max_body_bytes = 5000;
  EXPECT_EQ(client.send(r).body.size(), 5000U);
}

TEST(Client, RefusesSchemesOtherThanHttp) {
  Client client(no_proxy());
  EXPECT_EQ(expect_error([&] { client.send(get("file:///etc/passwd")); }).code(),
            Code::kInvalidArgument);
  EXPECT_EQ(expect_error([&] { client.send(get("")); }).code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace stowage::http
