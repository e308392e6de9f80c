// The pure half of Http1Client (http1_client.h): URL parsing and redirect resolution, rendering
// of an HTTP/1.1 request head, and the incremental decoder that frames a response (status line,
// header block, Content-Length / chunked / read-to-close body) from bytes as a socket delivers
// them (RFC 9112). No I/O here, so it is tested and fuzzed without servers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "http/headers.h"

namespace stowage::http {

// An absolute http or https URL taken apart.
struct Http1Url {
  std::string scheme;  // "http" or "https", lower case
  std::string host;    // lower case, without brackets for IPv6 literals
  std::uint16_t port = 0;
  bool explicit_port = false;  // the URL named a port
  std::string target;          // path and query ("/" when the URL has no path), no fragment
  bool has_userinfo = false;
  std::string user;      // percent-decoded
  std::string password;  // percent-decoded

  bool tls() const { return scheme == "https"; }
  // "host", "host:port" when the port is not the scheme's default, IPv6 in brackets.
  std::string authority() const;
  // "host:port" always (CONNECT targets, connection keys).
  std::string host_port() const;
};

// Parses an absolute URL with scheme http or https (case-insensitive). std::nullopt for another
// scheme, a missing host, a bad port, or control characters and spaces anywhere in it.
std::optional<Http1Url> parse_http1_url(std::string_view url);

// The absolute URL a Location header value points to, relative to base (RFC 3986 section 5.2;
// dot segments removed, fragment dropped, spaces and non-ASCII bytes percent-encoded).
// std::nullopt when the result is not an http or https URL.
std::optional<std::string> resolve_location(std::string_view base, std::string_view location);

// True for an IPv4 or IPv6 address literal (no brackets).
bool is_ip_literal(std::string_view host);

// "Basic base64(user:password)".
std::string basic_credentials(std::string_view user, std::string_view password);

// Bounds that keep a hostile or broken peer from making the decoder buffer without limit.
struct ResponseLimits {
  // Status lines plus header fields of all heads of one response (1xx ones included), and
  // separately the trailer block of a chunked body.
  std::size_t max_head_bytes = 256 << 10;
  // One chunk-size line, extensions included.
  std::size_t max_chunk_line_bytes = 4096;
};

// Frames one HTTP/1.1 response from the bytes of a connection. Interim 1xx heads are skipped
// (101 is refused: nothing asks for an upgrade); the body is framed as RFC 9112 section 6.3 says.
// Malformed input throws stowage::Error with code kUnavailable ("malformed response: ...").
// Not thread-safe; one decoder per response.
class ResponseDecoder {
 public:
  enum class Framing { kUnknown, kNone, kLength, kChunked, kUntilClose };

  // head_request: a HEAD request, so no body whatever the headers say. connect_request: a
  // proxy CONNECT, so a 2xx answer ends at its head (the tunnel follows).
  ResponseDecoder(bool head_request, bool connect_request, ResponseLimits limits = {});

  // Consumes a prefix of input and returns its length. *body is set to the body bytes within
  // that prefix (a view into input, possibly empty). Stops after at most one body piece, so
  // call again with the rest. Consumes nothing once done().
  std::size_t feed(std::string_view input, std::string_view* body);

  // The peer closed the connection: completes a read-to-close body, else throws (kUnavailable;
  // "empty reply from server" when not one byte arrived).
  void finish();

  // True once any byte of the response was fed, even one that feed() then refused.
  bool started() const { return received_; }
  bool head_complete() const { return head_complete_; }
  bool done() const { return done_; }
  Framing framing() const { return framing_; }

  // Valid once head_complete().
  int status() const { return parser_.status(); }
  const std::string& version() const { return parser_.version(); }
  const Headers& headers() const { return parser_.headers(); }
  // The body length the head announced, for Framing::kLength.
  std::uint64_t content_length() const { return content_length_; }
  // Body bytes still expected (kLength), for messages.
  std::uint64_t remaining() const { return remaining_; }
  // True when, after done(), the connection may carry another request (HTTP/1.1, no
  // "Connection: close", a self-delimited body).
  bool keep_alive() const;

 private:
  enum class State { kHead, kBody, kChunkSize, kChunkData, kChunkDataEnd, kTrailers, kDone };

  // Takes bytes up to and including a LF into line_; true once line_ holds a whole line.
  bool take_line(std::string_view input, std::size_t& used, std::size_t limit,
                 std::string_view what);
  void head_line(std::string_view line);
  void start_body();
  void parse_chunk_size(std::string_view line);

  bool head_request_;
  bool connect_request_;
  ResponseLimits limits_;
  State state_ = State::kHead;
  ResponseHeadParser parser_;
  std::string line_;
  bool line_complete_ = false;
  bool at_status_line_ = true;
  std::size_t head_bytes_ = 0;
  std::size_t trailer_bytes_ = 0;
  bool received_ = false;
  bool head_complete_ = false;
  bool done_ = false;
  bool connection_close_ = false;
  Framing framing_ = Framing::kUnknown;
  std::uint64_t content_length_ = 0;
  std::uint64_t remaining_ = 0;
};

}  // namespace stowage::http
