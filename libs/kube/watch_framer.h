// Frames a Kubernetes watch stream (`GET ...?watch=1`, a chunked body of newline-terminated JSON
// `WatchEvent`s) into events. Feed it the body's chunks as they arrive, whatever their boundaries;
// it yields each complete event once its '\n' has arrived, keeps only the unfinished tail, and
// looks at every byte once. Memory is bounded: a line longer than the limit is an error.
// Usage: WatchFramer f; f.feed(chunk, sink) for each chunk; f.finish() at end of stream.
// One framer per watch connection; not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "base/error.h"

namespace stowage::kube {

enum class WatchEventType { kAdded, kModified, kDeleted, kBookmark, kError };

// "ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR" (the wire names).
std::string_view watch_event_type_name(WatchEventType type);

struct WatchEvent {
  WatchEventType type = WatchEventType::kAdded;
  // The object; for kError a metav1.Status ({"kind":"Status","code":410,"reason":"Expired",...}).
  nlohmann::json object;

  friend bool operator==(const WatchEvent&, const WatchEvent&) = default;
};

inline constexpr std::size_t kDefaultMaxWatchLineBytes = std::size_t{16} << 20;
inline constexpr std::size_t kDefaultMaxWatchJsonDepth = 512;

struct WatchFramerOptions {
  // Longest accepted line, in bytes before its '\n' (a '\r' before the '\n' counts).
  std::size_t max_line_bytes = kDefaultMaxWatchLineBytes;
  // Deepest accepted nesting of JSON arrays and objects in one line. Deep nesting costs far more
  // memory per input byte than flat JSON once parsed, so it is limited separately.
  std::size_t max_json_depth = kDefaultMaxWatchJsonDepth;
};

class WatchFramer {
 public:
  using EventSink = std::function<void(WatchEvent&&)>;

  explicit WatchFramer(WatchFramerOptions options = {});

  // Frames `chunk` (any bytes, any length, possibly empty) and calls `sink` for each event it
  // completes, in stream order. Lines are handled as follows:
  //  - empty or whitespace-only lines are skipped; a trailing '\r' is dropped;
  //  - {"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": {...}} is an event;
  //  - a bare metav1.Status object ("kind": "Status") becomes a kError event carrying it;
  //  - anything else throws DataLoss naming the line's byte offset in the stream;
  //  - a line over max_line_bytes (detected as soon as that many bytes lack a '\n') or nested
  //    deeper than max_json_depth throws ResourceExhausted.
  // Events before a bad line are delivered before the throw. After any error the framer is
  // failed: every later feed() or finish() throws the same error. If `sink` throws, its exception
  // propagates and the framer is failed with Internal.
  void feed(std::string_view chunk, const EventSink& sink);

  // Declares the end of the stream. Throws Unavailable when the stream stopped inside an event (a
  // tail with anything but whitespace and no '\n': the connection was cut; re-watch). Later
  // feed() calls throw Internal.
  void finish();

  // Stream offset of the first byte not yet framed (the start of the buffered tail).
  std::uint64_t offset() const { return offset_; }
  // Bytes held for an unfinished line; never more than max_line_bytes.
  std::size_t buffered() const { return tail_.size(); }
  // Bytes examined while looking for '\n', over the framer's life. Equals the bytes fed: nothing
  // is scanned twice.
  std::uint64_t bytes_scanned() const { return scanned_; }

 private:
  void check_open();
  [[noreturn]] void fail(Error error);
  void check_line_length(std::size_t length);
  void frame_line(std::string_view line, const EventSink& sink);
  void deliver(WatchEvent&& event, const EventSink& sink);

  WatchFramerOptions options_;
  std::string tail_;  // bytes of the current line so far; never holds a '\n'
  std::uint64_t offset_ = 0;
  std::uint64_t scanned_ = 0;
  bool finished_ = false;
  std::optional<Error> failed_;
};

}  // namespace stowage::kube
