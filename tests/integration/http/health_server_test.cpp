// HealthServer probed by http::Client and raw sockets over loopback: the three endpoints, readiness
// following its callback, a failing callback answered with 500, the real port reported for
// "127.0.0.1:0", the port released on stop(), oversized and malformed requests, and a client that
// sends nothing not holding up the others.
#include "http/health_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>

#include "base/error.h"
#include "http/client.h"
#include "test_server.h"

namespace stowage::http {
namespace {

using namespace std::chrono_literals;

class HealthServerTest : public ::testing::Test {
 protected:
  Response get(std::uint16_t port, std::string_view path, std::string method = "GET") {
    Request r;
    r.method = std::move(method);
    r.url = "http://127.0.0.1:" + std::to_string(port) + std::string(path);
    r.timeout = 10s;
    return client_.send(r);
  }

  static ClientOptions no_proxy() {
    ClientOptions o;
    o.proxy = "";
    return o;
  }

  // Connects to 127.0.0.1:port; the caller closes the socket.
  static int connect_to(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    return fd;
  }

  // Sends raw bytes on a new connection and returns everything the server answers until it closes.
  static std::string exchange(std::uint16_t port, const std::string& request) {
    const int fd = connect_to(port);
    EXPECT_EQ(::send(fd, request.data(), request.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(request.size()));
    ::shutdown(fd, SHUT_WR);
    std::string answer;
    char buffer[4096];
    for (ssize_t n; (n = ::recv(fd, buffer, sizeof(buffer), 0)) > 0;) {
      answer.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return answer;
  }

  Client client_{no_proxy()};
};

TEST_F(HealthServerTest, ServesProbesAndMetricsOnTheRealPort) {
  HealthServer server("127.0.0.1:0", nullptr, [] { return std::string("stowage_up 1\n"); });
  EXPECT_EQ(server.port(), 0);
  server.start();
  const std::uint16_t port = server.port();
  ASSERT_NE(port, 0);

  Response r = get(port, "/healthz");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ok\n");

  r = get(port, "/readyz");
  EXPECT_EQ(r.status, 200);

  r = get(port, "/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "stowage_up 1\n");
  EXPECT_EQ(r.headers.get("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");

  EXPECT_EQ(get(port, "/nothing").status, 404);
  EXPECT_EQ(get(port, "/healthz", "POST").status, 405);
}

TEST_F(HealthServerTest, ReadinessFollowsTheCallback) {
  std::atomic<bool> ready{false};
  HealthServer server(
      "127.0.0.1:0",
      [&] {
        return Readiness{ready.load(), "informers not synced"};
      },
      nullptr);
  server.start();
  Response r = get(server.port(), "/readyz");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body, "not ready: informers not synced\n");
  EXPECT_EQ(get(server.port(), "/healthz").status, 200);  // alive while not ready
  ready = true;
  EXPECT_EQ(get(server.port(), "/readyz").status, 200);
}

TEST_F(HealthServerTest, AFailingCallbackIsA500AndTheServerCarriesOn) {
  HealthServer server(
      "127.0.0.1:0", [] { return Readiness{}; },
      []() -> std::string { throw std::runtime_error("registry of metrics broken"); });
  server.start();
  const Response r = get(server.port(), "/metrics");
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.body.find("broken"), std::string::npos);  // internals stay in the log
  EXPECT_EQ(get(server.port(), "/healthz").status, 200);
}

TEST_F(HealthServerTest, StopReleasesThePortAndStartCanFollow) {
  HealthServer server("127.0.0.1:0", nullptr, nullptr);
  server.start();
  const std::uint16_t port = server.port();
  EXPECT_EQ(get(port, "/healthz").status, 200);
  server.stop();
  EXPECT_EQ(server.port(), 0);
  try {
    get(port, "/healthz");
    ADD_FAILURE() << "still served after stop()";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kUnavailable);
  }
  server.stop();  // idempotent
  server.start();
  EXPECT_EQ(get(server.port(), "/healthz").status, 200);
}

TEST_F(HealthServerTest, TwoServersGetTheirOwnPorts) {
  HealthServer a("127.0.0.1:0", nullptr, [] { return std::string("a\n"); });
  HealthServer b("127.0.0.1:0", nullptr, [] { return std::string("b\n"); });
  a.start();
  b.start();
  EXPECT_NE(a.port(), b.port());
  EXPECT_EQ(get(a.port(), "/metrics").body, "a\n");
  EXPECT_EQ(get(b.port(), "/metrics").body, "b\n");
}

TEST_F(HealthServerTest, AFixedPortInUseIsUnavailable) {
  // Hold a listening socket on a port, then ask the server for exactly that port.
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(addr);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length), 0);
  const std::string address = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  HealthServer server(address, nullptr, nullptr);
  try {
    server.start();
    ADD_FAILURE() << "listened on a port already in use";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kUnavailable);
    EXPECT_NE(std::string(e.what()).find(address), std::string::npos) << e.what();
  }
  ::close(fd);
}

TEST_F(HealthServerTest, AnswersOneRequestPerConnectionAndIgnoresTheQuery) {
  HealthServer server("127.0.0.1:0", nullptr, nullptr);
  server.start();
  const std::string answer =
      exchange(server.port(), "GET /healthz?verbose=1 HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 200 OK\r\n")) << answer;
  EXPECT_NE(answer.find("\r\nContent-Length: 3\r\n"), std::string::npos) << answer;
  EXPECT_NE(answer.find("\r\nConnection: close\r\n"), std::string::npos) << answer;
  EXPECT_TRUE(answer.ends_with("\r\n\r\nok\n")) << answer;
}

TEST_F(HealthServerTest, MalformedAndOversizedRequestsAreRefused) {
  HealthServer server("127.0.0.1:0", nullptr, nullptr);
  server.start();
  EXPECT_TRUE(exchange(server.port(), "hello\r\n\r\n").starts_with("HTTP/1.1 400 "));
  EXPECT_TRUE(
      exchange(server.port(), "HEAD /healthz HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405 "));
  const std::string huge =
      "GET /healthz HTTP/1.1\r\nX-Filler: " + std::string(std::size_t{64} * 1024, 'a');
  EXPECT_TRUE(exchange(server.port(), huge).starts_with("HTTP/1.1 431 "));
  EXPECT_EQ(get(server.port(), "/healthz").status, 200);
}

TEST_F(HealthServerTest, AClientThatSendsNothingDoesNotHoldUpOthers) {
  HealthServer server("127.0.0.1:0", nullptr, nullptr);
  server.start();
  const int idle = connect_to(server.port());
  const int partial = connect_to(server.port());
  ASSERT_EQ(::send(partial, "GET /hea", 8, MSG_NOSIGNAL), 8);
  EXPECT_EQ(get(server.port(), "/healthz").status, 200);
  ::close(partial);
  ::close(idle);
}

TEST_F(HealthServerTest, AMalformedAddressIsInvalidArgument) {
  HealthServer server("localhost", nullptr, nullptr);
  try {
    server.start();
    ADD_FAILURE() << "started on a malformed address";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalidArgument);
  }
}

}  // namespace
}  // namespace stowage::http
