#include "test_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>

namespace stowage::http::testing {
namespace {

// Buffered reads from one socket.
class Reader {
 public:
  explicit Reader(int fd) : fd_(fd) {}

  std::optional<std::string> line() {  // without CRLF
    while (true) {
      if (const auto eol = buffer_.find("\r\n"); eol != std::string::npos) {
        std::string out = buffer_.substr(0, eol);
        buffer_.erase(0, eol + 2);
        return out;
      }
      if (!fill()) {
        return std::nullopt;
      }
    }
  }

  std::optional<std::string> exactly(std::size_t n) {
    while (buffer_.size() < n) {
      if (!fill()) {
        return std::nullopt;
      }
    }
    std::string out = buffer_.substr(0, n);
    buffer_.erase(0, n);
    return out;
  }

 private:
  bool fill() {
    char chunk[65536];
    const ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
    if (n <= 0) {
      return false;
    }
    buffer_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }

  int fd_;
  std::string buffer_;
};

std::optional<RawRequest> read_request(Reader& in, bool with_body) {
  auto request_line = in.line();
  if (!request_line || request_line->empty()) {
    return std::nullopt;
  }
  RawRequest req;
  std::istringstream words(*request_line);
  std::string version;
  words >> req.method >> req.target >> version;
  while (true) {
    auto line = in.line();
    if (!line) {
      return std::nullopt;
    }
    if (line->empty()) {
      break;
    }
    if (auto field = http::parse_header_line(*line)) {
      req.headers.add(std::move(field->first), std::move(field->second));
    }
  }
  if (!with_body) {
    return req;
  }
  if (auto te = req.headers.get("Transfer-Encoding"); te && http::iequals(*te, "chunked")) {
    req.chunked = true;
    while (true) {
      auto size_line = in.line();
      if (!size_line) {
        return std::nullopt;
      }
      const std::size_t size = std::stoul(*size_line, nullptr, 16);
      if (size == 0) {
        while (auto trailer = in.line()) {  // trailers end with an empty line
          if (trailer->empty()) {
            break;
          }
        }
        break;
      }
      auto data = in.exactly(size + 2);
      if (!data) {
        return std::nullopt;
      }
      req.body.append(*data, 0, size);
    }
  } else if (auto length = req.headers.get("Content-Length")) {
    auto data = in.exactly(std::stoul(*length));
    if (!data) {
      return std::nullopt;
    }
    req.body = std::move(*data);
  }
  return req;
}

}  // namespace

bool Connection::write(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) {
        continue;
      }
      return false;
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

void Connection::reset() {
  if (fd_ >= 0) {
    server_.close_fd(fd_, true);
    fd_ = -1;
  }
}

void Connection::close() {
  if (fd_ >= 0) {
    server_.close_fd(fd_, false);
    fd_ = -1;
  }
}

void Connection::stall() {
  std::unique_lock lock(server_.mutex_);
  server_.changed_.wait(lock, [&] { return server_.stopping_; });
}

std::string make_response(int status, std::string_view body,
                          const std::vector<std::pair<std::string, std::string>>& headers) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " X\r\n";
  out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  for (const auto& [name, value] : headers) {
    out.append(name).append(": ").append(value).append("\r\n");
  }
  out += "\r\n";
  out += body;
  return out;
}

TestServer::TestServer(Handler handler, Read read) : handler_(std::move(handler)), read_(read) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) {
    throw std::runtime_error("test server: socket failed");
  }
  const int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t length = sizeof(addr);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(listen_fd_, 64) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
    ::close(listen_fd_);
    throw std::runtime_error("test server: cannot listen on 127.0.0.1");
  }
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { accept_loop(); });
}

TestServer::~TestServer() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    for (int fd : open_fds_) {
      ::shutdown(fd, SHUT_RDWR);  // wakes the connection's blocked recv
    }
  }
  changed_.notify_all();
  ::shutdown(listen_fd_, SHUT_RDWR);  // wakes accept
  acceptor_.join();
  ::close(listen_fd_);
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mutex_);
    threads.swap(threads_);
  }
  for (auto& t : threads) {
    t.join();
  }
}

std::string TestServer::url(std::string_view path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + std::string(path);
}

bool TestServer::wait_for_requests(int n, std::chrono::milliseconds deadline) {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, deadline, [&] { return requests_.load() >= n; });
}

void TestServer::accept_loop() {
  while (true) {
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    std::lock_guard lock(mutex_);
    if (fd < 0) {
      if (stopping_ || (errno != EINTR && errno != ECONNABORTED)) {
        return;
      }
      continue;
    }
    if (stopping_) {
      ::close(fd);
      return;
    }
    ++accepted_;
    open_fds_.insert(fd);
    threads_.emplace_back([this, fd] { serve(fd); });
  }
}

void TestServer::serve(int fd) {
  Connection connection(*this, fd);
  Reader in(fd);
  while (!connection.closed()) {
    auto request = read_request(in, read_ == Read::kWholeRequest);
    if (!request) {
      break;
    }
    {
      std::lock_guard lock(mutex_);
      ++requests_;
    }
    changed_.notify_all();
    handler_(*request, connection);
    if (read_ == Read::kHeadOnly) {
      break;
    }
  }
  connection.close();
}

void TestServer::close_fd(int fd, bool reset) {
  std::lock_guard lock(mutex_);
  if (reset) {
    const linger hard{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof(hard));
  }
  open_fds_.erase(fd);
  ::close(fd);
}

std::uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(addr);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
    throw std::runtime_error("free_port: cannot bind");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern =
      std::string(base != nullptr && *base != 0 ? base : "/tmp") + "/stowage-http-test-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) {
    throw std::runtime_error("mkdtemp failed");
  }
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds deadline) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= end) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void write_file(const std::string& path, std::string_view content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  if (!out) {
    throw std::runtime_error("cannot write " + path);
  }
}

}  // namespace stowage::http::testing
