#include "http/headers.h"

#include <algorithm>

namespace stowage::http {
namespace {

constexpr std::string_view kStatusPrefix = "HTTP/";

char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool is_ows(char c) {
  return c == ' ' || c == '\t';
}

// RFC 9110 token characters, which is what a field name may be made of.
bool is_tchar(char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
    return true;
  }
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::string_view trim_eol(std::string_view line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) {
    line.remove_suffix(1);
  }
  return line;
}

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && is_ows(s.front())) {
    s.remove_prefix(1);
  }
  while (!s.empty() && is_ows(s.back())) {
    s.remove_suffix(1);
  }
  return s;
}

}  // namespace

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return ascii_lower(x) == ascii_lower(y);
         });
}

Headers::Headers(std::initializer_list<Field> fields) : fields_(fields) {}

void Headers::add(std::string name, std::string value) {
  fields_.emplace_back(std::move(name), std::move(value));
}

void Headers::set(std::string name, std::string value) {
  remove(name);
  add(std::move(name), std::move(value));
}

std::size_t Headers::remove(std::string_view name) {
  return std::erase_if(fields_, [&](const Field& f) { return iequals(f.first, name); });
}

bool Headers::contains(std::string_view name) const {
  return std::any_of(fields_.begin(), fields_.end(),
                     [&](const Field& f) { return iequals(f.first, name); });
}

std::optional<std::string> Headers::get(std::string_view name) const {
  for (const auto& [n, v] : fields_) {
    if (iequals(n, name)) {
      return v;
    }
  }
  return std::nullopt;
}

std::vector<std::string> Headers::get_all(std::string_view name) const {
  std::vector<std::string> out;
  for (const auto& [n, v] : fields_) {
    if (iequals(n, name)) {
      out.push_back(v);
    }
  }
  return out;
}

std::optional<StatusLine> parse_status_line(std::string_view line) {
  line = trim_eol(line);
  if (line.substr(0, kStatusPrefix.size()) != kStatusPrefix) {
    return std::nullopt;
  }
  line.remove_prefix(kStatusPrefix.size());
  const auto space = line.find(' ');
  if (space == std::string_view::npos || space == 0) {
    return std::nullopt;
  }
  StatusLine out;
  out.version = std::string(line.substr(0, space));
  if (!std::all_of(out.version.begin(), out.version.end(),
                   [](char c) { return (c >= '0' && c <= '9') || c == '.'; })) {
    return std::nullopt;
  }
  line.remove_prefix(space + 1);
  if (line.size() < 3 ||
      !std::all_of(line.begin(), line.begin() + 3, [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  if (line.size() > 3 && line[3] != ' ') {
    return std::nullopt;
  }
  out.status = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
  if (out.status < 100) {
    return std::nullopt;
  }
  out.reason = std::string(trim_ows(line.substr(3)));
  return out;
}

std::optional<Headers::Field> parse_header_line(std::string_view line) {
  line = trim_eol(line);
  const auto colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0) {
    return std::nullopt;
  }
  const auto name = line.substr(0, colon);
  if (!std::all_of(name.begin(), name.end(), is_tchar)) {
    return std::nullopt;
  }
  return Headers::Field{std::string(name), std::string(trim_ows(line.substr(colon + 1)))};
}

void ResponseHeadParser::feed(std::string_view line) {
  line = trim_eol(line);
  if (auto status = parse_status_line(line)) {
    status_ = std::move(*status);
    pending_.clear();
    in_head_ = true;
    complete_ = false;
    return;
  }
  if (!in_head_) {
    return;  // trailers, or noise before the first status line
  }
  if (line.empty()) {
    in_head_ = false;
    if (status_.status >= 200) {
      headers_.clear();
      for (auto& field : pending_) {
        headers_.add(std::move(field.first), std::move(field.second));
      }
      complete_ = true;
    }
    pending_.clear();
    return;
  }
  if (is_ows(line.front())) {
    if (!pending_.empty()) {
      const auto more = trim_ows(line);
      auto& value = pending_.back().second;
      if (!more.empty()) {
        if (!value.empty()) {
          value += ' ';
        }
        value += more;
      }
    }
    return;
  }
  if (auto field = parse_header_line(line)) {
    pending_.push_back(std::move(*field));
  }
}

}  // namespace stowage::http
