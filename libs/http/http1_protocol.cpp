#include "http/http1_protocol.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <vector>

#include "base/error.h"
#include "base/text.h"

namespace stowage::http {
namespace {

constexpr std::uint64_t kMaxChunkSize = std::uint64_t{1} << 62;

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool is_ows(char c) {
  return c == ' ' || c == '\t';
}

[[noreturn]] void malformed(std::string what) {
  throw Error(Code::kUnavailable, "malformed response: " + what);
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// Percent-encodes what may not appear in a URL on the wire (controls, space, non-ASCII).
std::string encode_unsafe(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 15];
    } else {
      out += c;
    }
  }
  return out;
}

// RFC 3986 section 5.2.4.
std::string remove_dot_segments(std::string_view path) {
  std::vector<std::string_view> out;
  const bool absolute = !path.empty() && path.front() == '/';
  bool trailing_slash = false;
  std::size_t at = absolute ? 1 : 0;
  while (at <= path.size()) {
    const auto slash = path.find('/', at);
    const auto segment =
        path.substr(at, slash == std::string_view::npos ? std::string_view::npos : slash - at);
    const bool last = slash == std::string_view::npos;
    trailing_slash = false;
    if (segment == "..") {
      if (!out.empty()) out.pop_back();
      trailing_slash = true;
    } else if (segment == ".") {
      trailing_slash = true;
    } else {
      out.push_back(segment);
    }
    if (last) break;
    at = slash + 1;
  }
  std::string result = absolute ? "/" : "";
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (i > 0) result += '/';
    result += out[i];
  }
  if (trailing_slash && !result.empty() && result.back() != '/') result += '/';
  return result;
}

// Splits "path?query" into the path and the "?query" part (which may be empty).
std::pair<std::string_view, std::string_view> split_query(std::string_view target) {
  const auto q = target.find('?');
  if (q == std::string_view::npos) return {target, {}};
  return {target.substr(0, q), target.substr(q)};
}

}  // namespace

std::string Http1Url::authority() const {
  const bool v6 = host.find(':') != std::string::npos;
  std::string out = v6 ? "[" + host + "]" : host;
  const std::uint16_t default_port = tls() ? 443 : 80;
  if (port != default_port) {
    out += ':';
    out += std::to_string(port);
  }
  return out;
}

std::string Http1Url::host_port() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::optional<Http1Url> parse_http1_url(std::string_view url) {
  if (std::any_of(url.begin(), url.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u <= 0x20 || u == 0x7f;
      })) {
    return std::nullopt;
  }
  if (const auto hash = url.find('#'); hash != std::string_view::npos) {
    url = url.substr(0, hash);
  }
  const auto colon = url.find("://");
  if (colon == std::string_view::npos) return std::nullopt;
  Http1Url out;
  for (char c : url.substr(0, colon)) out.scheme += lower(c);
  if (out.scheme != "http" && out.scheme != "https") return std::nullopt;
  auto rest = url.substr(colon + 3);
  const auto end = rest.find_first_of("/?");
  auto authority = rest.substr(0, end);
  const auto target = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
    const auto userinfo = authority.substr(0, at);
    authority.remove_prefix(at + 1);
    out.has_userinfo = true;
    const auto sep = userinfo.find(':');
    out.user = percent_decode(userinfo.substr(0, sep));
    if (sep != std::string_view::npos) out.password = percent_decode(userinfo.substr(sep + 1));
  }
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    out.host = std::string(authority.substr(1, close - 1));
    in6_addr addr{};
    if (::inet_pton(AF_INET6, out.host.c_str(), &addr) != 1) return std::nullopt;
    auto after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return std::nullopt;
      port_text = after.substr(1);
    }
  } else {
    const auto c = authority.rfind(':');
    out.host = std::string(authority.substr(0, c));
    if (c != std::string_view::npos) port_text = authority.substr(c + 1);
    if (out.host.find_first_of("[]:") != std::string::npos) return std::nullopt;
  }
  if (out.host.empty()) return std::nullopt;
  out.port = out.tls() ? 443 : 80;
  if (!port_text.empty()) {
    unsigned value = 0;
    const auto* e = port_text.data() + port_text.size();
    const auto [ptr, ec] = std::from_chars(port_text.data(), e, value);
    if (ec != std::errc() || ptr != e || value == 0 || value > 65535) return std::nullopt;
    out.port = static_cast<std::uint16_t>(value);
    out.explicit_port = true;
  }
  for (char& c : out.host) c = lower(c);
  out.target =
      target.empty() || target.front() == '?' ? "/" + std::string(target) : std::string(target);
  return out;
}

std::optional<std::string> resolve_location(std::string_view base_url, std::string_view location) {
  const auto base = parse_http1_url(base_url);
  if (!base) return std::nullopt;
  while (!location.empty() && is_ows(location.front())) location.remove_prefix(1);
  while (!location.empty() && is_ows(location.back())) location.remove_suffix(1);
  std::string ref = encode_unsafe(location);
  if (const auto hash = ref.find('#'); hash != std::string::npos) ref.resize(hash);

  if (ref.starts_with("//")) ref = base->scheme + ":" + ref;  // network-path reference
  // A scheme ("x:" before any '/' or '?') makes the reference absolute.
  const auto colon = ref.find(':');
  const auto first_delim = ref.find_first_of("/?");
  if (colon != std::string::npos && colon > 0 &&
      (first_delim == std::string::npos || colon < first_delim) &&
      std::all_of(ref.begin(), ref.begin() + static_cast<std::ptrdiff_t>(colon), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '+' || c == '-' || c == '.';
      })) {
    if (!parse_http1_url(ref)) return std::nullopt;
    const auto authority_start = ref.find("://") + 3;
    const auto target_start = std::min(ref.find_first_of("/?", authority_start), ref.size());
    const auto [path, query] = split_query(std::string_view(ref).substr(target_start));
    std::string out = ref.substr(0, target_start);
    out += path.empty() ? std::string("/") : remove_dot_segments(path);
    out += query;
    return out;
  }

  // Relative to the base: same scheme and authority (user info included: same host).
  const auto authority_start = base_url.find("://") + 3;
  const auto target_start =
      std::min(base_url.find_first_of("/?", authority_start), base_url.size());
  std::string prefix(base_url.substr(0, target_start));
  const auto [base_path, base_query] = split_query(base->target);
  if (ref.empty()) return prefix + std::string(base_path) + std::string(base_query);
  if (ref.front() == '?') return prefix + std::string(base_path) + ref;
  const auto [ref_path, ref_query] = split_query(ref);
  std::string merged;
  if (ref_path.starts_with("/")) {
    merged = std::string(ref_path);
  } else {
    merged = std::string(base_path.substr(0, base_path.rfind('/') + 1)) + std::string(ref_path);
  }
  return prefix + remove_dot_segments(merged) + std::string(ref_query);
}

bool is_ip_literal(std::string_view host) {
  const std::string h(host);
  in_addr v4{};
  in6_addr v6{};
  return ::inet_pton(AF_INET, h.c_str(), &v4) == 1 || ::inet_pton(AF_INET6, h.c_str(), &v6) == 1;
}

std::string basic_credentials(std::string_view user, std::string_view password) {
  std::string plain(user);
  plain += ':';
  plain += password;
  return "Basic " + base64_encode(plain);
}

ResponseDecoder::ResponseDecoder(bool head_request, bool connect_request, ResponseLimits limits)
    : head_request_(head_request), connect_request_(connect_request), limits_(limits) {}

bool ResponseDecoder::keep_alive() const {
  return done_ && !connection_close_ && framing_ != Framing::kUntilClose &&
         parser_.version() == "1.1";
}

bool ResponseDecoder::take_line(std::string_view input, std::size_t& used, std::size_t limit,
                                std::string_view what) {
  const auto rest = input.substr(used);
  const auto lf = rest.find('\n');
  const std::size_t take = lf == std::string_view::npos ? rest.size() : lf + 1;
  if (line_.size() + take > limit) {
    malformed(std::string(what) + " exceeds " + std::to_string(limit) + " bytes");
  }
  line_.append(rest.substr(0, take));
  used += take;
  return lf != std::string_view::npos;
}

std::size_t ResponseDecoder::feed(std::string_view input, std::string_view* body) {
  *body = {};
  // Before parsing: a request answered with malformed bytes was seen by the server, whatever
  // the decoder makes of them, and must not be replayed.
  received_ = received_ || (!input.empty() && !done_);
  std::size_t used = 0;
  while (used < input.size() && !done_ && body->empty()) {
    switch (state_) {
      case State::kHead: {
        const std::size_t before = line_.size();
        const bool whole = take_line(input, used, limits_.max_head_bytes - head_bytes_ + before,
                                     "the response head");
        head_bytes_ += line_.size() - before;
        if (whole) {
          const std::string line = std::move(line_);
          line_.clear();
          head_line(line);
        }
        break;
      }
      case State::kBody:  // kLength or kUntilClose
      case State::kChunkData: {
        auto piece = input.substr(used);
        if (framing_ != Framing::kUntilClose) {
          piece = piece.substr(
              0, static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, piece.size())));
          remaining_ -= piece.size();
          if (remaining_ == 0 && state_ == State::kChunkData) {
            state_ = State::kChunkDataEnd;
          } else if (remaining_ == 0) {
            state_ = State::kDone;
            done_ = true;
          }
        }
        used += piece.size();
        *body = piece;
        break;
      }
      case State::kChunkSize:
        if (take_line(input, used, limits_.max_chunk_line_bytes, "a chunk-size line")) {
          parse_chunk_size(line_);
          line_.clear();
        }
        break;
      case State::kChunkDataEnd:
        if (take_line(input, used, 2, "the end of a chunk")) {
          if (line_ != "\r\n" && line_ != "\n") malformed("chunk data not followed by CRLF");
          line_.clear();
          state_ = State::kChunkSize;
        }
        break;
      case State::kTrailers: {
        const std::size_t before = line_.size();
        const bool whole = take_line(input, used, limits_.max_head_bytes - trailer_bytes_ + before,
                                     "the trailer section");
        trailer_bytes_ += line_.size() - before;
        if (whole) {
          if (line_ == "\r\n" || line_ == "\n") {
            state_ = State::kDone;
            done_ = true;
          }
          line_.clear();  // trailer fields are ignored
        }
        break;
      }
      case State::kDone: done_ = true; break;
    }
  }
  return used;
}

void ResponseDecoder::head_line(std::string_view line) {
  std::string_view text = line;
  text.remove_suffix(1);  // LF
  if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
  if (text.find('\r') != std::string_view::npos || text.find('\0') != std::string_view::npos) {
    malformed("control character in the response head");
  }
  if (at_status_line_) {
    const auto status = parse_status_line(text);
    if (!status || !status->version.starts_with("1.")) {
      malformed("not an HTTP/1.x status line");
    }
    if (status->status > 999 || status->status == 101) {
      malformed("unexpected status " + std::to_string(status->status));
    }
    at_status_line_ = false;
    parser_.feed(text);
    return;
  }
  if (text.empty()) {
    parser_.feed(text);
    if (!parser_.complete()) {  // an interim 1xx head: the next line is a status line again
      at_status_line_ = true;
      return;
    }
    head_complete_ = true;
    start_body();
    return;
  }
  if (!is_ows(text.front()) && !parse_header_line(text)) {
    malformed("invalid header line");
  }
  parser_.feed(text);
}

void ResponseDecoder::start_body() {
  const Headers& headers = parser_.headers();
  for (const auto& value : headers.get_all("Connection")) {
    std::string_view rest = value;
    while (!rest.empty()) {
      const auto comma = rest.find(',');
      auto token = rest.substr(0, comma);
      while (!token.empty() && is_ows(token.front())) token.remove_prefix(1);
      while (!token.empty() && is_ows(token.back())) token.remove_suffix(1);
      if (iequals(token, "close")) connection_close_ = true;
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  const int status = parser_.status();
  if (head_request_ || status == 204 || status == 304 ||
      (connect_request_ && status >= 200 && status < 300)) {
    framing_ = Framing::kNone;
    state_ = State::kDone;
    done_ = true;
    return;
  }
  const auto te = headers.get_all("Transfer-Encoding");
  if (!te.empty()) {
    // The last coding decides: chunked frames the body, anything else reads to the close.
    std::string_view last = te.back();
    if (const auto comma = last.rfind(','); comma != std::string_view::npos) {
      last.remove_prefix(comma + 1);
    }
    while (!last.empty() && is_ows(last.front())) last.remove_prefix(1);
    while (!last.empty() && is_ows(last.back())) last.remove_suffix(1);
    if (iequals(last, "chunked")) {
      framing_ = Framing::kChunked;
      state_ = State::kChunkSize;
    } else {
      framing_ = Framing::kUntilClose;
      state_ = State::kBody;
    }
    // With both, Content-Length is ignored and the connection is not trusted again.
    if (headers.contains("Content-Length")) connection_close_ = true;
    return;
  }
  const auto lengths = headers.get_all("Content-Length");
  if (!lengths.empty()) {
    std::optional<std::uint64_t> length;
    for (const auto& field : lengths) {
      std::string_view rest = field;
      while (true) {
        const auto comma = rest.find(',');
        auto item = rest.substr(0, comma);
        while (!item.empty() && is_ows(item.front())) item.remove_prefix(1);
        while (!item.empty() && is_ows(item.back())) item.remove_suffix(1);
        std::uint64_t n = 0;
        const auto* e = item.data() + item.size();
        const auto [ptr, ec] = std::from_chars(item.data(), e, n);
        if (item.empty() || ec != std::errc() || ptr != e || item.front() == '+' ||
            item.front() == '-') {
          malformed("invalid Content-Length");
        }
        if (length && *length != n) malformed("conflicting Content-Length values");
        length = n;
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 1);
      }
    }
    framing_ = Framing::kLength;
    content_length_ = remaining_ = *length;
    if (remaining_ == 0) {
      state_ = State::kDone;
      done_ = true;
    } else {
      state_ = State::kBody;
    }
    return;
  }
  framing_ = Framing::kUntilClose;
  state_ = State::kBody;
}

void ResponseDecoder::parse_chunk_size(std::string_view line) {
  line.remove_suffix(1);  // LF
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  std::uint64_t size = 0;
  std::size_t i = 0;
  for (; i < line.size() && hex_value(line[i]) >= 0; ++i) {
    if (size > kMaxChunkSize >> 4) malformed("chunk size too large");
    size = (size << 4) | static_cast<std::uint64_t>(hex_value(line[i]));
  }
  if (i == 0) malformed("invalid chunk size");
  while (i < line.size() && is_ows(line[i])) ++i;
  if (i < line.size() && line[i] != ';') malformed("invalid chunk size");
  if (line.find('\r') != std::string_view::npos || line.find('\0') != std::string_view::npos) {
    malformed("control character in a chunk extension");
  }
  if (size == 0) {
    state_ = State::kTrailers;
  } else {
    remaining_ = size;
    state_ = State::kChunkData;
  }
}

void ResponseDecoder::finish() {
  if (done_) return;
  if (state_ == State::kBody && framing_ == Framing::kUntilClose) {
    state_ = State::kDone;
    done_ = true;
    return;
  }
  if (!received_) {
    throw Error(Code::kUnavailable, "empty reply from server");
  }
  if (!head_complete_) {
    throw Error(Code::kUnavailable, "connection closed in the middle of the response head");
  }
  if (framing_ == Framing::kLength) {
    throw Error(Code::kUnavailable, "connection closed with " + std::to_string(remaining_) +
                                        " bytes of the body outstanding");
  }
  throw Error(Code::kUnavailable, "connection closed before the last chunk of the body");
}

}  // namespace stowage::http
