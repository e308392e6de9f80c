// HTTP header fields: an ordered, multi-valued list with case-insensitive name lookup, and the
// pure parser that turns the raw header lines a transport receives into a status and Headers.
// Used for both requests (what a caller sends) and responses (what a server answered); no I/O here.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace stowage::http {

// True when a and b are equal ignoring ASCII case (header names, tokens).
bool iequals(std::string_view a, std::string_view b);

class Headers {
 public:
  using Field = std::pair<std::string, std::string>;

  Headers() = default;
  Headers(std::initializer_list<Field> fields);

  // Appends a field, keeping any earlier ones of the same name (Set-Cookie, WWW-Authenticate, ...).
  void add(std::string name, std::string value);
  // Replaces every field of that name by one field.
  void set(std::string name, std::string value);
  // Removes every field of that name; returns how many were removed.
  std::size_t remove(std::string_view name);

  bool contains(std::string_view name) const;
  // The first value of that name, if any.
  std::optional<std::string> get(std::string_view name) const;
  // Every value of that name, in the order received.
  std::vector<std::string> get_all(std::string_view name) const;

  bool empty() const { return fields_.empty(); }
  std::size_t size() const { return fields_.size(); }
  std::vector<Field>::const_iterator begin() const { return fields_.begin(); }
  std::vector<Field>::const_iterator end() const { return fields_.end(); }

  void clear() { fields_.clear(); }

 private:
  std::vector<Field> fields_;
};

// A parsed status line ("HTTP/1.1 404 Not Found", "HTTP/2 200").
struct StatusLine {
  std::string version;  // "1.1", "2"
  int status = 0;
  std::string reason;
};

// Parses a status line; std::nullopt if the line is not one. Trailing CR/LF are ignored.
std::optional<StatusLine> parse_status_line(std::string_view line);

// Parses "Name: value" (surrounding whitespace trimmed); std::nullopt for a line without a
// colon or with an invalid name. Trailing CR/LF are ignored.
std::optional<Headers::Field> parse_header_line(std::string_view line);

// Accumulates raw header lines, one call per line as a transport delivers them, into the head of
// the final response. A new status line starts a new head, so interim 1xx responses, proxy CONNECT
// answers and followed redirects are left behind; lines after a complete head (trailers) are
// ignored. Obsolete line folding (a line starting with a space or tab) continues the last value.
class ResponseHeadParser {
 public:
  void feed(std::string_view line);

  // True once the blank line ending a final (non-1xx) response head was seen.
  bool complete() const { return complete_; }
  int status() const { return status_.status; }
  const std::string& version() const { return status_.version; }
  const std::string& reason() const { return status_.reason; }
  const Headers& headers() const { return headers_; }
  Headers take_headers() { return std::move(headers_); }

 private:
  StatusLine status_;
  Headers headers_;
  std::vector<Headers::Field> pending_;  // fields of the head being read, folded lines merged
  bool in_head_ = false;
  bool complete_ = false;
};

}  // namespace stowage::http
