#include "support/fault_proxy.h"

#include <fmt/format.h>
#include <regex.h>

#include <algorithm>

#include "base/error.h"
#include "http/errors.h"
#include "support/http_wire.h"

namespace stowage::test {
namespace {

using SteadyClock = std::chrono::steady_clock;

std::string default_error_body(int status) {
  const char* code = status == 429   ? "TOOMANYREQUESTS"
                     : status == 401 ? "UNAUTHORIZED"
                     : status == 403 ? "DENIED"
                     : status == 404 ? "NAME_UNKNOWN"
                     : status >= 500 ? "UNAVAILABLE"
                                     : "UNKNOWN";
  return fmt::format(
      R"({{"errors":[{{"code":"{}","message":"injected by FaultProxy","detail":{}}}]}})", code,
      status);
}

const char* fault_name(const Fault& fault) {
  return std::visit(
      [](const auto& f) -> const char* {
        using T = std::decay_t<decltype(f)>;
        if constexpr (std::is_same_v<T, ResetAfter>) return "reset";
        if constexpr (std::is_same_v<T, RespondStatus>) return "status";
        if constexpr (std::is_same_v<T, CorruptByte>) return "corrupt";
        if constexpr (std::is_same_v<T, Stall>) return "stall";
        return "throttle";
      },
      fault);
}

std::string synthetic_response(const std::string& method, const RespondStatus& rs, bool close) {
  const std::string body = rs.body.empty() ? default_error_body(rs.status) : rs.body;
  std::string reason(http::reason_phrase(rs.status));
  std::string out =
      fmt::format("HTTP/1.1 {} {}\r\n", rs.status, reason.empty() ? "Status" : reason);
  out += "Content-Type: application/json; charset=utf-8\r\n";
  out += "Docker-Distribution-Api-Version: registry/2.0\r\n";
  if (rs.retry_after) out += fmt::format("Retry-After: {}\r\n", *rs.retry_after);
  out += fmt::format("Content-Length: {}\r\n", body.size());
  if (close) out += "Connection: close\r\n";
  out += "\r\n";
  if (method != "HEAD") out += body;
  return out;
}

}  // namespace

// regexec() on one compiled pattern is safe from several threads at once (POSIX).
struct FaultProxy::PathPattern {
  explicit PathPattern(const std::string& pattern) {
    const int rc = ::regcomp(&regex, pattern.c_str(), REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
      char message[256];
      ::regerror(rc, &regex, message, sizeof message);
      throw Error(Code::kInvalidArgument,
                  fmt::format("FaultProxy: invalid path regex \"{}\": {}", pattern, message));
    }
  }
  ~PathPattern() { ::regfree(&regex); }
  PathPattern(const PathPattern&) = delete;
  PathPattern& operator=(const PathPattern&) = delete;
  bool search(const std::string& text) const {
    return ::regexec(&regex, text.c_str(), 0, nullptr, 0) == 0;
  }

  regex_t regex{};
};

FaultProxy::FaultProxy(int upstream_port) : upstream_port_(upstream_port) {
  server_ = std::make_unique<wire::Server>(
      [this](wire::Conn& conn, const std::stop_token& stop, wire::SocketSet& sockets) {
        serve(conn, stop, sockets);
      });
}

FaultProxy::~FaultProxy() {
  stop();
}

void FaultProxy::stop() {
  server_->stop();
}

int FaultProxy::port() const {
  return server_->port();
}

std::string FaultProxy::host() const {
  return fmt::format("127.0.0.1:{}", server_->port());
}

std::string FaultProxy::url() const {
  return "http://" + host();
}

int FaultProxy::connections_accepted() const {
  return server_->connections_accepted();
}

int FaultProxy::add_fault(FaultRule rule) {
  auto path =
      std::make_shared<const PathPattern>(rule.path.empty() ? std::string(".*") : rule.path);
  std::lock_guard lock(mutex_);
  rules_.push_back(Rule{std::move(rule), std::move(path)});
  return static_cast<int>(rules_.size()) - 1;
}

void FaultProxy::clear_faults() {
  std::lock_guard lock(mutex_);
  for (auto& r : rules_) r.active = false;
}

int FaultProxy::fault_count(int id) const {
  std::lock_guard lock(mutex_);
  if (id < 0 || static_cast<std::size_t>(id) >= rules_.size()) return 0;
  return rules_[static_cast<std::size_t>(id)].applied;
}

std::vector<ProxiedRequest> FaultProxy::requests() const {
  std::lock_guard lock(mutex_);
  return log_;
}

void FaultProxy::clear_requests() {
  std::lock_guard lock(mutex_);
  log_.clear();
}

bool FaultProxy::wait_for_requests(std::size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return log_.size() >= n; });
}

int FaultProxy::stalled() const {
  std::lock_guard lock(mutex_);
  return stalled_;
}

bool FaultProxy::wait_for_stalled(int n, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return stalled_ >= n; });
}

void FaultProxy::release_stalls() {
  {
    std::lock_guard lock(mutex_);
    ++release_generation_;
  }
  changed_.notify_all();
}

FaultProxy::Plan FaultProxy::match(const wire::RequestHead& head) {
  const std::string path = head.path();
  std::lock_guard lock(mutex_);
  for (std::size_t i = 0; i < rules_.size(); ++i) {
    Rule& r = rules_[i];
    if (!r.active) continue;
    if (!r.spec.method.empty() && r.spec.method != head.method) continue;
    if (!r.path->search(path)) continue;
    ++r.seen;
    if (r.seen <= r.spec.skip) continue;
    if (r.spec.times > 0 && r.applied >= r.spec.times) continue;
    ++r.applied;
    return Plan{r.spec.fault, static_cast<int>(i)};
  }
  return Plan{};
}

void FaultProxy::log(ProxiedRequest entry) {
  {
    std::lock_guard lock(mutex_);
    log_.push_back(std::move(entry));
  }
  changed_.notify_all();
}

void FaultProxy::stall(std::optional<SteadyClock::time_point> deadline,
                       const std::stop_token& stop) {
  std::unique_lock lock(mutex_);
  const std::uint64_t generation = release_generation_;
  ++stalled_;
  changed_.notify_all();
  const auto released = [&] { return release_generation_ != generation; };
  if (deadline) {
    changed_.wait_until(lock, stop, *deadline, released);
  } else {
    changed_.wait(lock, stop, released);
  }
  --stalled_;
  changed_.notify_all();
}

bool FaultProxy::pause_until(SteadyClock::time_point deadline, const std::stop_token& stop) {
  std::unique_lock lock(mutex_);
  changed_.wait_until(lock, stop, deadline, [] { return false; });
  return !stop.stop_requested();
}

FaultProxy::Relay FaultProxy::relay_body(const Plan& plan, wire::Conn& upstream, wire::Conn& client,
                                         const wire::BodyFraming& framing, ProxiedRequest& entry,
                                         const std::stop_token& stop) {
  // Faults apply on payload offsets (chunked bodies are re-chunked as they arrive).
  std::optional<std::uint64_t> reset_at;
  std::optional<std::uint64_t> corrupt_at;
  std::optional<std::uint64_t> stall_at;
  std::optional<SteadyClock::time_point> stall_deadline;
  std::uint64_t rate = 0;
  if (plan.fault) {
    if (const auto* f = std::get_if<ResetAfter>(&*plan.fault)) reset_at = f->body_bytes;
    if (const auto* f = std::get_if<CorruptByte>(&*plan.fault)) corrupt_at = f->offset;
    if (const auto* f = std::get_if<Throttle>(&*plan.fault))
      rate = std::max<std::uint64_t>(1, f->bytes_per_second);
    if (const auto* f = std::get_if<Stall>(&*plan.fault)) stall_at = f->after_body_bytes;
  }
  const auto do_stall = [&] {
    const auto& s = std::get<Stall>(*plan.fault);
    if (s.duration) stall_deadline = SteadyClock::now() + *s.duration;
    stall(stall_deadline, stop);
    stall_at.reset();
  };
  bool reset_now = reset_at && *reset_at == 0;
  if (stall_at && *stall_at == 0) do_stall();

  wire::BodyWriter to_client(client, framing.kind);
  std::uint64_t sent = 0;
  const auto throttle_start = SteadyClock::now();
  const auto write_paced = [&](std::string_view part) {
    if (rate == 0) return to_client.write(part);
    const std::size_t slice = static_cast<std::size_t>(std::max<std::uint64_t>(1, rate / 50));
    std::uint64_t offset = sent;
    while (!part.empty()) {
      const auto due = throttle_start + std::chrono::microseconds(offset * 1'000'000 / rate);
      if (!pause_until(due, stop)) return false;
      const std::string_view now = part.substr(0, std::min(slice, part.size()));
      if (!to_client.write(now)) return false;
      offset += now.size();
      part.remove_prefix(now.size());
    }
    return true;
  };
  const auto sink = [&](std::string_view piece) {
    while (!piece.empty()) {
      if (reset_now) return false;
      std::uint64_t limit = piece.size();
      if (reset_at) limit = std::min(limit, *reset_at - sent);
      if (stall_at && *stall_at > sent) limit = std::min(limit, *stall_at - sent);
      std::string part(piece.substr(0, static_cast<std::size_t>(limit)));
      if (corrupt_at && *corrupt_at >= sent && *corrupt_at < sent + limit) {
        auto& byte = part[static_cast<std::size_t>(*corrupt_at - sent)];
        byte = static_cast<char>(~static_cast<unsigned char>(byte));
      }
      if (!write_paced(part)) return false;
      sent += limit;
      piece.remove_prefix(static_cast<std::size_t>(limit));
      if (stall_at && sent == *stall_at) do_stall();
      if (reset_at && sent == *reset_at) reset_now = true;
    }
    return !reset_now;
  };
  const bool body_ok = !reset_now && wire::read_body(upstream, framing, sink);
  entry.body_bytes = sent;
  if (reset_now) return Relay::kReset;
  if (!body_ok || !to_client.finish()) return Relay::kFailed;
  return Relay::kComplete;
}

void FaultProxy::serve(wire::Conn& client, const std::stop_token& stop, wire::SocketSet& sockets) {
  std::unique_ptr<wire::Conn> upstream;
  while (!stop.stop_requested()) {
    auto head = wire::read_request_head(client);
    if (!head) return;
    ProxiedRequest entry;
    entry.method = head->method;
    entry.target = head->target;
    entry.range = head->headers.get("Range");

    const auto request_framing = wire::request_framing(*head);
    if (!request_framing) {
      entry.status = 400;
      client.write_all(wire::simple_response(400, "bad request framing", {}, /*close=*/true));
      log(std::move(entry));
      return;
    }
    const bool client_keep_alive = wire::keep_alive(head->version, head->headers);
    bool expect_continue = false;
    if (const auto expect = head->headers.get("Expect");
        expect && http::iequals(*expect, "100-continue")) {
      // Answered here: the upstream then never waits for the client's go-ahead.
      expect_continue = true;
      head->headers.remove("Expect");
    }
    const Plan plan = match(*head);
    if (plan.fault) {
      entry.fault = fault_name(*plan.fault);
      entry.rule = plan.rule;
    }

    // Synthetic answers: the upstream never sees the request.
    if (plan.fault && std::holds_alternative<RespondStatus>(*plan.fault)) {
      const auto& rs = std::get<RespondStatus>(*plan.fault);
      bool keep = client_keep_alive;
      if (request_framing->kind != wire::Framing::kNone) {
        // Unread bodies cannot stay on a kept-alive connection: read them unless the client is
        // still waiting for 100 Continue, in which case the connection ends after the answer.
        if (expect_continue) {
          keep = false;
        } else if (!wire::read_body(client, *request_framing,
                                    [](std::string_view) { return true; })) {
          return;
        }
      }
      entry.status = rs.status;
      const std::string response = synthetic_response(head->method, rs, !keep);
      entry.complete = client.write_all(response);
      log(std::move(entry));
      if (!keep) return;
      continue;
    }

    // Forward the request.
    if (upstream && upstream->idle_unusable()) upstream.reset();
    if (!upstream) upstream = wire::connect_loopback(upstream_port_, &sockets);
    if (!upstream) {
      entry.status = 502;
      client.write_all(wire::simple_response(502, "upstream refused the connection", {}, true));
      log(std::move(entry));
      return;
    }
    if (expect_continue && !client.write_all("HTTP/1.1 100 Continue\r\n\r\n")) return;
    if (!upstream->write_all(wire::serialize(*head))) return;
    {
      wire::BodyWriter to_upstream(*upstream, request_framing->kind);
      const bool sent =
          wire::read_body(client, *request_framing,
                          [&](std::string_view piece) { return to_upstream.write(piece); }) &&
          to_upstream.finish();
      if (!sent) return;
    }

    // Read the response head (interim 1xx answers go to the client as they are).
    std::optional<wire::ResponseHead> response;
    while (true) {
      response = wire::read_response_head(*upstream);
      if (!response || response->status >= 200 || response->status == 101) break;
      if (!client.write_all(wire::serialize(*response))) return;
    }
    const auto framing = response ? wire::response_framing(head->method, *response) : std::nullopt;
    if (!response || !framing) {
      entry.status = 502;
      client.write_all(wire::simple_response(502, "bad upstream response", {}, true));
      log(std::move(entry));
      return;
    }
    entry.status = response->status;
    entry.chunked = framing->kind == wire::Framing::kChunked;
    const bool upstream_keep_alive = wire::keep_alive(response->version, response->headers) &&
                                     framing->kind != wire::Framing::kUntilClose;
    if (!client.write_all(wire::serialize(*response))) return;

    const Relay relayed = relay_body(plan, *upstream, client, *framing, entry, stop);
    if (relayed == Relay::kReset) {
      client.reset();
      upstream.reset();  // the rest of its body is unread
    }
    if (relayed != Relay::kComplete) {
      log(std::move(entry));
      return;
    }
    entry.complete = true;
    log(std::move(entry));
    if (!upstream_keep_alive) upstream.reset();
    if (!client_keep_alive || !wire::keep_alive(response->version, response->headers) ||
        framing->kind == wire::Framing::kUntilClose) {
      return;
    }
  }
}

}  // namespace stowage::test
