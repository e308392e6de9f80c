#include "base/text.h"

#include <cstdint>

namespace stowage {

std::optional<std::size_t> find_invalid_utf8(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  std::size_t i = 0;
  while (i < n) {
    const unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c == 0xE0) {
      len = 3, lo = 0xA0;
    } else if (c >= 0xE1 && c <= 0xEC) {
      len = 3;
    } else if (c == 0xED) {
      len = 3, hi = 0x9F;  // no surrogates
    } else if (c >= 0xEE && c <= 0xEF) {
      len = 3;
    } else if (c == 0xF0) {
      len = 4, lo = 0x90;
    } else if (c >= 0xF1 && c <= 0xF3) {
      len = 4;
    } else if (c == 0xF4) {
      len = 4, hi = 0x8F;
    } else {
      return i;
    }
    if (i + len > n) return i;
    if (s[i + 1] < lo || s[i + 1] > hi) return i;
    for (std::size_t k = 2; k < len; ++k) {
      if (s[i + k] < 0x80 || s[i + k] > 0xBF) return i;
    }
    i += len;
  }
  return std::nullopt;
}

std::optional<std::string> unsafe_yaml_reason(std::string_view text, int max_flow_depth) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      return std::string("control character 0x") + kHex[c >> 4] + kHex[c & 0xf] + " at byte " +
             std::to_string(i);
    }
  }
  if (const auto bad = find_invalid_utf8(text)) {
    return "not UTF-8 at byte " + std::to_string(*bad);
  }
  int depth = 0;
  char quote = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quote != 0) {
      if (c == quote || c == '\n') quote = 0;
      continue;
    }
    if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == '[' || c == '{') {
      if (++depth > max_flow_depth) {
        return "nested deeper than " + std::to_string(max_flow_depth) + " levels at byte " +
               std::to_string(i);
      }
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return std::nullopt;
}

std::vector<YamlDocument> split_yaml_documents(std::string_view text) {
  std::vector<YamlDocument> docs;
  YamlDocument current;
  bool has_content = false;
  int line_no = 0;
  auto flush = [&] {
    if (has_content) docs.push_back(std::move(current));
    current = YamlDocument{};
    has_content = false;
  };
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(pos, end - pos);
    const bool marker = line.starts_with("---") || line.starts_with("...");
    if (marker && (line.size() == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\r')) {
      flush();
      current.first_line = line_no + 1;
      if (line.starts_with("---")) {
        const std::string_view rest = line.substr(3);
        const auto first = rest.find_first_not_of(" \t\r");
        if (first != std::string_view::npos && rest[first] != '#') {
          current.first_line = line_no;
          current.text.append(3, ' ');  // keep the columns of content after the marker
          current.text.append(rest);
          current.text += '\n';
          has_content = true;
        }
      }
    } else {
      const auto first = line.find_first_not_of(" \t\r");
      if (first != std::string_view::npos && line[first] != '#') has_content = true;
      current.text.append(line);
      current.text += '\n';
    }
    pos = end + 1;
    ++line_no;
  }
  flush();
  return docs;
}

std::string base64_encode(std::string_view data) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < data.size(); i += 3) {
    const std::uint32_t n = (static_cast<std::uint8_t>(data[i]) << 16) |
                            (static_cast<std::uint8_t>(data[i + 1]) << 8) |
                            static_cast<std::uint8_t>(data[i + 2]);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += kAlphabet[n & 63];
  }
  if (const std::size_t left = data.size() - i; left > 0) {
    std::uint32_t n = static_cast<std::uint8_t>(data[i]) << 16;
    if (left == 2) {
      n |= static_cast<std::uint8_t>(data[i + 1]) << 8;
    }
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += left == 2 ? kAlphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

}  // namespace stowage
