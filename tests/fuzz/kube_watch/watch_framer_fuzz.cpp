// Feeds arbitrary bytes to the watch-stream framer, cut into chunks at fuzzer-chosen points, and
// traps unless the outcome is independent of the chunking: the same events and the same error
// (code and message) as one chunk and as single bytes. Also checks the framer's bounds.
//
// Input layout: byte 0 picks the line limit; byte 1 (mod 32) is the count k of chunk sizes that
// follow; the next k bytes are chunk sizes (0 feeds an empty chunk), used in turn until the
// stream (the remaining bytes) is consumed. k = 0 means one byte per chunk.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "kube/watch_framer.h"

namespace {

using stowage::kube::WatchEvent;
using stowage::kube::WatchFramer;
using stowage::kube::WatchFramerOptions;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

struct Outcome {
  std::vector<WatchEvent> events;
  std::optional<stowage::Code> code;
  std::string message;
};

// Frames `stream` cut into pieces of the given sizes (cycled), or one piece when `sizes` is
// nullopt, then finishes.
Outcome frame(std::string_view stream, const std::optional<std::vector<std::size_t>>& sizes,
              const WatchFramerOptions& options) {
  Outcome out;
  WatchFramer framer(options);
  std::uint64_t fed = 0;
  const auto sink = [&](WatchEvent&& e) {
    check(e.object.is_object());
    out.events.push_back(std::move(e));
  };
  try {
    if (!sizes) {
      framer.feed(stream, sink);
      fed = stream.size();
    } else {
      std::size_t at = 0;
      for (std::size_t i = 0; at < stream.size(); i = (i + 1) % sizes->size()) {
        const std::size_t take = std::min((*sizes)[i], stream.size() - at);
        framer.feed(stream.substr(at, take), sink);
        fed += take;
        at += take;
        check(framer.buffered() <= options.max_line_bytes);
      }
    }
    check(framer.bytes_scanned() == fed);  // every byte looked at exactly once
    check(framer.buffered() <= options.max_line_bytes);
    check(framer.offset() + framer.buffered() == fed);
    framer.finish();
    check(framer.offset() == stream.size() && framer.buffered() == 0);
  } catch (const stowage::Error& e) {
    out.code = e.code();
    out.message = e.what();
    // A failed framer stays failed with the same error.
    try {
      framer.feed("\n", sink);
      check(false);
    } catch (const stowage::Error& again) {
      check(again.code() == e.code() && std::string_view(again.what()) == e.what());
    }
  }
  return out;
}

bool same(const Outcome& a, const Outcome& b) {
  return a.events == b.events && a.code == b.code && a.message == b.message;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  static constexpr std::size_t kLimits[] = {stowage::kube::kDefaultMaxWatchLineBytes, 16, 64, 300};
  WatchFramerOptions options;
  options.max_line_bytes = kLimits[data[0] % 4];
  options.max_json_depth = data[0] & 4 ? 8 : stowage::kube::kDefaultMaxWatchJsonDepth;
  const std::size_t k = std::min<std::size_t>(data[1] % 32, size - 2);
  std::vector<std::size_t> sizes(data + 2, data + 2 + k);
  if (sizes.empty()) sizes.push_back(1);
  // A cycle of only empty chunks would never progress; an empty chunk stays meaningful elsewhere.
  bool progress = false;
  for (const std::size_t s : sizes) progress = progress || s > 0;
  if (!progress) sizes.push_back(1);
  const std::string_view stream(reinterpret_cast<const char*>(data) + 2 + k, size - 2 - k);

  const Outcome whole = frame(stream, std::nullopt, options);
  check(same(whole, frame(stream, sizes, options)));
  if (stream.size() <= 64 * 1024) {
    check(same(whole, frame(stream, std::vector<std::size_t>{1}, options)));
  }
  return 0;
}
