// Feeds arbitrary bytes to the HTTP/1.1 response decoder (status line, header block, chunked,
// Content-Length and read-to-close bodies), cut into chunks at fuzzer-chosen points, and traps
// unless the outcome is independent of the chunking: the same head, body, end and error (code
// and message) as one chunk and as single bytes. Also checks the decoder's own invariants.
//
// Input layout: byte 0 picks the request kind (bit 0: HEAD, bit 1: CONNECT) and the limits
// (bits 2-3); byte 1 (mod 32) is the count k of chunk sizes that follow; the next k bytes are
// chunk sizes (0 feeds an empty chunk), used in turn until the stream (the remaining bytes) is
// consumed. k = 0 means one byte per chunk.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "http/http1_protocol.h"

namespace {

using stowage::http::ResponseDecoder;
using stowage::http::ResponseLimits;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

struct Outcome {
  bool head = false;
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool done = false;
  bool keep_alive = false;
  std::size_t consumed = 0;
  std::optional<stowage::Code> code;
  std::string message;

  bool operator==(const Outcome&) const = default;
};

Outcome decode(std::string_view stream, const std::vector<std::size_t>* sizes, bool head_request,
               bool connect_request, const ResponseLimits& limits) {
  Outcome out;
  ResponseDecoder decoder(head_request, connect_request, limits);
  try {
    std::size_t at = 0;
    std::size_t turn = 0;
    while (at < stream.size() && !decoder.done()) {
      std::size_t take = stream.size() - at;
      if (sizes != nullptr) {
        take = std::min((*sizes)[turn], take);
        turn = (turn + 1) % sizes->size();
      }
      std::string_view piece = stream.substr(at, take);
      while (!piece.empty() && !decoder.done()) {
        std::string_view body;
        const std::size_t used = decoder.feed(piece, &body);
        check(used <= piece.size());
        check(body.size() <= used);
        check(body.empty() ||
              (body.data() >= piece.data() && body.data() + body.size() <= piece.data() + used));
        check(used > 0 || decoder.done());
        check(body.empty() || decoder.head_complete());
        out.body += body;
        out.consumed += used;
        piece.remove_prefix(used);
        if (decoder.done()) at = stream.size();
      }
      if (!decoder.done()) at += take;
    }
    if (!decoder.done()) decoder.finish();
    check(decoder.done() && decoder.head_complete());
    std::string_view none;
    check(decoder.feed("HTTP/1.1 200 OK\r\n", &none) == 0 && none.empty());
    if (head_request) check(out.body.empty());
    if (decoder.framing() == ResponseDecoder::Framing::kLength) {
      check(out.body.size() == decoder.content_length());
    }
  } catch (const stowage::Error& e) {
    out.code = e.code();
    out.message = e.what();
    out.consumed = 0;  // a failing feed() reports no count: only comparable without errors
    check(e.code() == stowage::Code::kUnavailable);
  }
  // Counted before parsing, so a refused byte counts too: the request was answered.
  check(decoder.started() == !stream.empty());
  out.done = decoder.done();
  out.head = decoder.head_complete();
  if (out.head) {
    out.status = decoder.status();
    check(out.status >= 200 && out.status <= 999);
    for (const auto& field : decoder.headers()) out.headers.push_back(field);
    out.keep_alive = decoder.keep_alive();
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const bool head_request = (data[0] & 1) != 0;
  const bool connect_request = (data[0] & 2) != 0;
  static constexpr ResponseLimits kLimits[] = {{}, {64, 8}, {300, 20}, {4096, 64}};
  const ResponseLimits limits = kLimits[(data[0] >> 2) % 4];
  const std::size_t k = std::min<std::size_t>(data[1] % 32, size - 2);
  std::vector<std::size_t> sizes(data + 2, data + 2 + k);
  if (sizes.empty()) sizes.push_back(1);
  bool progress = false;
  for (const std::size_t s : sizes) progress = progress || s > 0;
  if (!progress) sizes.push_back(1);
  const std::string_view stream(reinterpret_cast<const char*>(data) + 2 + k, size - 2 - k);

  const Outcome whole = decode(stream, nullptr, head_request, connect_request, limits);
  check(whole == decode(stream, &sizes, head_request, connect_request, limits));
  if (stream.size() <= 64 * 1024) {
    const std::vector<std::size_t> one = {1};
    check(whole == decode(stream, &one, head_request, connect_request, limits));
  }
  return 0;
}
