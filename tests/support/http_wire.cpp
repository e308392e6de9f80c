#include "support/http_wire.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/error.h"
#include "http/errors.h"

namespace stowage::test::wire {
namespace {

constexpr std::size_t kReadChunk = std::size_t{64} * 1024;
constexpr std::size_t kMaxHeadLines = 200;

std::string trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return std::string(s);
}

// True when a comma-separated header list (Connection, Transfer-Encoding) holds `token`.
bool has_token(const http::Headers& headers, std::string_view name, std::string_view token) {
  for (const auto& value : headers.get_all(name)) {
    std::size_t start = 0;
    while (start <= value.size()) {
      const std::size_t comma = value.find(',', start);
      const std::string item = trim(std::string_view(value).substr(
          start, comma == std::string::npos ? std::string::npos : comma - start));
      if (http::iequals(item, token)) return true;
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  return false;
}

// Reads header lines up to the blank line into `headers`.
bool read_header_fields(Conn& conn, http::Headers& headers) {
  for (std::size_t i = 0; i < kMaxHeadLines; ++i) {
    auto line = conn.read_line();
    if (!line) return false;
    if (line->empty()) return true;
    auto field = http::parse_header_line(*line);
    if (!field) return false;
    headers.add(std::move(field->first), std::move(field->second));
  }
  return false;
}

std::optional<std::uint64_t> parse_u64(std::string_view s, int base) {
  if (s.empty()) return std::nullopt;
  std::uint64_t v = 0;
  for (const char c : s) {
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (base == 16 && c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else if (base == 16 && c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else {
      return std::nullopt;
    }
    if (v > (UINT64_MAX - static_cast<std::uint64_t>(d)) / static_cast<std::uint64_t>(base)) {
      return std::nullopt;
    }
    v = v * static_cast<std::uint64_t>(base) + static_cast<std::uint64_t>(d);
  }
  return v;
}

// Content-Length framing, or nullopt when values disagree or do not parse; kNone when absent.
std::optional<BodyFraming> length_framing(const http::Headers& headers, Framing absent) {
  std::optional<std::uint64_t> length;
  for (const auto& value : headers.get_all("Content-Length")) {
    const auto v = parse_u64(trim(value), 10);
    if (!v || (length && *length != *v)) return std::nullopt;
    length = v;
  }
  if (!length) return BodyFraming{absent, 0};
  return BodyFraming{Framing::kLength, *length};
}

std::optional<BodyFraming> transfer_framing(const http::Headers& headers, Framing absent) {
  if (headers.contains("Transfer-Encoding")) {
    // Only "chunked" (as the one and last coding) is supported here.
    const auto te = headers.get_all("Transfer-Encoding");
    if (te.size() != 1 || !http::iequals(trim(te.front()), "chunked")) return std::nullopt;
    return BodyFraming{Framing::kChunked, 0};
  }
  return length_framing(headers, absent);
}

}  // namespace

bool SocketSet::add(int fd) {
  std::lock_guard lock(mutex_);
  if (closed_) {
    ::shutdown(fd, SHUT_RDWR);
    return false;
  }
  fds_.insert(fd);
  return true;
}

void SocketSet::remove(int fd) {
  std::lock_guard lock(mutex_);
  fds_.erase(fd);
}

void SocketSet::shutdown_all() {
  std::lock_guard lock(mutex_);
  closed_ = true;
  for (const int fd : fds_) ::shutdown(fd, SHUT_RDWR);
}

Conn::Conn(int fd, SocketSet* sockets) : fd_(fd), sockets_(sockets) {
  if (sockets_ != nullptr) sockets_->add(fd_);
  const int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

Conn::~Conn() {
  close();
}

void Conn::close() {
  if (fd_ < 0) return;
  if (sockets_ != nullptr) sockets_->remove(fd_);
  ::close(fd_);
  fd_ = -1;
}

void Conn::reset(std::chrono::milliseconds drain) {
  if (fd_ < 0) return;
  // SIOCOUTQ: bytes not yet acknowledged by the peer. Once zero, the peer's kernel holds them
  // all, and it delivers them before reporting the reset.
  const auto deadline = std::chrono::steady_clock::now() + drain;
  auto delay = std::chrono::microseconds(100);
  while (std::chrono::steady_clock::now() < deadline) {
    int pending = 0;
    if (::ioctl(fd_, SIOCOUTQ, &pending) != 0 || pending == 0) break;
    std::this_thread::sleep_for(delay);
    delay = std::min(delay * 2, std::chrono::microseconds(20'000));
  }
  const linger lg{1, 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close();
}

bool Conn::idle_unusable() {
  if (fd_ < 0 || !buffer_.empty()) return true;
  pollfd p{fd_, static_cast<short>(POLLIN | POLLRDHUP), 0};
  return ::poll(&p, 1, 0) != 0;
}

bool Conn::fill(std::size_t max) {
  if (fd_ < 0) return false;
  const std::size_t old = buffer_.size();
  buffer_.resize(old + max);
  ssize_t n;
  do {
    n = ::recv(fd_, buffer_.data() + old, max, 0);
  } while (n < 0 && errno == EINTR);
  buffer_.resize(old + static_cast<std::size_t>(n > 0 ? n : 0));
  return n > 0;
}

std::optional<std::string> Conn::read_line(std::size_t max) {
  std::size_t scanned = 0;
  while (true) {
    const auto eol = buffer_.find('\n', scanned);
    if (eol != std::string::npos) {
      std::string line = buffer_.substr(0, eol);
      buffer_.erase(0, eol + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      return line;
    }
    scanned = buffer_.size();
    if (scanned > max || !fill(kReadChunk)) return std::nullopt;
  }
}

std::string Conn::read_some(std::size_t max) {
  if (buffer_.empty() && !fill(std::min(max, kReadChunk))) return {};
  const std::size_t n = std::min(max, buffer_.size());
  std::string out = buffer_.substr(0, n);
  buffer_.erase(0, n);
  return out;
}

bool Conn::read_exact(std::size_t n, std::string& out) {
  while (buffer_.size() < n) {
    if (!fill(std::max(kReadChunk, n - buffer_.size()))) return false;
  }
  out.append(buffer_, 0, n);
  buffer_.erase(0, n);
  return true;
}

bool Conn::write_all(std::string_view bytes) {
  while (!bytes.empty()) {
    if (fd_ < 0) return false;
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

std::unique_ptr<Conn> connect_loopback(int port, SocketSet* sockets,
                                       std::chrono::milliseconds timeout) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return nullptr;
  auto conn = std::make_unique<Conn>(fd, sockets);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno != EINPROGRESS) return nullptr;
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return nullptr;
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) return nullptr;
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return conn;
}

std::string RequestHead::path() const {
  return target.substr(0, target.find('?'));
}

std::string RequestHead::query() const {
  const auto q = target.find('?');
  return q == std::string::npos ? std::string() : target.substr(q + 1);
}

std::optional<RequestHead> read_request_head(Conn& conn) {
  std::optional<std::string> line;
  do {  // RFC 9112 §2.2: ignore empty lines before the request line
    line = conn.read_line();
    if (!line) return std::nullopt;
  } while (line->empty());
  RequestHead head;
  const auto sp1 = line->find(' ');
  const auto sp2 = line->rfind(' ');
  if (sp1 == std::string::npos || sp2 == sp1) return std::nullopt;
  head.method = line->substr(0, sp1);
  head.target = line->substr(sp1 + 1, sp2 - sp1 - 1);
  head.version = line->substr(sp2 + 1);
  if (!head.version.starts_with("HTTP/1.") || head.target.empty()) return std::nullopt;
  if (!read_header_fields(conn, head.headers)) return std::nullopt;
  return head;
}

std::optional<ResponseHead> read_response_head(Conn& conn) {
  auto line = conn.read_line();
  if (!line) return std::nullopt;
  const auto status = http::parse_status_line(*line);
  if (!status) return std::nullopt;
  ResponseHead head;
  head.version = "HTTP/" + status->version;
  head.status = status->status;
  head.reason = status->reason;
  if (!read_header_fields(conn, head.headers)) return std::nullopt;
  return head;
}

std::string serialize(const RequestHead& head) {
  std::string out = fmt::format("{} {} {}\r\n", head.method, head.target, head.version);
  for (const auto& [name, value] : head.headers) out += fmt::format("{}: {}\r\n", name, value);
  return out + "\r\n";
}

std::string serialize(const ResponseHead& head) {
  std::string out = fmt::format("{} {} {}\r\n", head.version, head.status, head.reason);
  for (const auto& [name, value] : head.headers) out += fmt::format("{}: {}\r\n", name, value);
  return out + "\r\n";
}

std::optional<BodyFraming> request_framing(const RequestHead& head) {
  return transfer_framing(head.headers, Framing::kNone);
}

std::optional<BodyFraming> response_framing(std::string_view request_method,
                                            const ResponseHead& head) {
  if (request_method == "HEAD" || (head.status >= 100 && head.status < 200) || head.status == 204 ||
      head.status == 304) {
    return BodyFraming{Framing::kNone, 0};
  }
  return transfer_framing(head.headers, Framing::kUntilClose);
}

bool keep_alive(const std::string& version, const http::Headers& headers) {
  if (has_token(headers, "Connection", "close")) return false;
  if (version == "HTTP/1.0") return has_token(headers, "Connection", "keep-alive");
  return true;
}

bool read_body(Conn& conn, const BodyFraming& framing,
               const std::function<bool(std::string_view)>& sink) {
  switch (framing.kind) {
    case Framing::kNone: return true;
    case Framing::kLength: {
      std::uint64_t left = framing.length;
      while (left > 0) {
        const std::string piece = conn.read_some(static_cast<std::size_t>(
            std::min<std::uint64_t>(left, static_cast<std::uint64_t>(kReadChunk))));
        if (piece.empty()) return false;
        left -= piece.size();
        if (!sink(piece)) return false;
      }
      return true;
    }
    case Framing::kUntilClose:
      while (true) {
        const std::string piece = conn.read_some(kReadChunk);
        if (piece.empty()) return true;
        if (!sink(piece)) return false;
      }
    case Framing::kChunked:
      while (true) {
        auto size_line = conn.read_line();
        if (!size_line) return false;
        const std::string hex = trim(size_line->substr(0, size_line->find(';')));
        const auto size = parse_u64(hex, 16);
        if (!size) return false;
        if (*size == 0) {
          // Trailer fields up to the blank line, dropped.
          while (true) {
            auto trailer = conn.read_line();
            if (!trailer) return false;
            if (trailer->empty()) return true;
          }
        }
        std::uint64_t left = *size;
        while (left > 0) {
          const std::string piece = conn.read_some(static_cast<std::size_t>(
              std::min<std::uint64_t>(left, static_cast<std::uint64_t>(kReadChunk))));
          if (piece.empty()) return false;
          left -= piece.size();
          if (!sink(piece)) return false;
        }
        auto crlf = conn.read_line();
        if (!crlf || !crlf->empty()) return false;
      }
  }
  return false;
}

std::optional<std::string> read_body(Conn& conn, const BodyFraming& framing, std::size_t max) {
  std::string out;
  const bool ok = read_body(conn, framing, [&](std::string_view piece) {
    if (out.size() + piece.size() > max) return false;
    out.append(piece);
    return true;
  });
  if (!ok) return std::nullopt;
  return out;
}

bool BodyWriter::write(std::string_view payload) {
  if (payload.empty()) return true;
  if (framing_ == Framing::kChunked) {
    return conn_.write_all(fmt::format("{:x}\r\n", payload.size())) && conn_.write_all(payload) &&
           conn_.write_all("\r\n");
  }
  return conn_.write_all(payload);
}

bool BodyWriter::finish() {
  if (framing_ == Framing::kChunked) return conn_.write_all("0\r\n\r\n");
  return true;
}

std::string simple_response(int status, std::string_view body,
                            const std::vector<std::pair<std::string, std::string>>& headers,
                            bool close) {
  std::string reason(http::reason_phrase(status));
  std::string out = fmt::format("HTTP/1.1 {} {}\r\n", status, reason.empty() ? "Status" : reason);
  for (const auto& [name, value] : headers) out += fmt::format("{}: {}\r\n", name, value);
  out += fmt::format("Content-Length: {}\r\n", body.size());
  if (close) out += "Connection: close\r\n";
  out += "\r\n";
  out += body;
  return out;
}

std::string form_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '+') {
      out += ' ';
    } else if (c == '%' && i + 2 < text.size()) {
      const auto v = parse_u64(text.substr(i + 1, 2), 16);
      if (v) {
        out += static_cast<char>(*v);
        i += 2;
      } else {
        out += c;
      }
    } else {
      out += c;
    }
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> parse_form(std::string_view text) {
  std::vector<std::pair<std::string, std::string>> out;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t amp = text.find('&', start);
    if (amp == std::string_view::npos) amp = text.size();
    const std::string_view item = text.substr(start, amp - start);
    if (!item.empty()) {
      const auto eq = item.find('=');
      if (eq == std::string_view::npos) {
        out.emplace_back(form_decode(item), "");
      } else {
        out.emplace_back(form_decode(item.substr(0, eq)), form_decode(item.substr(eq + 1)));
      }
    }
    start = amp + 1;
  }
  return out;
}

Server::Server(Handler handler) : handler_(std::move(handler)) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) {
    throw Error(Code::kInternal, fmt::format("test server: socket: {}", std::strerror(errno)));
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 128) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const int err = errno;
    ::close(listen_fd_);
    throw Error(Code::kInternal,
                fmt::format("test server: listening on 127.0.0.1:0: {}", std::strerror(err)));
  }
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::jthread([this](const std::stop_token& stop) { accept_loop(stop); });
}

Server::~Server() {
  stop();
}

void Server::accept_loop(const std::stop_token& stop) {
  while (!stop.stop_requested()) {
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;  // the listener was shut down
    }
    std::lock_guard lock(mutex_);
    if (stopped_) {
      ::close(fd);
      return;
    }
    ++accepted_;
    std::erase_if(workers_, [](Worker& w) {
      if (!w.done->load()) return false;
      w.thread.join();
      return true;
    });
    auto done = std::make_shared<std::atomic<bool>>(false);
    workers_.push_back(Worker{std::jthread([this, fd, done](const std::stop_token& worker_stop) {
                                Conn conn(fd, &sockets_);
                                try {
                                  handler_(conn, worker_stop, sockets_);
                                } catch (const std::exception&) {
                                  // A thread entry point: the connection just ends; the test
                                  // sees that as a failure.
                                }
                                done->store(true);
                              }),
                              done});
  }
}

void Server::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopped_) return;
    stopped_ = true;
  }
  acceptor_.request_stop();
  ::shutdown(listen_fd_, SHUT_RDWR);
  if (acceptor_.joinable()) acceptor_.join();
  ::close(listen_fd_);
  listen_fd_ = -1;
  sockets_.shutdown_all();
  std::vector<Worker> workers;
  {
    std::lock_guard lock(mutex_);
    workers.swap(workers_);
  }
  for (auto& w : workers) w.thread.request_stop();
  for (auto& w : workers) {
    if (w.thread.joinable()) w.thread.join();
  }
}

}  // namespace stowage::test::wire
