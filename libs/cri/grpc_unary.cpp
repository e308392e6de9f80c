#include "cri/grpc_unary.h"

#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <optional>
#include <thread>

#include "base/fd.h"
#include "cri/grpc_wire.h"

namespace stowage::cri {
namespace {

using Clock = std::chrono::steady_clock;

// gRPC status codes used here.
constexpr int kCancelled = 1;
constexpr int kDeadlineExceeded = 4;
constexpr int kResourceExhausted = 8;
constexpr int kInternal = 13;
constexpr int kUnavailable = 14;

// How often a blocked wait looks at the stop token.
constexpr auto kPollSlice = std::chrono::milliseconds(100);
constexpr std::size_t kReadChunk = 64 * 1024;

// Raised inside the exchange loop; becomes the UnaryResult.
struct Failure {
  int code;
  std::string message;
};

struct SessionDeleter {
  void operator()(nghttp2_session* s) const { nghttp2_session_del(s); }
};
struct CallbacksDeleter {
  void operator()(nghttp2_session_callbacks* c) const { nghttp2_session_callbacks_del(c); }
};

// What the nghttp2 callbacks learn about our one stream.
struct Exchange {
  std::int32_t stream_id = -1;
  std::string_view request;
  std::size_t request_sent = 0;
  std::size_t max_body = 0;

  int http_status = 0;
  std::optional<int> grpc_status;
  std::string grpc_message;
  std::string body;
  bool too_large = false;
  bool closed = false;
  std::uint32_t close_error = NGHTTP2_NO_ERROR;
  std::string bad_header;  // a grpc-status that is not a number
};

std::string errno_text(int e) {
  return std::strerror(e);
}

int on_header(nghttp2_session*, const nghttp2_frame* frame, const std::uint8_t* name,
              std::size_t namelen, const std::uint8_t* value, std::size_t valuelen, std::uint8_t,
              void* user) {
  auto& ex = *static_cast<Exchange*>(user);
  if (frame->hd.type != NGHTTP2_HEADERS || frame->hd.stream_id != ex.stream_id) {
    return 0;
  }
  const std::string_view n(reinterpret_cast<const char*>(name), namelen);
  const std::string_view v(reinterpret_cast<const char*>(value), valuelen);
  if (n == ":status") {
    ex.http_status = 0;
    for (const char c : v) {
      ex.http_status =
          (c >= '0' && c <= '9' && ex.http_status < 1000) ? ex.http_status * 10 + (c - '0') : 1000;
    }
  } else if (n == "grpc-status") {
    ex.grpc_status = wire::parse_status(v);
    if (!ex.grpc_status) {
      ex.bad_header.assign(v.substr(0, 32));
    }
  } else if (n == "grpc-message") {
    ex.grpc_message = wire::decode_message(v);
  }
  return 0;
}

int on_data(nghttp2_session* session, std::uint8_t, std::int32_t stream_id,
            const std::uint8_t* data, std::size_t len, void* user) {
  auto& ex = *static_cast<Exchange*>(user);
  if (stream_id != ex.stream_id || ex.too_large) {
    return 0;
  }
  if (ex.body.size() + len > ex.max_body) {
    ex.too_large = true;
    ex.body.clear();
    nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_CANCEL);
    return 0;
  }
  ex.body.append(reinterpret_cast<const char*>(data), len);
  return 0;
}

int on_close(nghttp2_session*, std::int32_t stream_id, std::uint32_t error_code, void* user) {
  auto& ex = *static_cast<Exchange*>(user);
  if (stream_id == ex.stream_id) {
    ex.closed = true;
    ex.close_error = error_code;
  }
  return 0;
}

ssize_t read_request(nghttp2_session*, std::int32_t, std::uint8_t* buf, std::size_t length,
                     std::uint32_t* flags, nghttp2_data_source*, void* user) {
  auto& ex = *static_cast<Exchange*>(user);
  const std::size_t n = std::min(length, ex.request.size() - ex.request_sent);
  std::memcpy(buf, ex.request.data() + ex.request_sent, n);
  ex.request_sent += n;
  if (ex.request_sent == ex.request.size()) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
  }
  return static_cast<ssize_t>(n);
}

// Waits for `events` on fd until the deadline or a stop request, in slices.
void wait_for(int fd, short events, Clock::time_point deadline, const std::stop_token& stop) {
  while (true) {
    if (stop.stop_requested()) {
      throw Failure{kCancelled, "cancelled"};
    }
    const auto now = Clock::now();
    if (now >= deadline) {
      throw Failure{kDeadlineExceeded, "Deadline Exceeded"};
    }
    const auto slice = std::min<Clock::duration>(deadline - now, kPollSlice);
    pollfd p{fd, events, 0};
    const int ms = static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(slice).count());
    const int rc = ::poll(&p, 1, ms);
    if (rc > 0) {
      return;
    }
    if (rc < 0 && errno != EINTR) {
      throw Failure{kUnavailable, "poll: " + errno_text(errno)};
    }
  }
}

Fd connect_unix(const std::string& path, Clock::time_point deadline, const std::stop_token& stop) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    throw Failure{kUnavailable, "socket path too long for a unix socket: " + path};
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  while (true) {
    Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) {
      throw Failure{kUnavailable, "socket: " + errno_text(errno)};
    }
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0) {
      return fd;
    }
    const int e = errno;
    if (e == EINPROGRESS) {
      wait_for(fd.get(), POLLOUT, deadline, stop);
      int so_error = 0;
      socklen_t len = sizeof(so_error);
      ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &so_error, &len);
      if (so_error == 0) {
        return fd;
      }
      throw Failure{kUnavailable, "connecting to unix:" + path + ": " + errno_text(so_error)};
    }
    if (e != EAGAIN && e != EINTR) {
      throw Failure{kUnavailable, "connecting to unix:" + path + ": " + errno_text(e)};
    }
    // The listener's backlog is full: the runtime is busy or hung. Try again shortly.
    if (stop.stop_requested()) {
      throw Failure{kCancelled, "cancelled"};
    }
    if (Clock::now() >= deadline) {
      throw Failure{kDeadlineExceeded, "Deadline Exceeded (connecting: backlog full)"};
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// Writes everything nghttp2 has queued.
void flush(nghttp2_session* session, int fd, Clock::time_point deadline,
           const std::stop_token& stop) {
  while (nghttp2_session_want_write(session) != 0) {
    const std::uint8_t* data = nullptr;
    const ssize_t n = nghttp2_session_mem_send(session, &data);
    if (n < 0) {
      throw Failure{kInternal, std::string("HTTP/2: ") + nghttp2_strerror(static_cast<int>(n))};
    }
    if (n == 0) {
      return;
    }
    std::size_t done = 0;
    while (done < static_cast<std::size_t>(n)) {
      const ssize_t w = ::send(fd, data + done, static_cast<std::size_t>(n) - done, MSG_NOSIGNAL);
      if (w >= 0) {
        done += static_cast<std::size_t>(w);
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        wait_for(fd, POLLOUT, deadline, stop);
      } else if (errno != EINTR) {
        throw Failure{kUnavailable, "writing to the runtime: " + errno_text(errno)};
      }
    }
  }
}

UnaryResult result_of(const Exchange& ex) {
  if (ex.too_large) {
    return {kResourceExhausted,
            "response larger than the limit of " + std::to_string(ex.max_body) + " bytes",
            {}};
  }
  if (!ex.bad_header.empty()) {
    return {kInternal, "invalid grpc-status \"" + ex.bad_header + "\"", {}};
  }
  if (ex.grpc_status) {
    if (*ex.grpc_status != 0) {
      return {*ex.grpc_status, ex.grpc_message, {}};
    }
    wire::UnaryBody body = wire::parse_unary_body(ex.body);
    if (!body.error.empty()) {
      return {kInternal, body.error, {}};
    }
    return {0, {}, std::move(body.message)};
  }
  if (ex.close_error != NGHTTP2_NO_ERROR) {
    const std::string what = std::string("stream reset by the runtime (HTTP/2 ") +
                             nghttp2_http2_strerror(ex.close_error) + ")";
    switch (ex.close_error) {
      case NGHTTP2_REFUSED_STREAM: return {kUnavailable, what, {}};
      case NGHTTP2_CANCEL: return {kCancelled, what, {}};
      case NGHTTP2_ENHANCE_YOUR_CALM: return {kResourceExhausted, what, {}};
      default: return {kInternal, what, {}};
    }
  }
  if (ex.http_status != 200) {
    return {wire::code_for_http_status(ex.http_status),
            "HTTP status " + std::to_string(ex.http_status) + " without grpc-status",
            {}};
  }
  return {kInternal, "the response ended without grpc-status", {}};
}

UnaryResult exchange(const UnaryCall& call, std::string_view request) {
  const auto deadline = Clock::now() + call.timeout;
  const std::string framed = wire::frame_message(request);

  Exchange ex;
  ex.request = framed;
  ex.max_body = call.max_response_bytes + 5;

  std::unique_ptr<nghttp2_session_callbacks, CallbacksDeleter> callbacks;
  {
    nghttp2_session_callbacks* raw = nullptr;
    if (nghttp2_session_callbacks_new(&raw) != 0) {
      throw Failure{kResourceExhausted, "HTTP/2: out of memory"};
    }
    callbacks.reset(raw);
  }
  nghttp2_session_callbacks_set_on_header_callback(callbacks.get(), &on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks.get(), &on_data);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks.get(), &on_close);

  std::unique_ptr<nghttp2_session, SessionDeleter> session;
  {
    nghttp2_session* raw = nullptr;
    if (nghttp2_session_client_new(&raw, callbacks.get(), &ex) != 0) {
      throw Failure{kResourceExhausted, "HTTP/2: out of memory"};
    }
    session.reset(raw);
  }
  nghttp2_session* s = session.get();

  // A window as large as the largest response: the runtime never waits for a WINDOW_UPDATE.
  constexpr std::size_t kMaxWindow = (std::size_t{1} << 31) - 1;
  const auto window = static_cast<std::int32_t>(std::min(ex.max_body + 65'536, kMaxWindow));
  const std::array<nghttp2_settings_entry, 2> settings = {{
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<std::uint32_t>(window)},
  }};
  nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, settings.data(), settings.size());
  nghttp2_session_set_local_window_size(s, NGHTTP2_FLAG_NONE, 0, window);

  const std::string timeout = wire::encode_timeout(call.timeout);
  auto nv = [](std::string_view name, std::string_view value) {
    return nghttp2_nv{reinterpret_cast<std::uint8_t*>(const_cast<char*>(name.data())),
                      reinterpret_cast<std::uint8_t*>(const_cast<char*>(value.data())), name.size(),
                      value.size(), NGHTTP2_NV_FLAG_NONE};
  };
  const std::array<nghttp2_nv, 8> headers = {
      nv(":method", "POST"),
      nv(":scheme", "http"),
      nv(":authority", "localhost"),
      nv(":path", call.method),
      nv("content-type", "application/grpc"),
      nv("te", "trailers"),
      nv("grpc-timeout", timeout),
      nv("user-agent", "stowage-cri/0.1"),
  };
  nghttp2_data_provider provider{};
  provider.read_callback = &read_request;
  ex.stream_id =
      nghttp2_submit_request(s, nullptr, headers.data(), headers.size(), &provider, nullptr);
  if (ex.stream_id < 0) {
    throw Failure{kInternal, std::string("HTTP/2: ") + nghttp2_strerror(ex.stream_id)};
  }

  const Fd fd = connect_unix(call.socket_path, deadline, call.stop);
  std::array<std::uint8_t, kReadChunk> buffer{};
  try {
    while (true) {
      flush(s, fd.get(), deadline, call.stop);
      if (ex.closed) {
        break;
      }
      if (nghttp2_session_want_read(s) == 0 && nghttp2_session_want_write(s) == 0) {
        throw Failure{kUnavailable, "the runtime ended the HTTP/2 connection (GOAWAY)"};
      }
      wait_for(fd.get(), POLLIN, deadline, call.stop);
      const ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
      if (n == 0) {
        throw Failure{kUnavailable, "the runtime closed the connection before the response ended"};
      }
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
          continue;
        }
        throw Failure{kUnavailable, "reading from the runtime: " + errno_text(errno)};
      }
      const ssize_t rv = nghttp2_session_mem_recv(s, buffer.data(), static_cast<std::size_t>(n));
      if (rv < 0) {
        throw Failure{kInternal, std::string("HTTP/2: ") + nghttp2_strerror(static_cast<int>(rv))};
      }
    }
  } catch (const Failure&) {
    // Tell the runtime to stop work on the call (a pull in flight), best effort, no waiting.
    if (!ex.closed &&
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, ex.stream_id, NGHTTP2_CANCEL) == 0) {
      const std::uint8_t* data = nullptr;
      const ssize_t n = nghttp2_session_mem_send(s, &data);
      if (n > 0) {
        (void)::send(fd.get(), data, static_cast<std::size_t>(n), MSG_NOSIGNAL | MSG_DONTWAIT);
      }
    }
    throw;
  }
  return result_of(ex);
}

}  // namespace

UnaryResult unary_call(const UnaryCall& call, std::string_view request) {
  try {
    return exchange(call, request);
  } catch (Failure& failure) {
    return {failure.code, std::move(failure.message), {}};
  }
}

}  // namespace stowage::cri
