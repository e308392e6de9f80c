#include "kube/watch_framer.h"

#include <fmt/format.h>

#include <cstring>
#include <utility>

namespace stowage::kube {
namespace {

// Above this, the tail's buffer is released once its line is framed, so one huge event does not
// pin its size for the rest of the stream.
constexpr std::size_t kKeepTailCapacity = std::size_t{1} << 20;

bool is_json_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

bool all_space(std::string_view s) {
  for (char c : s) {
    if (!is_json_space(c)) {
      return false;
    }
  }
  return true;
}

// The deepest nesting of arrays and objects in `text`, counting brackets outside strings; stops
// counting once `limit` is passed. Malformed JSON gets some number; the parser rejects it later.
std::size_t json_depth(std::string_view text, std::size_t limit) {
  std::size_t depth = 0;
  std::size_t deepest = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case '"': in_string = true; break;
      case '[':
      case '{':
        if (++depth > deepest) {
          deepest = depth;
          if (deepest > limit) {
            return deepest;
          }
        }
        break;
      case ']':
      case '}':
        if (depth > 0) {
          --depth;
        }
        break;
      default: break;
    }
  }
  return deepest;
}

std::optional<WatchEventType> parse_event_type(std::string_view name) {
  if (name == "ADDED") {
    return WatchEventType::kAdded;
  }
  if (name == "MODIFIED") {
    return WatchEventType::kModified;
  }
  if (name == "DELETED") {
    return WatchEventType::kDeleted;
  }
  if (name == "BOOKMARK") {
    return WatchEventType::kBookmark;
  }
  if (name == "ERROR") {
    return WatchEventType::kError;
  }
  return std::nullopt;
}

}  // namespace

std::string_view watch_event_type_name(WatchEventType type) {
  switch (type) {
    case WatchEventType::kAdded: return "ADDED";
    case WatchEventType::kModified: return "MODIFIED";
    case WatchEventType::kDeleted: return "DELETED";
    case WatchEventType::kBookmark: return "BOOKMARK";
    case WatchEventType::kError: return "ERROR";
  }
  return "UNKNOWN";
}

WatchFramer::WatchFramer(WatchFramerOptions options) : options_(options) {}

void WatchFramer::feed(std::string_view chunk, const EventSink& sink) {
  check_open();
  const char* p = chunk.data();
  std::size_t left = chunk.size();
  while (left > 0) {
    const auto* newline = static_cast<const char*>(std::memchr(p, '\n', left));
    const std::size_t segment = newline != nullptr ? static_cast<std::size_t>(newline - p) : left;
    scanned_ += newline != nullptr ? segment + 1 : segment;
    check_line_length(tail_.size() + segment);
    if (newline == nullptr) {
      tail_.append(p, segment);
      return;
    }
    std::size_t line_length = segment;
    if (tail_.empty()) {
      frame_line(std::string_view(p, segment), sink);  // the whole line is in this chunk
    } else {
      tail_.append(p, segment);
      line_length = tail_.size();
      frame_line(tail_, sink);
      tail_.clear();
      if (tail_.capacity() > kKeepTailCapacity) {
        std::string().swap(tail_);
      }
    }
    offset_ += line_length + 1;
    p += segment + 1;
    left -= segment + 1;
  }
}

void WatchFramer::finish() {
  check_open();
  finished_ = true;
  if (!all_space(tail_)) {
    fail(Error(Code::kUnavailable,
               fmt::format("watch stream ended inside an event: {} bytes at byte offset {} have "
                           "no terminating newline",
                           tail_.size(), offset_)));
  }
  offset_ += tail_.size();
  tail_.clear();
}

void WatchFramer::check_open() {
  if (failed_) {
    throw *failed_;
  }
  if (finished_) {
    throw Error(Code::kInternal, "watch framer: fed after finish()");
  }
}

void WatchFramer::fail(Error error) {
  failed_ = error;
  throw error;
}

void WatchFramer::check_line_length(std::size_t length) {
  if (length > options_.max_line_bytes) {
    fail(Error(Code::kResourceExhausted,
               fmt::format("watch stream: the line at byte offset {} is longer than {} bytes",
                           offset_, options_.max_line_bytes)));
  }
}

void WatchFramer::frame_line(std::string_view line, const EventSink& sink) {
  if (!line.empty() && line.back() == '\r') {
    line.remove_suffix(1);
  }
  if (all_space(line)) {
    return;
  }

  if (json_depth(line, options_.max_json_depth) > options_.max_json_depth) {
    fail(Error(Code::kResourceExhausted,
               fmt::format("watch stream: the line at byte offset {} nests JSON deeper than {}",
                           offset_, options_.max_json_depth)));
  }

  // Messages name positions only: the line may hold Secret data, which must not reach a log.
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(line.begin(), line.end());
  } catch (const nlohmann::json::parse_error& e) {
    fail(Error(Code::kDataLoss,
               fmt::format("watch stream: the line at byte offset {} is not JSON (error near "
                           "byte {} of the line)",
                           offset_, e.byte)));
  } catch (const nlohmann::json::exception& e) {
    fail(Error(Code::kDataLoss,
               fmt::format("watch stream: the line at byte offset {} is not usable JSON "
                           "(nlohmann error {})",
                           offset_, e.id)));
  }

  if (doc.is_object()) {
    const auto type = doc.find("type");
    const auto object = doc.find("object");
    if (type != doc.end() && type->is_string() && object != doc.end() && object->is_object()) {
      if (const auto parsed = parse_event_type(type->get_ref<const std::string&>())) {
        deliver(WatchEvent{*parsed, std::move(*object)}, sink);
        return;
      }
    }
    const auto kind = doc.find("kind");
    if (kind != doc.end() && kind->is_string() && kind->get_ref<const std::string&>() == "Status") {
      deliver(WatchEvent{WatchEventType::kError, std::move(doc)}, sink);
      return;
    }
  }
  fail(Error(
      Code::kDataLoss,
      fmt::format("watch stream: the line at byte offset {} is neither a watch event "
                  "({{\"type\": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, \"object\": {{...}}}}) "
                  "nor a Status",
                  offset_)));
}

void WatchFramer::deliver(WatchEvent&& event, const EventSink& sink) {
  try {
    sink(std::move(event));
  } catch (...) {
    failed_ = Error(Code::kInternal, "watch framer: abandoned after the event sink threw");
    throw;
  }
}

}  // namespace stowage::kube
