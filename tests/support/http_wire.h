// HTTP/1.1 on raw loopback sockets for the test servers in tests/support (token issuer, fault
// proxy): a buffered connection, request/response heads, body framing (Content-Length, chunked,
// until close) and a small accept loop with one thread per connection that stops cleanly.
// Test code only: it trusts its peers to be well-formed enough and keeps no limits a server
// facing the internet would need.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "http/headers.h"

namespace stowage::test::wire {

// The open sockets of one server, so that stopping it can wake every thread blocked on one of
// them (shutdown(2); the owner still closes). Thread-safe.
class SocketSet {
 public:
  // False once shutdown_all() ran: the caller must not use the socket (it is shut down already).
  bool add(int fd);
  void remove(int fd);
  // Shuts down every registered socket, and every socket added later.
  void shutdown_all();

 private:
  std::mutex mutex_;  // guards fds_ and closed_
  std::set<int> fds_;
  bool closed_ = false;
};

// One TCP connection with a read buffer; owns the descriptor. Used by one thread at a time,
// except that its SocketSet may shut it down from another.
class Conn {
 public:
  Conn(int fd, SocketSet* sockets);
  ~Conn();
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  // A line without its CRLF (a bare LF also ends it); nullopt at EOF, on error or past `max`.
  std::optional<std::string> read_line(std::size_t max = 64 * 1024);
  // Buffered bytes first, else one recv() of at most `max`; empty at EOF or on error.
  std::string read_some(std::size_t max);
  // Exactly n bytes appended to `out`; false at EOF or on error first.
  bool read_exact(std::size_t n, std::string& out);
  // Sends all of `bytes`; false once the peer is gone.
  bool write_all(std::string_view bytes);
  // Waits (up to `drain`) until the peer has acknowledged everything sent, then closes with a TCP
  // RST (SO_LINGER 0): the peer reads all bytes sent so far, then gets ECONNRESET.
  void reset(std::chrono::milliseconds drain = std::chrono::seconds(2));
  // Closes normally (FIN). Idempotent; the destructor does it too.
  void close();
  bool open() const { return fd_ >= 0; }
  // For a connection kept idle between exchanges: true when the peer closed it (or sent
  // something unasked), so it must not be reused.
  bool idle_unusable();

 private:
  bool fill(std::size_t max);

  int fd_;
  SocketSet* sockets_;
  std::string buffer_;
};

// A TCP connection to 127.0.0.1:port registered in `sockets` (may be null); nullptr when refused.
std::unique_ptr<Conn> connect_loopback(int port, SocketSet* sockets,
                                       std::chrono::milliseconds timeout = std::chrono::seconds(5));

struct RequestHead {
  std::string method;
  std::string target;  // origin-form: path and query
  std::string version = "HTTP/1.1";
  http::Headers headers;

  std::string path() const;   // target without the query
  std::string query() const;  // after '?', or ""
};

struct ResponseHead {
  std::string version = "HTTP/1.1";
  int status = 0;
  std::string reason;
  http::Headers headers;
};

// Reads a head up to its blank line; nullopt at EOF before a full head, or when malformed.
std::optional<RequestHead> read_request_head(Conn& conn);
std::optional<ResponseHead> read_response_head(Conn& conn);
std::string serialize(const RequestHead& head);
std::string serialize(const ResponseHead& head);

enum class Framing { kNone, kLength, kChunked, kUntilClose };
struct BodyFraming {
  Framing kind = Framing::kNone;
  std::uint64_t length = 0;  // for kLength
};

// How the body of a request or response is delimited (RFC 9112 §6.3). nullopt when invalid
// (two different Content-Length values, a transfer coding other than chunked).
std::optional<BodyFraming> request_framing(const RequestHead& head);
std::optional<BodyFraming> response_framing(std::string_view request_method,
                                            const ResponseHead& head);
// Whether the connection stays open after this exchange (HTTP/1.1 default, Connection header).
bool keep_alive(const std::string& version, const http::Headers& headers);

// Reads a body of the given framing from `conn`, handing the payload (de-chunked; trailers are
// dropped) to `sink` piece by piece. False on EOF before the end, a framing error, or a sink that
// returned false.
bool read_body(Conn& conn, const BodyFraming& framing,
               const std::function<bool(std::string_view)>& sink);
// The whole body in memory; nullopt on error or past `max` bytes.
std::optional<std::string> read_body(Conn& conn, const BodyFraming& framing,
                                     std::size_t max = 16 * 1024 * 1024);

// Writes a payload in the given framing (chunked: one chunk per write(), then the last chunk).
class BodyWriter {
 public:
  BodyWriter(Conn& conn, Framing framing) : conn_(conn), framing_(framing) {}
  bool write(std::string_view payload);
  bool finish();

 private:
  Conn& conn_;
  Framing framing_;
};

// "HTTP/1.1 <status> <reason>" with Content-Length and the given headers and body.
std::string simple_response(int status, std::string_view body,
                            const std::vector<std::pair<std::string, std::string>>& headers = {},
                            bool close = false);

// Decodes %XX and '+' (application/x-www-form-urlencoded); invalid escapes are kept as is.
std::string form_decode(std::string_view text);
// The name=value pairs of a query string or form body, decoded, in order.
std::vector<std::pair<std::string, std::string>> parse_form(std::string_view text);

// Accepts connections on 127.0.0.1 (port chosen by the kernel) and runs `handler` for each on its
// own thread, with the stop token of that thread and the server's SocketSet (register sockets the
// handler opens itself, e.g. upstream connections, there). stop() (and the destructor) closes the
// listener, requests stop, shuts down every registered socket and joins all threads; handlers must
// return once their sockets fail or their stop token fires.
class Server {
 public:
  using Handler = std::function<void(Conn& conn, const std::stop_token& stop, SocketSet& sockets)>;

  explicit Server(Handler handler);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  int port() const { return port_; }
  int connections_accepted() const { return accepted_.load(); }
  void stop();

 private:
  void accept_loop(const std::stop_token& stop);

  Handler handler_;
  SocketSet sockets_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<int> accepted_{0};
  struct Worker {
    std::jthread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::mutex mutex_;             // guards workers_ and stopped_
  std::vector<Worker> workers_;  // finished ones are joined at the next accept
  bool stopped_ = false;
  std::jthread acceptor_;
};

}  // namespace stowage::test::wire
