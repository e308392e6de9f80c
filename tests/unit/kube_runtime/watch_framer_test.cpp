#include "kube/watch_framer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace stowage::kube {
namespace {

using nlohmann::json;

// What framing a stream produced: the events, then the error that ended it, if any.
struct Framed {
  std::vector<WatchEvent> events;
  std::optional<Code> error;
  std::string message;
};

Framed frame_chunks(const std::vector<std::string_view>& chunks, bool finish = true,
                    WatchFramerOptions options = {}) {
  Framed out;
  WatchFramer framer(options);
  const auto sink = [&](WatchEvent&& e) { out.events.push_back(std::move(e)); };
  try {
    for (const auto chunk : chunks) framer.feed(chunk, sink);
    if (finish) framer.finish();
  } catch (const Error& e) {
    out.error = e.code();
    out.message = e.what();
  }
  return out;
}

Framed frame_whole(std::string_view stream, WatchFramerOptions options = {}) {
  return frame_chunks({stream}, true, options);
}

// `stream` cut before each offset in `cuts` (ascending).
std::vector<std::string_view> cut(std::string_view stream, const std::vector<std::size_t>& cuts) {
  std::vector<std::string_view> chunks;
  std::size_t from = 0;
  for (const std::size_t at : cuts) {
    chunks.push_back(stream.substr(from, at - from));
    from = at;
  }
  chunks.push_back(stream.substr(from));
  return chunks;
}

std::string line(std::string_view type, const json& object) {
  return json{{"type", type}, {"object", object}}.dump() + "\n";
}

json pod(std::string_view name, std::string_view rv) {
  return json{{"apiVersion", "v1"},
              {"kind", "Pod"},
              {"metadata", {{"name", name}, {"namespace", "default"}, {"resourceVersion", rv}}}};
}

// Three events with multi-byte UTF-8 in the middle one and CRLF after the last, plus an empty
// line, so that splits land inside UTF-8 sequences, between '\r' and '\n', and on blank lines.
std::string three_event_stream() {
  std::string s = line("ADDED", pod("a", "1"));
  s += "\n";
  s += line("MODIFIED", pod("caf\u00e9-\u20ac-\U0001F600", "2"));
  std::string last = line("DELETED", pod("c", "3"));
  last.insert(last.size() - 1, "\r");
  return s + last;
}

std::vector<WatchEvent> three_events() {
  return {{WatchEventType::kAdded, pod("a", "1")},
          {WatchEventType::kModified, pod("caf\u00e9-\u20ac-\U0001F600", "2")},
          {WatchEventType::kDeleted, pod("c", "3")}};
}

TEST(WatchFramer, FramesWholeStream) {
  const Framed got = frame_whole(three_event_stream());
  ASSERT_FALSE(got.error) << got.message;
  EXPECT_EQ(got.events, three_events());
}

TEST(WatchFramer, FramesEverySplitPosition) {
  const std::string stream = three_event_stream();
  for (std::size_t i = 0; i <= stream.size(); ++i) {
    const Framed got = frame_chunks(cut(stream, {i}));
    ASSERT_FALSE(got.error) << "split at " << i << ": " << got.message;
    ASSERT_EQ(got.events, three_events()) << "split at " << i;
  }
}

TEST(WatchFramer, FramesEveryPairOfSplitPositions) {
  const std::string stream = three_event_stream();
  for (std::size_t i = 0; i <= stream.size(); ++i) {
    for (std::size_t j = i; j <= stream.size(); ++j) {
      const Framed got = frame_chunks(cut(stream, {i, j}));
      ASSERT_FALSE(got.error) << "splits at " << i << "," << j << ": " << got.message;
      ASSERT_EQ(got.events, three_events()) << "splits at " << i << "," << j;
    }
  }
}

TEST(WatchFramer, FramesByteByByte) {
  const std::string stream = three_event_stream();
  std::vector<std::size_t> cuts(stream.size());
  for (std::size_t i = 0; i < stream.size(); ++i) cuts[i] = i;
  const Framed got = frame_chunks(cut(stream, cuts));
  ASSERT_FALSE(got.error) << got.message;
  EXPECT_EQ(got.events, three_events());
}

TEST(WatchFramer, DeliversEachEventOnceItsNewlineArrives) {
  const std::string stream = line("ADDED", pod("a", "1")) + line("ADDED", pod("b", "2"));
  const std::size_t first_end = stream.find('\n');
  WatchFramer framer;
  std::vector<WatchEvent> events;
  const auto sink = [&](WatchEvent&& e) { events.push_back(std::move(e)); };
  framer.feed(std::string_view(stream).substr(0, first_end), sink);
  EXPECT_TRUE(events.empty());
  EXPECT_EQ(framer.buffered(), first_end);
  framer.feed("\n", sink);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(framer.buffered(), 0u);
  EXPECT_EQ(framer.offset(), first_end + 1);
  framer.feed(std::string_view(stream).substr(first_end + 1), sink);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].object["metadata"]["name"], "b");
  framer.finish();
}

TEST(WatchFramer, HandlesCrlfSplitBetweenCrAndLf) {
  std::string crlf = line("ADDED", pod("a", "1"));
  crlf.insert(crlf.size() - 1, "\r");
  const std::size_t cr = crlf.size() - 2;
  const Framed got = frame_chunks(
      {std::string_view(crlf).substr(0, cr + 1), std::string_view(crlf).substr(cr + 1)});
  ASSERT_FALSE(got.error) << got.message;
  ASSERT_EQ(got.events.size(), 1u);
  EXPECT_EQ(got.events[0].object, pod("a", "1"));
}

TEST(WatchFramer, SkipsEmptyAndWhitespaceLines) {
  const std::string stream = "\n\r\n  \t \n" + line("ADDED", pod("a", "1")) + "\n \r\n";
  const Framed got = frame_whole(stream);
  ASSERT_FALSE(got.error) << got.message;
  ASSERT_EQ(got.events.size(), 1u);
}

TEST(WatchFramer, ParsesEveryEventType) {
  const json bookmark = {
      {"kind", "Pod"}, {"apiVersion", "v1"}, {"metadata", {{"resourceVersion", "12345"}}}};
  const json status = {{"kind", "Status"}, {"apiVersion", "v1"},  {"status", "Failure"},
                       {"code", 410},      {"reason", "Expired"}, {"message", "too old"}};
  const std::string stream = line("ADDED", pod("a", "1")) + line("MODIFIED", pod("a", "2")) +
                             line("DELETED", pod("a", "3")) + line("BOOKMARK", bookmark) +
                             line("ERROR", status);
  const Framed got = frame_whole(stream);
  ASSERT_FALSE(got.error) << got.message;
  ASSERT_EQ(got.events.size(), 5u);
  EXPECT_EQ(got.events[0].type, WatchEventType::kAdded);
  EXPECT_EQ(got.events[1].type, WatchEventType::kModified);
  EXPECT_EQ(got.events[2].type, WatchEventType::kDeleted);
  EXPECT_EQ(got.events[3].type, WatchEventType::kBookmark);
  EXPECT_EQ(got.events[3].object, bookmark);
  EXPECT_EQ(got.events[4].type, WatchEventType::kError);
  EXPECT_EQ(got.events[4].object["code"], 410);
  EXPECT_EQ(watch_event_type_name(WatchEventType::kBookmark), "BOOKMARK");
}

TEST(WatchFramer, BareStatusLineBecomesErrorEvent) {
  const json status = {{"kind", "Status"},
                       {"apiVersion", "v1"},
                       {"metadata", json::object()},
                       {"status", "Failure"},
                       {"code", 500},
                       {"reason", "InternalError"},
                       {"message", "etcdserver: request timed out"}};
  const std::string stream = line("ADDED", pod("a", "1")) + status.dump() + "\n";
  const Framed got = frame_whole(stream);
  ASSERT_FALSE(got.error) << got.message;
  ASSERT_EQ(got.events.size(), 2u);
  EXPECT_EQ(got.events[1].type, WatchEventType::kError);
  EXPECT_EQ(got.events[1].object, status);
}

TEST(WatchFramer, InvalidJsonIsDataLossNamingTheOffset) {
  const std::string first = line("ADDED", pod("a", "1"));
  const std::string stream =
      first + "{\"type\": \"ADDED\", \"object\": {\"secret\": tru\n" + line("ADDED", pod("b", "2"));
  const Framed got = frame_whole(stream);
  ASSERT_EQ(got.error, Code::kDataLoss);
  EXPECT_NE(got.message.find("byte offset " + std::to_string(first.size())), std::string::npos)
      << got.message;
  EXPECT_EQ(got.message.find("secret"), std::string::npos) << "content leaked: " << got.message;
  ASSERT_EQ(got.events.size(), 1u);  // the event before the bad line was delivered
}

TEST(WatchFramer, InvalidUtf8IsDataLoss) {
  const std::string stream = "{\"type\":\"ADDED\",\"object\":{\"name\":\"\xC3\x28\"}}\n";
  EXPECT_EQ(frame_whole(stream).error, Code::kDataLoss);
}

TEST(WatchFramer, JsonThatIsNotAnEventIsDataLoss) {
  for (const std::string bad : {
           R"({"type":"FOO","object":{}})",
           R"({"type":"ADDED"})",
           R"({"object":{}})",
           R"({"type":"ADDED","object":"x"})",
           R"({"type":7,"object":{}})",
           R"({"kind":"Pod"})",
           R"({"kind":7})",
           R"([1,2,3])",
           R"("ADDED")",
           R"(42)",
           R"(1e999)",
           R"({"type":"ADDED","object":{}} {"type":"ADDED","object":{}})",
       }) {
    const Framed got = frame_whole(bad + "\n");
    EXPECT_EQ(got.error, Code::kDataLoss) << bad;
    EXPECT_NE(got.message.find("byte offset 0"), std::string::npos) << got.message;
    EXPECT_TRUE(got.events.empty()) << bad;
  }
}

TEST(WatchFramer, OversizedLineIsRejectedBeforeItsNewlineArrives) {
  WatchFramer framer(WatchFramerOptions{.max_line_bytes = 64});
  int events = 0;
  const auto sink = [&](WatchEvent&&) { ++events; };
  const std::string ok = R"({"type":"ADDED","object":{}})"
                         "\n";
  framer.feed(ok, sink);
  framer.feed(std::string(40, ' '), sink);
  try {
    framer.feed(std::string(40, 'x'), sink);  // 80 bytes without a newline
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kResourceExhausted);
    EXPECT_NE(std::string(e.what()).find("byte offset " + std::to_string(ok.size())),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(events, 1);
  EXPECT_LE(framer.buffered(), 64u);
}

TEST(WatchFramer, OversizedLineInOneChunkIsRejected) {
  const std::string big = R"({"type":"ADDED","object":{"pad":")" + std::string(100, 'p') + "\"}}\n";
  const Framed got = frame_whole(big, WatchFramerOptions{.max_line_bytes = 64});
  EXPECT_EQ(got.error, Code::kResourceExhausted);
}

TEST(WatchFramer, LineOfExactlyTheLimitIsAccepted) {
  std::string event = R"({"type":"ADDED","object":{}})";
  const WatchFramerOptions options{.max_line_bytes = event.size()};
  Framed got = frame_whole(event + "\n", options);
  EXPECT_FALSE(got.error) << got.message;
  EXPECT_EQ(got.events.size(), 1u);
  got = frame_whole(event + "\r\n", options);  // the '\r' counts
  EXPECT_EQ(got.error, Code::kResourceExhausted);
}

TEST(WatchFramer, DefaultLimitIs16MiB) {
  EXPECT_EQ(WatchFramerOptions{}.max_line_bytes, std::size_t{16} * 1024 * 1024);
  WatchFramer framer;
  const auto sink = [](WatchEvent&&) {};
  const std::string block(1 << 20, 'x');
  for (int i = 0; i < 16; ++i) framer.feed(block, sink);  // exactly 16 MiB: still fine
  EXPECT_EQ(framer.buffered(), std::size_t{16} << 20);
  try {
    framer.feed("x", sink);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kResourceExhausted);
  }
}

TEST(WatchFramer, DeepNestingIsRejected) {
  const std::string deep =
      R"({"type":"ADDED","object":{"a":)" + std::string(600, '[') + std::string(600, ']') + "}}\n";
  EXPECT_EQ(frame_whole(deep).error, Code::kResourceExhausted);
  // Brackets inside strings do not count.
  const std::string quoted =
      R"({"type":"ADDED","object":{"a":")" + std::string(600, '[') + "\"}}\n";
  const Framed got = frame_whole(quoted);
  EXPECT_FALSE(got.error) << got.message;
}

TEST(WatchFramer, FinishReportsPartialLine) {
  const std::string stream = line("ADDED", pod("a", "1")) + R"({"type":"ADDED","obj)";
  const Framed got = frame_whole(stream);
  EXPECT_EQ(got.error, Code::kUnavailable);
  EXPECT_NE(got.message.find("no terminating newline"), std::string::npos) << got.message;
  EXPECT_EQ(got.events.size(), 1u);
}

TEST(WatchFramer, FinishReportsCompleteJsonWithoutNewline) {
  // The framing contract is one event per '\n'-terminated line; a missing '\n' means the
  // connection was cut, even if the bytes happen to parse.
  const Framed got = frame_whole(R"({"type":"ADDED","object":{}})");
  EXPECT_EQ(got.error, Code::kUnavailable);
  EXPECT_TRUE(got.events.empty());
}

TEST(WatchFramer, FinishToleratesTrailingWhitespace) {
  const Framed got = frame_whole(line("ADDED", pod("a", "1")) + " \r\t");
  EXPECT_FALSE(got.error) << got.message;
  EXPECT_EQ(got.events.size(), 1u);
  EXPECT_FALSE(frame_whole("").error);
}

TEST(WatchFramer, ErrorsAreSticky) {
  WatchFramer framer;
  const auto sink = [](WatchEvent&&) {};
  EXPECT_THROW(framer.feed("nope\n", sink), Error);
  try {
    framer.feed(line("ADDED", pod("a", "1")), sink);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kDataLoss);
  }
  EXPECT_THROW(framer.finish(), Error);
}

TEST(WatchFramer, FeedAfterFinishIsInternal) {
  WatchFramer framer;
  framer.finish();
  try {
    framer.feed("\n", [](WatchEvent&&) {});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInternal);
  }
}

TEST(WatchFramer, ThrowingSinkFailsTheFramer) {
  WatchFramer framer;
  const std::string two = line("ADDED", pod("a", "1")) + line("ADDED", pod("b", "2"));
  EXPECT_THROW(framer.feed(two, [](WatchEvent&&) { throw std::runtime_error("sink"); }),
               std::runtime_error);
  try {
    framer.feed("\n", [](WatchEvent&&) {});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInternal);
  }
}

TEST(WatchFramer, SameResultWhateverTheChunkingWithErrors) {
  // Streams that end in each kind of error frame identically in one chunk and byte by byte.
  const std::string ok = line("ADDED", pod("a", "1"));
  const WatchFramerOptions small{.max_line_bytes = 150};
  for (const std::string& stream : {ok + "garbage\n" + ok, ok + std::string(200, ' ') + "\n",
                                    ok + "{\"kind\":\"Status\"}\n" + ok + "{\"type\""}) {
    const Framed whole = frame_whole(stream, small);
    std::vector<std::size_t> cuts;
    for (std::size_t i = 1; i < stream.size(); ++i) cuts.push_back(i);
    const Framed bytes = frame_chunks(cut(stream, cuts), true, small);
    EXPECT_EQ(whole.events, bytes.events);
    EXPECT_EQ(whole.error, bytes.error);
    EXPECT_EQ(whole.message, bytes.message);
    EXPECT_TRUE(whole.error);
  }
}

TEST(WatchFramer, TenMegabyteStreamInRandomChunksIsFramedInOrderInLinearTime) {
  std::string stream;
  std::size_t longest = 0;
  int n = 0;
  std::mt19937 rng(12345);
  while (stream.size() < 10'000'000) {
    json object = pod("pod-" + std::to_string(n), std::to_string(n));
    // Some events are large (up to ~64 KiB), most are small, as in a real watch.
    if (n % 97 == 0) object["data"] = std::string(rng() % 65536, 'd');
    std::string l = line(n % 3 == 0 ? "ADDED" : "MODIFIED", object);
    if (n % 5 == 0) l.insert(l.size() - 1, "\r");
    longest = std::max(longest, l.size());
    stream += l;
    ++n;
  }

  WatchFramer framer;
  int seen = 0;
  bool in_order = true;
  std::size_t max_buffered = 0;
  const auto sink = [&](WatchEvent&& e) {
    in_order = in_order && e.object["metadata"]["name"] == "pod-" + std::to_string(seen);
    ++seen;
  };
  std::size_t at = 0;
  std::size_t feeds = 0;
  while (at < stream.size()) {
    // Mostly tiny chunks (worst case for re-scanning), some large ones.
    const std::size_t size = rng() % 512 == 0 ? 1 + rng() % 100'000 : 1 + rng() % 32;
    const std::size_t take = std::min(size, stream.size() - at);
    framer.feed(std::string_view(stream).substr(at, take), sink);
    max_buffered = std::max(max_buffered, framer.buffered());
    at += take;
    ++feeds;
  }
  framer.finish();

  EXPECT_EQ(seen, n);
  EXPECT_TRUE(in_order);
  EXPECT_GT(feeds, 20'000u);
  // Linear: every byte is examined exactly once, however small the chunks.
  EXPECT_EQ(framer.bytes_scanned(), stream.size());
  EXPECT_EQ(framer.offset(), stream.size());
  // Bounded: never more than one line is held.
  EXPECT_LT(max_buffered, longest);
}

}  // namespace
}  // namespace stowage::kube
