#include "http/client.h"

#include <curl/curl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <exception>
#include <mutex>
#include <vector>

#include "base/error.h"
#include "http/curl_errors.h"
#include "http/errors.h"
#include "http/redact.h"
#include "http/request_checks.h"

namespace stowage::http {
namespace {

// A streamed response whose caller chose BodyAction::kBuffer keeps at most this much.
constexpr std::size_t kStreamBufferCap = 1 << 20;
// Never reserve more than this up front on the word of a Content-Length header.
constexpr std::size_t kMaxReserve = 64 << 20;

std::once_flag g_curl_global_init;

void curl_global_once() {
  std::call_once(g_curl_global_init, [] {
    if (const CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT); rc != CURLE_OK) {
      throw_internal(std::string("initialising libcurl: ") + curl_easy_strerror(rc));
    }
  });
}

struct EasyDeleter {
  void operator()(CURL* handle) const { curl_easy_cleanup(handle); }
};
using Easy = std::unique_ptr<CURL, EasyDeleter>;

struct SlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using Slist = std::unique_ptr<curl_slist, SlistDeleter>;

// Everything one curl_easy_perform needs from its callbacks; lives on the caller's stack.
struct Transfer {
  CURL* easy = nullptr;
  const Request* request = nullptr;
  const StreamHandlers* handlers = nullptr;  // null for send()
  ResponseHeadParser head;
  Response response;
  bool head_delivered = false;
  BodyAction action = BodyAction::kBuffer;
  std::size_t buffer_cap = 0;  // zero: unlimited
  std::uint64_t body_bytes = 0;
  std::exception_ptr caller_error;  // thrown by a caller's callback, rethrown unchanged
  std::optional<Error> own_error;   // a limit of ours that stopped the transfer
  bool stopped_by_caller = false;
  bool cancelled = false;
};

void deliver_head(Transfer& t) {
  if (t.head_delivered) {
    return;
  }
  t.head_delivered = true;
  if (t.head.complete()) {
    t.response.status = t.head.status();
    t.response.headers = t.head.headers();
  } else {
    long code = 0;
    curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &code);
    t.response.status = static_cast<int>(code);
  }
  if (t.handlers == nullptr) {
    t.action = BodyAction::kBuffer;
    t.buffer_cap = t.request->max_body_bytes;
  } else {
    t.action = t.handlers->on_head ? t.handlers->on_head(t.response) : BodyAction::kStream;
    t.buffer_cap = kStreamBufferCap;
  }
  if (t.action == BodyAction::kBuffer) {
    if (const auto length = t.response.headers.get("Content-Length")) {
      std::size_t n = 0;
      const auto* end = length->data() + length->size();
      if (std::from_chars(length->data(), end, n).ec == std::errc()) {
        n = std::min(n, kMaxReserve);
        if (t.buffer_cap != 0) {
          n = std::min(n, t.buffer_cap);
        }
        t.response.body.reserve(n);
      }
    }
  }
}

std::size_t on_header(char* data, std::size_t size, std::size_t count, void* user) {
  auto& t = *static_cast<Transfer*>(user);
  const std::size_t bytes = size * count;
  try {
    t.head.feed(std::string_view(data, bytes));
  } catch (...) {
    t.caller_error = std::current_exception();
    return 0;
  }
  return bytes;
}

std::size_t on_write(char* data, std::size_t size, std::size_t count, void* user) {
  auto& t = *static_cast<Transfer*>(user);
  const std::size_t bytes = size * count;
  try {
    deliver_head(t);
    switch (t.action) {
      case BodyAction::kAbort: t.stopped_by_caller = true; return 0;
      case BodyAction::kStream:
        if (t.handlers->on_body && !t.handlers->on_body(std::string_view(data, bytes))) {
          t.stopped_by_caller = true;
          return 0;
        }
        break;
      case BodyAction::kBuffer:
        if (t.buffer_cap != 0 && t.response.body.size() + bytes > t.buffer_cap) {
          if (t.handlers != nullptr) {  // a streamed error document: keep the start
            t.response.body.append(data, t.buffer_cap - t.response.body.size());
            t.stopped_by_caller = true;
            return 0;
          }
          t.own_error.emplace(Code::kResourceExhausted,
                              describe(t.request->method, t.request->url) +
                                  ": response body exceeds the limit of " +
                                  std::to_string(t.buffer_cap) + " bytes");
          return 0;
        }
        t.response.body.append(data, bytes);
        break;
    }
  } catch (...) {
    t.caller_error = std::current_exception();
    return 0;
  }
  t.body_bytes += bytes;
  return bytes;
}

std::size_t on_read(char* buffer, std::size_t size, std::size_t count, void* user) {
  auto& t = *static_cast<Transfer*>(user);
  const std::size_t room = size * count;
  try {
    const auto& source = std::get<BodySource>(t.request->body);
    const std::size_t n = source.read(std::span<char>(buffer, room));
    if (n > room) {
      throw_internal(describe(t.request->method, t.request->url) +
                     ": request body source returned more bytes than asked for");
    }
    return n;
  } catch (...) {
    t.caller_error = std::current_exception();
    return CURL_READFUNC_ABORT;
  }
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto& t = *static_cast<Transfer*>(user);
  if (t.request->stop.stop_requested()) {
    t.cancelled = true;
    return 1;
  }
  return 0;
}

// Builds the error for a failed curl_easy_perform; code_for_curl is the only mapping.
Error transport_error(CURLcode rc, const Transfer& t, const char* error_buffer) {
  std::string message = describe(t.request->method, t.response.url);
  message += ": ";
  if (rc == CURLE_PEER_FAILED_VERIFICATION) {
    message += "TLS verification of the server failed: ";
  } else if (rc == CURLE_SSL_CACERT_BADFILE || rc == CURLE_SSL_CERTPROBLEM) {
    message += "TLS configuration unusable: ";
  }
  message +=
      (error_buffer != nullptr && error_buffer[0] != 0) ? error_buffer : curl_easy_strerror(rc);
  if (t.head_delivered) {
    message += " (after HTTP " + std::to_string(t.response.status) + " and " +
               std::to_string(t.body_bytes) + " bytes of body)";
  }
  return Error(code_for_curl(rc), std::move(message));
}

}  // namespace

struct Client::Impl {
  explicit Impl(ClientOptions o) : options(std::move(o)) {
    curl_global_once();
    share = curl_share_init();
    if (share == nullptr) {
      throw_internal("initialising libcurl: curl_share_init failed");
    }
    curl_share_setopt(share, CURLSHOPT_USERDATA, this);
    curl_share_setopt(share, CURLSHOPT_LOCKFUNC, &Impl::lock);
    curl_share_setopt(share, CURLSHOPT_UNLOCKFUNC, &Impl::unlock);
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  }

  ~Impl() {
    idle.clear();  // easy handles detach from the share before it goes
    curl_share_cleanup(share);
  }

  static void lock(CURL*, curl_lock_data data, curl_lock_access, void* user) {
    static_cast<Impl*>(user)->share_mutexes.at(static_cast<std::size_t>(data)).lock();
  }
  static void unlock(CURL*, curl_lock_data data, void* user) {
    static_cast<Impl*>(user)->share_mutexes.at(static_cast<std::size_t>(data)).unlock();
  }

  Easy acquire() {
    {
      std::lock_guard lock(pool_mutex);
      if (!idle.empty()) {
        Easy easy = std::move(idle.back());
        idle.pop_back();
        return easy;
      }
    }
    Easy easy(curl_easy_init());
    if (!easy) {
      throw Error(Code::kResourceExhausted, "creating a curl handle failed");
    }
    curl_easy_setopt(easy.get(), CURLOPT_SHARE, share);
    return easy;
  }

  void release(Easy easy) {
    // Reset drops every pointer into the finished request but keeps open connections, the
    // share and the TLS session cache.
    curl_easy_reset(easy.get());
    std::lock_guard lock(pool_mutex);
    if (idle.size() < options.max_idle_handles) {
      idle.push_back(std::move(easy));
    }
  }

  const ClientOptions options;
  CURLSH* share = nullptr;
  // One mutex per kind of shared data (curl asks for DNS, SSL session and the share itself).
  std::array<std::mutex, CURL_LOCK_DATA_LAST> share_mutexes;
  std::mutex pool_mutex;  // guards idle
  std::vector<Easy> idle;
};

Client::Client(ClientOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Client::~Client() = default;

Response Client::send(const Request& request) {
  return perform(request, nullptr);
}

Response Client::stream(const Request& request, const StreamHandlers& handlers) {
  return perform(request, &handlers);
}

std::size_t Client::idle_handles() const {
  std::lock_guard lock(impl_->pool_mutex);
  return impl_->idle.size();
}

Response Client::perform(const Request& request, const StreamHandlers* handlers) {
  check_request(request);
  const std::string& method = request.method;

  // Headers (checked by check_request).
  Slist header_list;
  auto append = [&](const std::string& line) {
    curl_slist* head = curl_slist_append(header_list.get(), line.c_str());
    if (head == nullptr) {  // the old list is left intact
      throw Error(Code::kResourceExhausted, describe(method, request.url) + ": out of memory");
    }
    if (head != header_list.get()) {
      (void)header_list.release();
      header_list.reset(head);
    }
  };
  for (const auto& [name, value] : request.headers) {
    std::string line = name;
    line += value.empty() ? ";" : ": ";
    line += value;
    append(line);
  }
  if (!request.headers.contains("Expect")) {
    append("Expect:");  // no 100-continue round trip
  }
  if (!request.headers.contains("Content-Type")) {
    append("Content-Type:");  // curl would otherwise claim form data for in-memory bodies
  }

  Easy easy = impl_->acquire();
  struct Returner {
    Impl& impl;
    Easy& easy;
    ~Returner() {
      if (easy) {
        impl.release(std::move(easy));
      }
    }
  } returner{*impl_, easy};
  CURL* h = easy.get();

  Transfer t;
  t.easy = h;
  t.request = &request;
  t.handlers = handlers;
  t.response.method = method;
  t.response.url = request.url;

  std::array<char, CURL_ERROR_SIZE> error_buffer{};
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error_buffer.data());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  // HTTP/1.1 only: libcurl 7.88's HTTP/2 reports an answer followed by a stream reset (what
  // kube-apiserver sends for a 401 to a POST or PATCH whose body it did not read) as a partial
  // transfer, so the 401 that should make a token be re-read is lost.
  curl_easy_setopt(h, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
  curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_USERAGENT, impl_->options.user_agent.c_str());
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, header_list.get());
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 30L);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 15L);
  if (impl_->options.proxy) {
    curl_easy_setopt(h, CURLOPT_PROXY, impl_->options.proxy->c_str());
  }
  if (impl_->options.receive_buffer_bytes != 0) {
    curl_easy_setopt(h, CURLOPT_BUFFERSIZE, static_cast<long>(impl_->options.receive_buffer_bytes));
  }

  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &on_write);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &t);
  if (request.stop.stop_possible()) {
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, &on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &t);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  }

  // Method and body.
  if (method == "HEAD") {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else if (const auto* text = std::get_if<std::string>(&request.body)) {
    if (text->empty() && body_optional(method)) {
      curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
      if (method != "GET") {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
      }
    } else {
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(text->size()));
      curl_easy_setopt(h, CURLOPT_POSTFIELDS, text->data());
      if (method != "POST") {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
      }
    }
  } else {
    const auto& source = std::get<BodySource>(request.body);
    if (!source.read) {
      throw_invalid(describe(method, request.url) + ": body source without a read function");
    }
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, &on_read);
    curl_easy_setopt(h, CURLOPT_READDATA, &t);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE,
                     source.size ? static_cast<curl_off_t>(*source.size) : curl_off_t{-1});
    if (method != "PUT") {
      curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
    }
  }

  // Time limits.
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(request.timeout.count()));
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(request.connect_timeout.count()));
  if (request.low_speed_limit > 0 && request.low_speed_time.count() > 0) {
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, static_cast<long>(request.low_speed_limit));
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, static_cast<long>(request.low_speed_time.count()));
  }

  // Redirects.
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, request.follow_redirects ? 1L : 0L);
  curl_easy_setopt(h, CURLOPT_MAXREDIRS, static_cast<long>(request.max_redirects));

  // TLS. Blobs are copied by curl, so they need not outlive the setopt call.
  const TlsOptions& tls = request.tls;
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, tls.insecure ? 0L : 1L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, tls.insecure ? 0L : 2L);
  const bool custom_ca = !tls.ca_pem.empty() || !tls.ca_file.empty();
  if (!tls.ca_pem.empty()) {
    curl_blob blob{const_cast<char*>(tls.ca_pem.data()), tls.ca_pem.size(), CURL_BLOB_COPY};
    curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);
  } else if (!tls.ca_file.empty()) {
    curl_easy_setopt(h, CURLOPT_CAINFO, tls.ca_file.c_str());
  }
  if (custom_ca && !tls.also_trust_system_store) {
    curl_easy_setopt(h, CURLOPT_CAPATH, nullptr);
  }
  if (!tls.client_cert_pem.empty()) {
    curl_blob blob{const_cast<char*>(tls.client_cert_pem.data()), tls.client_cert_pem.size(),
                   CURL_BLOB_COPY};
    curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &blob);
    curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
  } else if (!tls.client_cert_file.empty()) {
    curl_easy_setopt(h, CURLOPT_SSLCERT, tls.client_cert_file.c_str());
  }
  if (!tls.client_key_pem.empty()) {
    curl_blob blob{const_cast<char*>(tls.client_key_pem.data()), tls.client_key_pem.size(),
                   CURL_BLOB_COPY};
    curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &blob);
    curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
  } else if (!tls.client_key_file.empty()) {
    curl_easy_setopt(h, CURLOPT_SSLKEY, tls.client_key_file.c_str());
  }

  const CURLcode rc = curl_easy_perform(h);

  if (char* effective = nullptr;
      curl_easy_getinfo(h, CURLINFO_EFFECTIVE_URL, &effective) == CURLE_OK &&
      effective != nullptr) {
    t.response.url = effective;
  }
  if (t.caller_error) {
    std::rethrow_exception(t.caller_error);
  }
  if (t.own_error) {
    throw *t.own_error;
  }
  if (rc == CURLE_OK) {
    deliver_head(t);  // a response without a body never reached on_write
  } else if (rc == CURLE_WRITE_ERROR && t.stopped_by_caller) {
    t.response.aborted = true;
  } else if (t.cancelled) {
    throw Error(Code::kUnavailable, describe(method, t.response.url) + ": cancelled");
  } else {
    throw transport_error(rc, t, error_buffer.data());
  }
  spdlog::debug("http request method={} url={} status={} body_bytes={}{}", method,
                redact_url(t.response.url), t.response.status, t.body_bytes,
                t.response.aborted ? " aborted=true" : "");
  return std::move(t.response);
}

}  // namespace stowage::http
