#include "http/http1_client.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include "base/error.h"
#include "http/http1_protocol.h"
#include "http/redact.h"
#include "http/request_checks.h"

namespace stowage::http {
namespace {

using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// A streamed response whose caller chose BodyAction::kBuffer keeps at most this much.
constexpr std::size_t kStreamBufferCap = 1 << 20;
// Never reserve more than this up front on the word of a Content-Length header.
constexpr std::size_t kMaxReserve = 64 << 20;
constexpr std::size_t kDefaultReceiveBuffer = 16 << 10;
// Request bodies are written in pieces of this size; smaller string bodies share the head's write.
constexpr std::size_t kSendPiece = 64 << 10;
// Waits are cut into slices this long so that a stop request is seen promptly.
constexpr milliseconds kPollSlice{200};
// Connections idle longer than this are not reused (curl's default maximum connection age).
constexpr std::chrono::seconds kMaxIdleAge{118};
// The body of a followed redirect is read (to keep the connection) only up to this size.
constexpr std::uint64_t kMaxDrainBytes = 64 << 10;
// A connect timeout of zero means this, as in curl.
constexpr milliseconds kDefaultConnectTimeout{300'000};
constexpr std::uint16_t kDefaultProxyPort = 1080;
constexpr int kKeepIdleSeconds = 30;
constexpr int kKeepIntervalSeconds = 15;
constexpr std::size_t kMaxTlsContexts = 32;

// Methods that may be sent twice with the effect of once (RFC 9110 section 9.2.2).
bool idempotent(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "PUT" || method == "DELETE" ||
         method == "OPTIONS" || method == "TRACE";
}

std::string errno_text(int err) {
  char buffer[256];
  return ::strerror_r(err, buffer, sizeof(buffer));
}

// A transport failure inside one transfer; perform() turns it into a stowage::Error that names
// the request. Distinct from stowage::Error so that errors thrown by a caller's callbacks are
// never mistaken for ours.
struct Failure {
  Code code;
  std::string what;
  bool cancelled = false;
  // The peer closed or reset the connection (end of stream, ECONNRESET, EPIPE).
  bool connection_lost = false;
};

[[noreturn]] void fail(Code code, std::string what) {
  throw Failure{code, std::move(what)};
}

[[noreturn]] void fail_io(std::string_view what, int err) {
  throw Failure{Code::kUnavailable, std::string(what) + errno_text(err), false,
                err == ECONNRESET || err == EPIPE};
}

// The most relevant queued OpenSSL error as text (and the queue cleared); fallback if none.
std::string openssl_error(std::string_view fallback) {
  unsigned long last = 0;
  while (const unsigned long e = ERR_get_error()) {
    last = e;
  }
  if (last == 0) {
    return std::string(fallback);
  }
  char buffer[256];
  ERR_error_string_n(last, buffer, sizeof(buffer));
  // "error:0A000086:SSL routines::certificate verify failed" -> the part after the last ':'.
  std::string_view text(buffer);
  if (const auto colon = text.rfind(':'); colon != std::string_view::npos) {
    text.remove_prefix(colon + 1);
  }
  return std::string(text);
}

[[noreturn]] void fail_tls_config(std::string what) {
  // CURLE_SSL_CACERT_BADFILE and CURLE_SSL_CERTPROBLEM in the curl client: InvalidArgument.
  fail(Code::kInvalidArgument, "TLS configuration unusable: " + what);
}

// Time limits, cancellation and the low-speed check of one transfer (redirects included).
class Deadlines {
 public:
  explicit Deadlines(const Request& request)
      : request_(request), start_(SteadyClock::now()), window_start_(start_) {
    if (request.timeout.count() > 0) {
      deadline_ = start_ + request.timeout;
    }
  }

  milliseconds connect_timeout() const {
    return request_.connect_timeout.count() > 0 ? request_.connect_timeout : kDefaultConnectTimeout;
  }

  // Starts the low-speed check (it covers the transfer, not connection setup).
  void arm_low_speed() {
    armed_ = request_.low_speed_limit > 0 && request_.low_speed_time.count() > 0;
    window_start_ = SteadyClock::now();
    window_bytes_ = bytes_;
  }
  // Stops it while the next connection (a redirect hop, a retry) is set up.
  void disarm_low_speed() { armed_ = false; }

  void moved(std::size_t bytes) { bytes_ += bytes; }

  // Throws when the transfer must end now: stop requested, total timeout, too slow.
  void check() {
    if (request_.stop.stop_requested()) {
      throw Failure{Code::kUnavailable, "cancelled", true};
    }
    const auto now = SteadyClock::now();
    if (deadline_ && now >= *deadline_) {
      fail(Code::kDeadlineExceeded,
           "timed out after " + std::to_string(request_.timeout.count()) + " milliseconds");
    }
    if (armed_ && now - window_start_ >= request_.low_speed_time) {
      const double seconds = std::chrono::duration<double>(now - window_start_).count();
      if (static_cast<double>(bytes_ - window_bytes_) <
          static_cast<double>(request_.low_speed_limit) * seconds) {
        fail(Code::kDeadlineExceeded,
             "transfer slower than " + std::to_string(request_.low_speed_limit) + " bytes/s for " +
                 std::to_string(request_.low_speed_time.count()) + " seconds");
      }
      window_start_ = now;
      window_bytes_ = bytes_;
    }
  }

  // Calls ready_within(slice) with slices of at most kPollSlice until it returns true. False
  // when phase_deadline passed first; throws for the limits check() enforces.
  template <typename ReadyWithin>
  bool wait_for(ReadyWithin&& ready_within,
                std::optional<SteadyClock::time_point> phase_deadline = {}) {
    while (true) {
      check();
      const auto now = SteadyClock::now();
      if (phase_deadline && now >= *phase_deadline) {
        return false;
      }
      auto slice = kPollSlice;
      for (const auto& limit : {deadline_, phase_deadline}) {
        if (limit) {
          slice = std::min(slice, std::chrono::ceil<milliseconds>(*limit - now));
        }
      }
      if (ready_within(std::max(slice, milliseconds(1)))) {
        return true;
      }
    }
  }

  // Waits until fd is ready for events; as wait_for().
  bool wait(int fd, short events, std::optional<SteadyClock::time_point> phase_deadline = {}) {
    return wait_for(
        [&](milliseconds slice) {
          pollfd p{fd, events, 0};
          const int rc = ::poll(&p, 1, static_cast<int>(slice.count()));
          if (rc < 0 && errno != EINTR) {
            fail(Code::kUnavailable, "poll failed: " + errno_text(errno));
          }
          return rc > 0;
        },
        phase_deadline);
  }

 private:
  const Request& request_;
  SteadyClock::time_point start_;
  std::optional<SteadyClock::time_point> deadline_;
  bool armed_ = false;
  std::uint64_t bytes_ = 0;
  SteadyClock::time_point window_start_;
  std::uint64_t window_bytes_ = 0;
};

// --- A socket BIO that sends with MSG_NOSIGNAL, so a peer gone away never raises SIGPIPE. ---

int bio_write(BIO* bio, const char* data, int length) {
  BIO_clear_retry_flags(bio);
  const int fd = static_cast<int>(reinterpret_cast<std::intptr_t>(BIO_get_data(bio)));
  const ssize_t n = ::send(fd, data, static_cast<std::size_t>(length), MSG_NOSIGNAL);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
    BIO_set_retry_write(bio);
  }
  return static_cast<int>(n);
}

int bio_read(BIO* bio, char* data, int length) {
  BIO_clear_retry_flags(bio);
  const int fd = static_cast<int>(reinterpret_cast<std::intptr_t>(BIO_get_data(bio)));
  const ssize_t n = ::recv(fd, data, static_cast<std::size_t>(length), 0);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
    BIO_set_retry_read(bio);
  }
  return static_cast<int>(n);
}

long bio_ctrl(BIO*, int command, long, void*) {
  return command == BIO_CTRL_FLUSH ? 1 : 0;
}

int bio_create(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

const BIO_METHOD* socket_bio_method() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "stowage socket");
    if (m == nullptr || BIO_meth_set_write(m, bio_write) != 1 ||
        BIO_meth_set_read(m, bio_read) != 1 || BIO_meth_set_ctrl(m, bio_ctrl) != 1 ||
        BIO_meth_set_create(m, bio_create) != 1) {
      throw_internal("initialising OpenSSL: cannot create the socket BIO method");
    }
    return m;
  }();
  return method;
}

struct SslCtxDeleter {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
using SslCtx = std::shared_ptr<SSL_CTX>;

struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
using Bio = std::unique_ptr<BIO, BioDeleter>;

Bio memory_bio(const std::string& pem) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) {
    fail(Code::kResourceExhausted, "out of memory");
  }
  return bio;
}

// Refuses to prompt for the pass phrase of an encrypted key.
int no_passphrase(char*, int, int, void*) {
  return 0;
}

std::string read_whole_file(const std::string& path, std::string_view what) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    fail_tls_config("cannot read " + std::string(what) + " " + path + ": " + errno_text(errno));
  }
  std::string out;
  char buffer[4096];
  std::size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof(buffer), f)) > 0) {
    out.append(buffer, n);
  }
  std::fclose(f);
  return out;
}

struct X509InfosDeleter {
  void operator()(STACK_OF(X509_INFO) * infos) const {
    sk_X509_INFO_pop_free(infos, X509_INFO_free);
  }
};

void use_ca_pem(SSL_CTX* ctx, const std::string& pem) {
  Bio bio = memory_bio(pem);
  // Reads every block (TRUSTED CERTIFICATE ones too) and fails on a damaged one, rather than
  // trusting only the part of a bundle before it.
  std::unique_ptr<STACK_OF(X509_INFO), X509InfosDeleter> infos(
      PEM_X509_INFO_read_bio(bio.get(), nullptr, no_passphrase, nullptr));
  if (!infos) {
    fail_tls_config("malformed PEM in the CA data: " + openssl_error("unreadable"));
  }
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  int added = 0;
  for (int i = 0; i < sk_X509_INFO_num(infos.get()); ++i) {
    X509* cert = sk_X509_INFO_value(infos.get(), i)->x509;
    if (cert == nullptr) {
      continue;
    }
    if (X509_STORE_add_cert(store, cert) != 1) {
      fail_tls_config("cannot add a CA certificate: " + openssl_error("unknown error"));
    }
    ++added;
  }
  if (added == 0) {
    fail_tls_config("no PEM certificate in the CA data");
  }
  // A CA the caller names is a trust anchor even when it is an intermediate, as curl and Go
  // treat it: the chain need not reach a self-signed root.
  X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN);
}

void use_client_certificate(SSL_CTX* ctx, const std::string& pem) {
  Bio bio = memory_bio(pem);
  X509* cert = PEM_read_bio_X509(bio.get(), nullptr, no_passphrase, nullptr);
  if (cert == nullptr) {
    fail_tls_config("client certificate unusable: " + openssl_error("no PEM certificate"));
  }
  const int ok = SSL_CTX_use_certificate(ctx, cert);
  X509_free(cert);
  if (ok != 1) {
    fail_tls_config("client certificate unusable: " + openssl_error("rejected"));
  }
  while (X509* extra = PEM_read_bio_X509(bio.get(), nullptr, no_passphrase, nullptr)) {
    if (SSL_CTX_add0_chain_cert(ctx, extra) != 1) {
      X509_free(extra);
      fail_tls_config("client certificate chain unusable: " + openssl_error("rejected"));
    }
  }
  ERR_clear_error();
}

void use_client_key(SSL_CTX* ctx, const std::string& pem) {
  Bio bio = memory_bio(pem);
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr);
  if (key == nullptr) {
    fail_tls_config("client key unusable: " + openssl_error("no PEM private key"));
  }
  const int ok = SSL_CTX_use_PrivateKey(ctx, key);
  EVP_PKEY_free(key);
  if (ok != 1) {
    fail_tls_config("client key unusable: " + openssl_error("rejected"));
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    fail_tls_config("client key does not match the certificate: " + openssl_error("mismatch"));
  }
}

SslCtx build_tls_context(const TlsOptions& tls) {
  ERR_clear_error();
  SslCtx ctx(SSL_CTX_new(TLS_client_method()), SslCtxDeleter{});
  if (!ctx) {
    fail(Code::kResourceExhausted, "creating a TLS context: " + openssl_error("out of memory"));
  }
  SSL_CTX* c = ctx.get();
  SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
  SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // A read-to-close body may end without close_notify; the framing decides whether it is whole.
  SSL_CTX_set_options(c, SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_CTX_set_default_passwd_cb(c, no_passphrase);
  static constexpr unsigned char kAlpn[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  SSL_CTX_set_alpn_protos(c, kAlpn, sizeof(kAlpn));
  SSL_CTX_set_verify(c, tls.insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, nullptr);
  if (!tls.insecure) {
    const bool custom_ca = !tls.ca_pem.empty() || !tls.ca_file.empty();
    if (!tls.ca_pem.empty()) {
      use_ca_pem(c, tls.ca_pem);
    } else if (!tls.ca_file.empty()) {
      use_ca_pem(c, read_whole_file(tls.ca_file, "CA file"));
    }
    if (!custom_ca || tls.also_trust_system_store) {
      SSL_CTX_set_default_verify_paths(c);  // a missing system store just trusts nothing more
      ERR_clear_error();
    }
  }
  const std::string cert = !tls.client_cert_pem.empty() ? tls.client_cert_pem
                           : !tls.client_cert_file.empty()
                               ? read_whole_file(tls.client_cert_file, "client certificate")
                               : std::string();
  if (!cert.empty()) {
    use_client_certificate(c, cert);
    // Without a key of its own the certificate's PEM may hold it, as curl assumes.
    const std::string key = !tls.client_key_pem.empty() ? tls.client_key_pem
                            : !tls.client_key_file.empty()
                                ? read_whole_file(tls.client_key_file, "client key")
                                : cert;
    use_client_key(c, key);
  }
  return ctx;
}

// The cache key of a TlsOptions: a length-prefixed rendering of every field, and the identity of
// each file it names as it is now (device, inode, size, modification time), so that a file
// rewritten or replaced on disk (a rotated client certificate) gets a fresh context.
std::string tls_key(const TlsOptions& tls) {
  std::string key = tls.insecure ? "1" : "0";
  key += tls.also_trust_system_store ? "1" : "0";
  for (const std::string* field :
       {&tls.ca_file, &tls.ca_pem, &tls.client_cert_file, &tls.client_key_file,
        &tls.client_cert_pem, &tls.client_key_pem}) {
    key += std::to_string(field->size());
    key += ':';
    key += *field;
  }
  for (const std::string* path : {&tls.ca_file, &tls.client_cert_file, &tls.client_key_file}) {
    struct stat st {};
    if (path->empty() || ::stat(path->c_str(), &st) != 0) {
      key += "|-";  // building the context reports an unreadable file
      continue;
    }
    for (const auto n :
         {static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino),
          static_cast<std::uint64_t>(st.st_size), static_cast<std::uint64_t>(st.st_mtim.tv_sec),
          static_cast<std::uint64_t>(st.st_mtim.tv_nsec)}) {
      key += '|';
      key += std::to_string(n);
    }
  }
  return key;
}

// The bound on setting a connection up past TCP connect (proxy CONNECT, TLS handshake), as
// curl's connect timeout bounds them; what names the step in the timeout message.
struct SetupDeadline {
  SteadyClock::time_point at;
  std::string what;
};

// One TCP connection, optionally with TLS on top. Owned by one transfer at a time or the pool.
class Connection {
 public:
  explicit Connection(int fd) : fd_(fd) {}
  ~Connection() {
    if (ssl_ != nullptr) {
      SSL_free(ssl_);
    }
    ::close(fd_);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  int fd() const { return fd_; }
  bool reused = false;
  std::string key;
  SteadyClock::time_point idle_since;

  // Runs the TLS handshake; host is verified unless tls.insecure.
  void start_tls(SSL_CTX* ctx, const std::string& host, const TlsOptions& tls, Deadlines& limits,
                 SteadyClock::time_point setup_deadline) {
    const SetupDeadline setup{setup_deadline, "TLS handshake with " + host};
    ERR_clear_error();
    ssl_ = SSL_new(ctx);
    BIO* bio = ssl_ == nullptr ? nullptr : BIO_new(socket_bio_method());
    if (bio == nullptr) {
      fail(Code::kResourceExhausted, "creating a TLS session: " + openssl_error("out of memory"));
    }
    BIO_set_data(bio, reinterpret_cast<void*>(static_cast<std::intptr_t>(fd_)));
    SSL_set_bio(ssl_, bio, bio);
    const bool ip = is_ip_literal(host);
    if (!ip) {
      SSL_set_tlsext_host_name(ssl_, host.c_str());
    }
    if (!tls.insecure) {
      const int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), host.c_str())
                        : SSL_set1_host(ssl_, host.c_str());
      if (ok != 1) {
        fail(Code::kInvalidArgument, "cannot verify the host name " + host);
      }
    }
    SSL_set_connect_state(ssl_);
    while (true) {
      ERR_clear_error();
      errno = 0;
      const int rc = SSL_connect(ssl_);
      if (rc == 1) {
        break;
      }
      const int err = SSL_get_error(ssl_, rc);
      const int saved_errno = errno;
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        await(err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, limits, &setup);
        continue;
      }
      const long verify = SSL_get_verify_result(ssl_);
      if (!tls.insecure && verify != X509_V_OK) {
        ERR_clear_error();
        std::string reason = X509_verify_cert_error_string(verify);
        if (verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH) {
          reason += ": the certificate is not valid for " + host;
        }
        // CURLE_PEER_FAILED_VERIFICATION in the curl client: Unauthenticated.
        fail(Code::kUnauthenticated, "TLS verification of the server failed: " + reason);
      }
      std::string fallback = err == SSL_ERROR_SYSCALL && saved_errno != 0
                                 ? errno_text(saved_errno)
                                 : "connection closed during the handshake";
      fail(Code::kUnavailable,
           "TLS handshake with " + host + " failed: " + openssl_error(fallback));
    }
    if (!tls.insecure && SSL_get_verify_result(ssl_) != X509_V_OK) {
      fail(Code::kUnauthenticated,
           "TLS verification of the server failed: " +
               std::string(X509_verify_cert_error_string(SSL_get_verify_result(ssl_))));
    }
  }

  // Writes all of data. setup: a connection-setup step with its own deadline.
  void write_all(std::string_view data, Deadlines& limits, const SetupDeadline* setup = nullptr) {
    while (!data.empty()) {
      limits.check();
      std::size_t n = 0;
      if (ssl_ != nullptr) {
        ERR_clear_error();
        errno = 0;
        const int rc = SSL_write_ex(ssl_, data.data(), data.size(), &n);
        if (rc != 1) {
          const int err = SSL_get_error(ssl_, rc);
          const int saved_errno = errno;
          if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
            await(err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, limits, setup);
            continue;
          }
          if (err == SSL_ERROR_SYSCALL && saved_errno != 0 && ERR_peek_error() == 0) {
            fail_io("send failed: ", saved_errno);
          }
          fail(Code::kUnavailable,
               "send failed: " +
                   openssl_error(saved_errno != 0 ? errno_text(saved_errno) : "connection closed"));
        }
      } else {
        const ssize_t rc = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
        if (rc < 0) {
          if (errno == EAGAIN || errno == EWOULDBLOCK) {
            await(POLLOUT, limits, setup);
            continue;
          }
          if (errno == EINTR) {
            continue;
          }
          fail_io("send failed: ", errno);
        }
        n = static_cast<std::size_t>(rc);
      }
      limits.moved(n);
      data.remove_prefix(n);
    }
  }

  // Reads what is available (waiting for at least one byte); 0 at the end of the stream.
  // setup: as for write_all().
  std::size_t read_some(char* buffer, std::size_t size, Deadlines& limits,
                        const SetupDeadline* setup = nullptr) {
    while (true) {
      limits.check();
      if (ssl_ != nullptr) {
        ERR_clear_error();
        errno = 0;
        std::size_t n = 0;
        const int rc = SSL_read_ex(ssl_, buffer, size, &n);
        if (rc == 1) {
          limits.moved(n);
          return n;
        }
        const int err = SSL_get_error(ssl_, rc);
        const int saved_errno = errno;
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
          await(err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, limits, setup);
          continue;
        }
        if (err == SSL_ERROR_ZERO_RETURN ||
            (err == SSL_ERROR_SYSCALL && saved_errno == 0 && ERR_peek_error() == 0)) {
          return 0;
        }
        if (err == SSL_ERROR_SYSCALL && saved_errno != 0 && ERR_peek_error() == 0) {
          fail_io("receive failed: ", saved_errno);
        }
        fail(Code::kUnavailable,
             "receive failed: " +
                 openssl_error(saved_errno != 0 ? errno_text(saved_errno) : "TLS error"));
      }
      const ssize_t rc = ::recv(fd_, buffer, size, 0);
      if (rc >= 0) {
        limits.moved(static_cast<std::size_t>(rc));
        return static_cast<std::size_t>(rc);
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        await(POLLIN, limits, setup);
      } else if (errno != EINTR) {
        fail_io("receive failed: ", errno);
      }
    }
  }

  // Bytes OpenSSL has read from the socket and decrypted but nobody has taken yet.
  bool holds_tls_bytes() const { return ssl_ != nullptr && SSL_pending(ssl_) > 0; }

  // False when an idle connection was closed by the peer or holds unexpected bytes.
  bool still_idle() {
    if (holds_tls_bytes()) {
      return false;
    }
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 0) == 0) {
      return true;
    }
    if ((p.revents & (POLLERR | POLLHUP | POLLNVAL)) != 0) {
      return false;
    }
    // End of stream, or bytes nobody asked for; for TLS, perhaps only a late session ticket.
    return ssl_ != nullptr && only_tls_housekeeping();
  }

  // True when the peer has sent something (a response, the end of the stream) while the request
  // is still being written; does not wait.
  bool peer_spoke() {
    if (holds_tls_bytes()) {
      return true;
    }
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0) {
      return false;
    }
    return ssl_ == nullptr || !only_tls_housekeeping();
  }

 private:
  // After poll() found the socket readable: true when it held only TLS records without
  // application data or an end (a TLS 1.3 session ticket), which leave the connection as it was.
  bool only_tls_housekeeping() {
    ERR_clear_error();
    char byte = 0;
    std::size_t n = 0;
    const int rc = SSL_peek_ex(ssl_, &byte, 1, &n);
    const bool housekeeping = rc != 1 && SSL_get_error(ssl_, rc) == SSL_ERROR_WANT_READ;
    ERR_clear_error();
    return housekeeping;
  }

  // Waits for events on the socket; past a setup step's deadline, fails with kDeadlineExceeded.
  void await(short events, Deadlines& limits, const SetupDeadline* setup) {
    if (!limits.wait(fd_, events, setup != nullptr ? std::optional(setup->at) : std::nullopt)) {
      fail(Code::kDeadlineExceeded, setup->what + " timed out after " +
                                        std::to_string(limits.connect_timeout().count()) +
                                        " milliseconds");
    }
  }

  int fd_;
  SSL* ssl_ = nullptr;
};

// A proxy to go through, resolved for one target URL.
struct Proxy {
  Http1Url url;
  std::string authorization;  // "Basic ..." or empty
  std::string key;            // for connection reuse
};

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? std::string() : std::string(value);
}

std::string lower_copy(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// True when address lies in the CIDR block "network/bits" (IPv4 or IPv6).
bool in_cidr(std::string_view host, std::string_view block) {
  const auto slash = block.find('/');
  const std::string network(block.substr(0, slash));
  unsigned bits = 0;
  const auto bits_text = block.substr(slash + 1);
  if (std::from_chars(bits_text.data(), bits_text.data() + bits_text.size(), bits).ec !=
      std::errc()) {
    return false;
  }
  unsigned char a[16];
  unsigned char b[16];
  const std::string h(host);
  std::size_t length = 4;
  if (::inet_pton(AF_INET, h.c_str(), a) != 1 || ::inet_pton(AF_INET, network.c_str(), b) != 1) {
    length = 16;
    if (::inet_pton(AF_INET6, h.c_str(), a) != 1 ||
        ::inet_pton(AF_INET6, network.c_str(), b) != 1) {
      return false;
    }
  }
  if (bits > length * 8) {
    return false;
  }
  for (std::size_t i = 0; i < length && bits > 0; ++i) {
    const unsigned take = std::min(bits, 8U);
    const auto mask = static_cast<unsigned char>(0xff << (8 - take));
    if ((a[i] & mask) != (b[i] & mask)) {
      return false;
    }
    bits -= take;
  }
  return true;
}

// curl's no_proxy rules: a comma or space separated list; "*" matches every host; an entry
// matches that host and its subdomains (a leading dot is optional); IP entries may be CIDR blocks.
bool no_proxy_matches(std::string_view list, std::string_view host_in) {
  std::string host = lower_copy(host_in);
  if (!host.empty() && host.back() == '.') host.pop_back();
  std::size_t at = 0;
  while (at < list.size()) {
    const auto end = std::min(list.find_first_of(", \t", at), list.size());
    std::string entry = lower_copy(list.substr(at, end - at));
    at = end + 1;
    if (entry.empty()) continue;
    if (entry == "*") return true;
    if (entry.front() == '[' && entry.find(']') != std::string::npos) {
      entry = entry.substr(1, entry.find(']') - 1);
    }
    if (entry.find('/') != std::string::npos) {
      if (in_cidr(host, entry)) return true;
      continue;
    }
    if (entry.front() == '.') entry.erase(0, 1);
    if (!entry.empty() && entry.back() == '.') entry.pop_back();
    if (entry.empty()) continue;
    if (host == entry || (host.size() > entry.size() && host.ends_with(entry) &&
                          host[host.size() - entry.size() - 1] == '.')) {
      return true;
    }
  }
  return false;
}

void set_socket_options(int fd) {
  const int one = 1;
  const int idle = kKeepIdleSeconds;
  const int interval = kKeepIntervalSeconds;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval));
}

std::string address_text(const sockaddr* address) {
  char text[INET6_ADDRSTRLEN] = "?";
  if (address->sa_family == AF_INET) {
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(address)->sin_addr, text,
                sizeof(text));
  } else if (address->sa_family == AF_INET6) {
    ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr, text,
                sizeof(text));
  }
  return text;
}

struct AddrinfoDeleter {
  void operator()(addrinfo* a) const { ::freeaddrinfo(a); }
};
using Addresses = std::unique_ptr<addrinfo, AddrinfoDeleter>;

// One getaddrinfo call and its outcome, shared between the resolver thread and the transfer
// waiting for it, so that a transfer that gives up leaves the thread valid state to write to.
struct Resolution {
  std::mutex mutex;  // guards done, rc, error and addresses; done_changed signals done
  std::condition_variable done_changed;
  bool done = false;
  int rc = 0;
  int error = 0;  // errno, for EAI_SYSTEM
  Addresses addresses;
};

void run_getaddrinfo(const std::string& host, const std::string& port, int flags,
                     Resolution& into) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | flags;
  addrinfo* found = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found);
  const int error = errno;
  std::lock_guard lock(into.mutex);
  into.rc = rc;
  into.error = error;
  into.addresses.reset(found);
  into.done = true;
}

// The addresses of host. getaddrinfo cannot be interrupted, so a name (not an address literal)
// is resolved on a detached thread of its own while the transfer waits in slices that honour a
// stop request, the total timeout and the connect timeout.
Addresses resolve(const std::string& host, const std::string& port, Deadlines& limits) {
  auto resolution = std::make_shared<Resolution>();
  if (is_ip_literal(host)) {
    run_getaddrinfo(host, port, AI_NUMERICHOST, *resolution);
  } else {
    try {
      std::thread([resolution, host, port] {
        run_getaddrinfo(host, port, 0, *resolution);
        resolution->done_changed.notify_all();
      }).detach();
    } catch (const std::system_error& e) {
      fail(Code::kResourceExhausted,
           "could not resolve host " + host + ": cannot start a resolver thread: " + e.what());
    }
    const bool resolved = limits.wait_for(
        [&](milliseconds slice) {
          std::unique_lock lock(resolution->mutex);
          return resolution->done_changed.wait_for(lock, slice, [&] { return resolution->done; });
        },
        SteadyClock::now() + limits.connect_timeout());
    if (!resolved) {
      fail(Code::kDeadlineExceeded, "resolving host " + host + " timed out after " +
                                        std::to_string(limits.connect_timeout().count()) +
                                        " milliseconds");
    }
  }
  std::lock_guard lock(resolution->mutex);
  if (resolution->rc != 0) {
    fail(Code::kUnavailable, "could not resolve host " + host + ": " +
                                 (resolution->rc == EAI_SYSTEM ? errno_text(resolution->error)
                                                               : ::gai_strerror(resolution->rc)));
  }
  return std::move(resolution->addresses);
}

// Resolves host and connects to each address in turn, each attempt within connect_timeout.
std::unique_ptr<Connection> connect_tcp(const std::string& host, std::uint16_t port,
                                        Deadlines& limits) {
  const std::string port_text = std::to_string(port);
  const Addresses addresses = resolve(host, port_text, limits);
  const addrinfo* found = addresses.get();
  std::string last_error = "no address";
  bool all_timed_out = true;
  for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
    const std::string where = address_text(a->ai_addr) + " port " + port_text;
    const int fd = ::socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      last_error = "socket for " + where + " failed: " + errno_text(errno);
      all_timed_out = false;
      continue;
    }
    auto connection = std::make_unique<Connection>(fd);
    set_socket_options(fd);
    int err = 0;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      err = errno;
      if (err == EINPROGRESS || err == EINTR) {
        const auto until = SteadyClock::now() + limits.connect_timeout();
        if (!limits.wait(fd, POLLOUT, until)) {
          last_error = "connect to " + where + " timed out after " +
                       std::to_string(limits.connect_timeout().count()) + " milliseconds";
          continue;
        }
        socklen_t length = sizeof(err);
        if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &length) != 0) {
          err = errno;
        }
      }
    }
    if (err == 0) {
      return connection;
    }
    all_timed_out = false;
    last_error = "failed to connect to " + where + ": " + errno_text(err);
  }
  fail(all_timed_out && found != nullptr ? Code::kDeadlineExceeded : Code::kUnavailable,
       last_error);
}

// Asks the proxy for a tunnel to target, within the setup deadline. The answer is read only as
// far as the end of its head: what follows a 2xx is the tunnel, and a refusal's body (of a length
// that need not be known on a connection the proxy keeps open) is not worth waiting for; the
// connection is dropped instead.
void open_tunnel(Connection& connection, const Http1Url& target, const Proxy& proxy,
                 const std::string& user_agent, Deadlines& limits,
                 SteadyClock::time_point setup_deadline) {
  const SetupDeadline setup{setup_deadline,
                            "proxy " + proxy.url.host_port() + " CONNECT to " + target.host_port()};
  std::string head =
      "CONNECT " + target.host_port() + " HTTP/1.1\r\nHost: " + target.host_port() + "\r\n";
  if (!proxy.authorization.empty()) {
    head += "Proxy-Authorization: " + proxy.authorization + "\r\n";
  }
  if (!user_agent.empty()) {
    head += "User-Agent: " + user_agent + "\r\n";
  }
  head += "\r\n";
  connection.write_all(head, limits, &setup);
  ResponseDecoder decoder(false, true);
  try {
    while (!decoder.head_complete()) {
      // One byte at a time: nothing past the head may be taken.
      char byte = 0;
      if (connection.read_some(&byte, 1, limits, &setup) == 0) {
        decoder.finish();  // throws: the head is not complete
      }
      std::string_view body;
      decoder.feed(std::string_view(&byte, 1), &body);
    }
  } catch (const Error& e) {
    fail(Code::kUnavailable, "proxy " + proxy.url.host_port() + ": " + e.what());
  }
  if (decoder.status() < 200 || decoder.status() >= 300) {
    fail(Code::kUnavailable, "proxy " + proxy.url.host_port() + " refused CONNECT to " +
                                 target.host_port() + ": HTTP " + std::to_string(decoder.status()));
  }
}

// What a caller's transfer has seen so far; lives on perform()'s stack.
struct Transfer {
  const Request* request = nullptr;
  const StreamHandlers* handlers = nullptr;  // null for send()
  Response response;
  bool head_delivered = false;
  BodyAction action = BodyAction::kBuffer;
  std::size_t buffer_cap = 0;  // zero: unlimited
  std::uint64_t body_bytes = 0;
};

void deliver_head(Transfer& t, int status, const Headers& headers) {
  t.head_delivered = true;
  t.response.status = status;
  t.response.headers = headers;
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

// Hands one body piece to the caller; false when the caller stopped the transfer.
bool deliver_body(Transfer& t, std::string_view data) {
  switch (t.action) {
    case BodyAction::kAbort: return false;
    case BodyAction::kStream:
      if (t.handlers->on_body && !t.handlers->on_body(data)) {
        return false;
      }
      break;
    case BodyAction::kBuffer:
      if (t.buffer_cap != 0 && t.response.body.size() + data.size() > t.buffer_cap) {
        if (t.handlers != nullptr) {  // a streamed error document: keep the start
          t.response.body.append(data.substr(0, t.buffer_cap - t.response.body.size()));
          return false;
        }
        throw Error(Code::kResourceExhausted, describe(t.request->method, t.response.url) +
                                                  ": response body exceeds the limit of " +
                                                  std::to_string(t.buffer_cap) + " bytes");
      }
      t.response.body.append(data);
      break;
  }
  t.body_bytes += data.size();
  return true;
}

// One request of a transfer: the URL, the method and whether the body goes along.
struct Hop {
  std::string url_text;
  Http1Url url;
  std::string method;
  bool send_body = true;
  bool send_credentials = true;  // false once redirected to another scheme, host or port
};

// How one hop ended.
struct HopResult {
  bool finished = false;                // the response was delivered (or the caller stopped it)
  std::optional<std::string> location;  // a redirect to follow
  int status = 0;
};

bool is_followed_redirect(int status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

}  // namespace

struct Http1Client::Impl {
  explicit Impl(Http1ClientOptions o) : options(std::move(o)) {
    if (options.receive_buffer_bytes == 0) {
      options.receive_buffer_bytes = kDefaultReceiveBuffer;
    }
    (void)socket_bio_method();
  }

  SslCtx tls_context(const TlsOptions& tls) {
    const std::string key = tls_key(tls);
    {
      std::lock_guard lock(tls_mutex);
      if (const auto it = tls_contexts.find(key); it != tls_contexts.end()) {
        return it->second;
      }
    }
    SslCtx ctx = build_tls_context(tls);  // outside the lock: may read files
    std::lock_guard lock(tls_mutex);
    if (tls_contexts.size() >= kMaxTlsContexts) {
      tls_contexts.clear();  // in-use contexts live on in their connections
    }
    return tls_contexts.emplace(key, ctx).first->second;
  }

  std::optional<Proxy> proxy_for(const Http1Url& target) const {
    std::string text;
    if (options.proxy) {
      text = *options.proxy;
    } else if (target.tls()) {
      text = env("https_proxy");
      if (text.empty()) text = env("HTTPS_PROXY");
    } else {
      text = env("http_proxy");  // curl ignores HTTP_PROXY (a CGI environment sets it)
    }
    if (!options.proxy && text.empty()) {
      text = env("all_proxy");
      if (text.empty()) text = env("ALL_PROXY");
    }
    if (text.empty()) {
      return std::nullopt;
    }
    std::string no_proxy = env("no_proxy");
    if (no_proxy.empty()) no_proxy = env("NO_PROXY");
    if (no_proxy_matches(no_proxy, target.host)) {
      return std::nullopt;
    }
    if (text.find("://") == std::string::npos) {
      text = "http://" + text;
    }
    auto url = parse_http1_url(text);
    if (!url || url->tls()) {
      fail(Code::kInvalidArgument,
           "unsupported proxy " + redact_url(text) + " (only http:// proxies are supported)");
    }
    Proxy proxy;
    if (!url->explicit_port) {
      url->port = kDefaultProxyPort;
    }
    if (url->has_userinfo) {
      proxy.authorization = basic_credentials(url->user, url->password);
    }
    proxy.key = text;
    proxy.url = std::move(*url);
    return proxy;
  }

  // An idle connection for key that still looks usable, or null.
  std::unique_ptr<Connection> take_idle(const std::string& key) {
    std::vector<std::unique_ptr<Connection>> discard;  // closed outside the lock
    std::unique_ptr<Connection> found;
    {
      std::lock_guard lock(pool_mutex);
      const auto now = SteadyClock::now();
      for (auto it = idle.begin(); it != idle.end();) {
        if (now - (*it)->idle_since > kMaxIdleAge) {
          discard.push_back(std::move(*it));
          it = idle.erase(it);
        } else {
          ++it;
        }
      }
      for (auto it = idle.rbegin(); it != idle.rend(); ++it) {
        if ((*it)->key == key) {
          found = std::move(*it);
          idle.erase(std::next(it).base());
          break;
        }
      }
    }
    while (found && !found->still_idle()) {
      discard.push_back(std::move(found));
      found = take_idle_unchecked(key);
    }
    if (found) {
      found->reused = true;
    }
    return found;
  }

  std::unique_ptr<Connection> take_idle_unchecked(const std::string& key) {
    std::lock_guard lock(pool_mutex);
    for (auto it = idle.rbegin(); it != idle.rend(); ++it) {
      if ((*it)->key == key) {
        auto found = std::move(*it);
        idle.erase(std::next(it).base());
        return found;
      }
    }
    return nullptr;
  }

  void give_back(std::unique_ptr<Connection> connection) {
    std::vector<std::unique_ptr<Connection>> discard;
    connection->idle_since = SteadyClock::now();
    std::lock_guard lock(pool_mutex);
    idle.push_back(std::move(connection));
    while (idle.size() > options.max_idle_connections) {
      discard.push_back(std::move(idle.front()));
      idle.pop_front();
    }
  }

  // A connection to the hop's origin, through the proxy if any, TLS established.
  std::unique_ptr<Connection> open(const Hop& hop, const std::optional<Proxy>& proxy, SSL_CTX* ctx,
                                   const TlsOptions& tls, Deadlines& limits) {
    const Http1Url& peer = proxy ? proxy->url : hop.url;
    auto connection = connect_tcp(peer.host, peer.port, limits);
    const auto setup_deadline = SteadyClock::now() + limits.connect_timeout();
    if (hop.url.tls()) {
      if (proxy) {
        open_tunnel(*connection, hop.url, *proxy, options.user_agent, limits, setup_deadline);
      }
      connection->start_tls(ctx, hop.url.host, tls, limits, setup_deadline);
    }
    return connection;
  }

  Http1ClientOptions options;
  std::mutex tls_mutex;  // guards tls_contexts
  std::map<std::string, SslCtx> tls_contexts;
  mutable std::mutex pool_mutex;  // guards idle (oldest first)
  std::deque<std::unique_ptr<Connection>> idle;
};

namespace {

// The request head of one hop, caller headers last, as given (framing headers excepted).
std::string render_head(const Request& request, const Hop& hop, const Proxy* plain_proxy,
                        const std::string& user_agent, std::optional<std::uint64_t> length,
                        bool chunked) {
  const Headers& headers = request.headers;
  std::string head = hop.method;
  head += ' ';
  if (plain_proxy != nullptr) {
    head += hop.url.scheme + "://" + hop.url.authority();
  }
  head += hop.url.target;
  head += " HTTP/1.1\r\n";
  // A caller's Host names the first host; another one, after a redirect, gets its own, as curl
  // sends it.
  if (!hop.send_credentials || !headers.contains("Host")) {
    head += "Host: " + hop.url.authority() + "\r\n";
  }
  if (hop.url.has_userinfo && hop.send_credentials && !headers.contains("Authorization")) {
    head += "Authorization: " + basic_credentials(hop.url.user, hop.url.password) + "\r\n";
  }
  if (plain_proxy != nullptr && !plain_proxy->authorization.empty() &&
      !headers.contains("Proxy-Authorization")) {
    head += "Proxy-Authorization: " + plain_proxy->authorization + "\r\n";
  }
  if (!user_agent.empty() && !headers.contains("User-Agent")) {
    head += "User-Agent: " + user_agent + "\r\n";
  }
  if (!headers.contains("Accept")) {
    head += "Accept: */*\r\n";
  }
  if (length) {
    head += "Content-Length: " + std::to_string(*length) + "\r\n";
  } else if (chunked) {
    head += "Transfer-Encoding: chunked\r\n";
  }
  for (const auto& [name, value] : headers) {
    if (iequals(name, "Content-Length") || iequals(name, "Transfer-Encoding")) {
      continue;  // the body decides its framing
    }
    if (!hop.send_credentials &&
        (iequals(name, "Authorization") || iequals(name, "Cookie") || iequals(name, "Host"))) {
      continue;  // not for another host after a redirect, as curl does
    }
    head += name;
    head += ": ";
    head += value;
    head += "\r\n";
  }
  head += "\r\n";
  return head;
}

bool asks_to_close(const Headers& headers) {
  for (const auto& value : headers.get_all("Connection")) {
    if (lower_copy(value).find("close") != std::string::npos) {
      return true;
    }
  }
  return false;
}

// A request body as it goes on the wire: in memory or from a source, and its framing.
struct OutgoingBody {
  const std::string* text = nullptr;  // null without a body or with a source
  const BodySource* source = nullptr;
  std::optional<std::uint64_t> length;  // Content-Length
  bool chunked = false;
};

// One request and its response on one connection: writes the request, hands the response to the
// transfer (or notes the redirect to follow), and tells whether the connection may carry another
// request. A server may answer before it has the whole body (413, 401) and stop reading: its
// response is returned, as curl does, rather than the failure to send the rest.
class Exchange {
 public:
  Exchange(Connection& connection, Transfer& t, const Hop& hop, Deadlines& limits,
           std::string& buffer)
      : connection_(connection),
        t_(t),
        limits_(limits),
        buffer_(buffer),
        decoder_(hop.method == "HEAD", false) {}

  void send(const std::string& head, const OutgoingBody& body) {
    try {
      if (body.source == nullptr && (body.text == nullptr || body.text->size() <= kSendPiece)) {
        connection_.write_all(body.text == nullptr ? head : head + *body.text, limits_);
        request_written_ = true;
      } else {
        connection_.write_all(head, limits_);
        request_written_ = write_body(body);
      }
    } catch (Failure& f) {
      if (!f.connection_lost) {
        throw;
      }
      lost_while_sending_ = std::move(f);  // reported unless a response was already sent
    }
  }

  // Reads the response until it ends or the caller stops it.
  void receive() {
    try {
      while (!finished()) {
        read_once();
      }
    } catch (const Failure& f) {
      if (lost_while_sending_ && !decoder_.started() && !f.cancelled) {
        throw *lost_while_sending_;
      }
      throw;
    }
    t_.response.aborted = stopped_;
  }

  bool response_started() const { return decoder_.started(); }
  bool request_written() const { return request_written_; }
  bool source_read() const { return source_read_; }

  bool reusable() const {
    return decoder_.done() && !stopped_ && !leftover_ && request_written_ &&
           decoder_.keep_alive() && !connection_.holds_tls_bytes();
  }

  HopResult result() const {
    HopResult out;
    out.finished = !redirect_;
    if (redirect_) {
      out.location = location_;
      out.status = decoder_.status();
    }
    return out;
  }

 private:
  bool finished() const {
    // A followed redirect's long body is not worth reading: the connection is dropped instead.
    return decoder_.done() || stopped_ || (redirect_ && drained_ > kMaxDrainBytes);
  }

  // Writes the body in pieces; false when the server answered before it was all sent.
  bool write_body(const OutgoingBody& body) {
    std::string piece(body.source != nullptr ? kSendPiece + 32 : 0, '\0');
    std::uint64_t sent = 0;
    while (true) {
      if (connection_.peer_spoke()) {
        read_once();
        if (decoder_.head_complete() || finished()) {
          return false;
        }
      }
      if (body.text != nullptr) {
        const std::string_view rest = std::string_view(*body.text).substr(sent);
        if (rest.empty()) {
          return true;
        }
        const std::string_view part = rest.substr(0, kSendPiece);
        connection_.write_all(part, limits_);
        sent += part.size();
        continue;
      }
      source_read_ = true;
      const std::size_t offset = body.chunked ? 20 : 0;  // room for the chunk-size line
      std::size_t room = kSendPiece;
      if (body.length) {
        room = static_cast<std::size_t>(std::min<std::uint64_t>(room, *body.length - sent));
        if (room == 0) {
          return true;
        }
      }
      const std::size_t n = body.source->read(std::span<char>(piece.data() + offset, room));
      if (n > room) {
        throw_internal(describe(t_.request->method, t_.response.url) +
                       ": request body source returned more bytes than asked for");
      }
      if (n == 0) {
        if (body.length) {
          throw_internal(describe(t_.request->method, t_.response.url) +
                         ": request body source ended after " + std::to_string(sent) + " of " +
                         std::to_string(*body.length) + " bytes");
        }
        connection_.write_all("0\r\n\r\n", limits_);
        return true;
      }
      sent += n;
      if (body.chunked) {
        char size_line[20];
        const int w = std::snprintf(size_line, sizeof(size_line), "%zx\r\n", n);
        const std::size_t start = offset - static_cast<std::size_t>(w);
        std::memcpy(piece.data() + start, size_line, static_cast<std::size_t>(w));
        std::memcpy(piece.data() + offset + n, "\r\n", 2);
        connection_.write_all(
            std::string_view(piece).substr(start, static_cast<std::size_t>(w) + n + 2), limits_);
      } else {
        connection_.write_all(std::string_view(piece.data(), n), limits_);
      }
    }
  }

  void read_once() {
    const std::size_t n = connection_.read_some(buffer_.data(), buffer_.size(), limits_);
    if (n == 0) {
      try {
        decoder_.finish();
      } catch (const Error& e) {
        // Closed before a byte of the response: the server most likely dropped the request.
        throw Failure{e.code(), e.what(), false, !decoder_.started()};
      }
    }
    consume(std::string_view(buffer_.data(), n));
  }

  void consume(std::string_view in) {
    while (!in.empty() || (decoder_.done() && !t_.head_delivered && !redirect_)) {
      std::string_view body;
      std::size_t used = 0;
      try {
        used = decoder_.feed(in, &body);
      } catch (const Error& e) {
        fail(e.code(), e.what());
      }
      in.remove_prefix(used);
      if (decoder_.head_complete() && !t_.head_delivered && !redirect_) {
        const auto location = decoder_.headers().get("Location");
        if (t_.request->follow_redirects && is_followed_redirect(decoder_.status()) && location) {
          redirect_ = true;
          location_ = *location;
        } else {
          deliver_head(t_, decoder_.status(), decoder_.headers());
          if (t_.action == BodyAction::kAbort) {
            stopped_ = true;
            return;
          }
        }
      }
      if (!body.empty()) {
        if (redirect_) {
          drained_ += body.size();
        } else if (!deliver_body(t_, body)) {
          stopped_ = true;
          return;
        }
      }
      if (decoder_.done()) {
        leftover_ = !in.empty();
        return;
      }
      if (used == 0) {
        fail(Code::kInternal, "response decoder made no progress");
      }
    }
  }

  Connection& connection_;
  Transfer& t_;
  Deadlines& limits_;
  std::string& buffer_;
  ResponseDecoder decoder_;
  bool request_written_ = false;
  bool source_read_ = false;
  std::optional<Failure> lost_while_sending_;
  bool redirect_ = false;
  std::string location_;
  std::uint64_t drained_ = 0;
  bool stopped_ = false;
  bool leftover_ = false;  // bytes after the response: the connection is out of step
};

}  // namespace

Http1Client::Http1Client(Http1ClientOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

Http1Client::~Http1Client() = default;

Response Http1Client::send(const Request& request) {
  return perform(request, nullptr);
}

Response Http1Client::stream(const Request& request, const StreamHandlers& handlers) {
  return perform(request, &handlers);
}

std::size_t Http1Client::idle_connections() const {
  std::lock_guard lock(impl_->pool_mutex);
  return impl_->idle.size();
}

Response Http1Client::perform(const Request& request, const StreamHandlers* handlers) {
  check_request(request);
  const std::string& method = request.method;
  const auto* source = std::get_if<BodySource>(&request.body);
  if (source != nullptr && !source->read) {
    throw_invalid(describe(method, request.url) + ": body source without a read function");
  }
  auto first_url = parse_http1_url(request.url);
  if (!first_url) {
    throw_invalid(describe(method, request.url) + ": unsupported or malformed URL");
  }

  Transfer t;
  t.request = &request;
  t.handlers = handlers;
  t.response.method = method;
  t.response.url = request.url;
  Deadlines limits(request);

  Hop hop{request.url, *first_url, method, method != "HEAD", true};
  int redirects = 0;
  const std::size_t receive_size = impl_->options.receive_buffer_bytes;
  std::string buffer(receive_size, '\0');

  try {
    limits.check();
    while (true) {
      // One hop: connection (pooled, or new; one retry when a reused one turns out dead).
      const auto proxy = impl_->proxy_for(hop.url);
      SslCtx ctx = hop.url.tls() ? impl_->tls_context(request.tls) : nullptr;
      std::string key = hop.url.scheme + "|" + hop.url.host_port() + "|" +
                        (proxy ? proxy->key : std::string()) + "|" +
                        std::to_string(reinterpret_cast<std::uintptr_t>(ctx.get()));
      const std::string* text_body = std::get_if<std::string>(&request.body);
      const bool with_body =
          hop.send_body && (source != nullptr || !text_body->empty() || !body_optional(hop.method));
      std::optional<std::uint64_t> length;
      bool chunked = false;
      if (with_body) {
        if (source != nullptr) {
          length = source->size;
          chunked = !source->size;
        } else {
          length = text_body->size();
        }
      }
      const std::string head =
          render_head(request, hop, proxy && !hop.url.tls() ? &*proxy : nullptr,
                      impl_->options.user_agent, length, chunked);

      const OutgoingBody outgoing{with_body ? text_body : nullptr, with_body ? source : nullptr,
                                  length, chunked};

      HopResult result;
      for (int attempt = 0;; ++attempt) {
        // The low-speed check covers transfers, not the setup of the connection for them.
        limits.disarm_low_speed();
        // A retry always takes a new connection: the pool may hold more dead ones.
        std::unique_ptr<Connection> connection = attempt == 0 ? impl_->take_idle(key) : nullptr;
        if (!connection) {
          connection = impl_->open(hop, proxy, ctx.get(), request.tls, limits);
          connection->key = key;
        }
        limits.arm_low_speed();
        Exchange exchange(*connection, t, hop, limits, buffer);
        try {
          exchange.send(head, outgoing);
          exchange.receive();
          if (exchange.reusable() && !asks_to_close(request.headers)) {
            impl_->give_back(std::move(connection));
          }
          result = exchange.result();
          break;
        } catch (const Failure& f) {
          // A pooled connection the server had closed: sent again on a new one, unless the
          // server may have acted on it (a response began, or a non-idempotent request was
          // written whole and the connection failed otherwise than by closing).
          const bool unseen =
              !exchange.response_started() &&
              (idempotent(hop.method) || !exchange.request_written() || f.connection_lost);
          const bool replayable = source == nullptr || !exchange.source_read();
          if (attempt == 0 && connection->reused && unseen && replayable && !f.cancelled &&
              f.code == Code::kUnavailable) {
            spdlog::debug(
                "http reused connection failed before a response, retrying url={} error={}",
                redact_url(hop.url_text), f.what);
            continue;
          }
          throw;
        }
      }
      if (result.finished) {
        break;
      }

      // Follow the redirect.
      if (request.max_redirects >= 0 && redirects >= request.max_redirects) {
        throw Error(Code::kInvalidArgument, describe(method, t.response.url) + ": maximum (" +
                                                std::to_string(request.max_redirects) +
                                                ") redirects followed");
      }
      ++redirects;
      auto next = resolve_location(hop.url_text, *result.location);
      auto next_url = next ? parse_http1_url(*next) : std::nullopt;
      if (!next_url) {
        throw Error(Code::kInvalidArgument, describe(method, t.response.url) +
                                                ": redirect to an unsupported location " +
                                                redact_url(*result.location));
      }
      if ((result.status == 303 && hop.method != "HEAD") ||
          ((result.status == 301 || result.status == 302) && hop.method == "POST")) {
        hop.method = "GET";
        hop.send_body = false;
      } else if (hop.send_body && source != nullptr) {
        throw Error(Code::kInvalidArgument,
                    describe(method, t.response.url) + ": HTTP " + std::to_string(result.status) +
                        " redirect to " + redact_url(*next) +
                        " needs the request body again, but a streamed body cannot be replayed");
      }
      hop.send_credentials = next_url->scheme == first_url->scheme &&
                             next_url->host == first_url->host && next_url->port == first_url->port;
      hop.url_text = std::move(*next);
      hop.url = std::move(*next_url);
      t.response.url = hop.url_text;
    }
  } catch (const Failure& f) {
    if (f.cancelled) {
      throw Error(Code::kUnavailable, describe(method, t.response.url) + ": cancelled");
    }
    std::string message = describe(method, t.response.url) + ": " + f.what;
    if (t.head_delivered) {
      message += " (after HTTP " + std::to_string(t.response.status) + " and " +
                 std::to_string(t.body_bytes) + " bytes of body)";
    }
    throw Error(f.code, std::move(message));
  }

  spdlog::debug("http request method={} url={} status={} body_bytes={}{}", method,
                redact_url(t.response.url), t.response.status, t.body_bytes,
                t.response.aborted ? " aborted=true" : "");
  return std::move(t.response);
}

}  // namespace stowage::http
