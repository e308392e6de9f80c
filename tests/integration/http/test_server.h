// Test helpers for the http integration tier: a tiny scripted HTTP/1.1 server on POSIX sockets
// (so tests can misbehave on purpose: reset mid-body, stall, stream chunked, send odd headers),
// a free-port picker, a temp dir, and a poll-until-true helper. Not product code.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "http/headers.h"

namespace stowage::http::testing {

// A request as the test server read it (body de-chunked).
struct RawRequest {
  std::string method;
  std::string target;  // path and query
  http::Headers headers;
  std::string body;
  bool chunked = false;
};

class TestServer;

// The server side of one accepted connection, handed to the handler.
class Connection {
 public:
  Connection(TestServer& server, int fd) : server_(server), fd_(fd) {}

  // Writes all bytes; false if the peer is gone.
  bool write(std::string_view bytes);
  // Closes with a TCP RST (SO_LINGER 0): the client sees "connection reset".
  void reset();
  // Closes normally.
  void close();
  bool closed() const { return fd_ < 0; }
  // The socket, for handlers that take the connection over (a CONNECT proxy relaying bytes).
  int fd() const { return fd_; }
  // Blocks until the server is being destroyed: a peer that stalls forever.
  void stall();

 private:
  friend class TestServer;
  TestServer& server_;
  int fd_;
};

// "HTTP/1.1 <status> X\r\nContent-Length: n\r\n<headers>\r\n<body>".
std::string make_response(int status, std::string_view body = "",
                          const std::vector<std::pair<std::string, std::string>>& headers = {});

class TestServer {
 public:
  // handler runs on the connection's own thread, once per request; it writes the response.
  using Handler = std::function<void(const RawRequest&, Connection&)>;

  // kHeadOnly: the handler runs once the request head is read and the body is left unread (a
  // server that answers an upload early); the connection ends after the handler.
  enum class Read { kWholeRequest, kHeadOnly };

  explicit TestServer(Handler handler, Read read = Read::kWholeRequest);
  // Unblocks stalled handlers, closes every connection and joins the threads.
  ~TestServer();
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  std::uint16_t port() const { return port_; }
  // "http://127.0.0.1:<port><path>".
  std::string url(std::string_view path = "/") const;

  int connections_accepted() const { return accepted_.load(); }
  int requests_received() const { return requests_.load(); }
  // Waits until at least n requests arrived; false on deadline.
  bool wait_for_requests(int n, std::chrono::milliseconds deadline);

 private:
  friend class Connection;
  void accept_loop();
  void serve(int fd);
  void close_fd(int fd, bool reset);

  Handler handler_;
  Read read_;
  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<int> accepted_{0};
  std::atomic<int> requests_{0};

  std::mutex mutex_;  // guards open_fds_, stopping_, threads_ and signals changed_
  std::condition_variable changed_;
  std::set<int> open_fds_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

// A TCP port on 127.0.0.1 that was free a moment ago (bind to 0, read, close).
std::uint16_t free_port();

// A fresh directory under $TMPDIR, removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(std::string_view name) const { return path_ + "/" + std::string(name); }

 private:
  std::string path_;
};

// Polls pred every few milliseconds until it holds or the deadline passes.
bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds deadline);

std::string read_file(const std::string& path);
void write_file(const std::string& path, std::string_view content);

}  // namespace stowage::http::testing
