#include "kube/client.h"

#include <fmt/format.h>

#include <optional>
#include <stop_token>
#include <utility>

#include "base/error.h"
#include "http/redact.h"

namespace stowage::kube {
namespace {

using nlohmann::json;

bool has_control_char(std::string_view s) {
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      return true;
    }
  }
  return false;
}

// The host of "https://host:port/prefix" ("[::1]" → "::1").
std::string url_host(std::string_view url) {
  const auto scheme = url.find("://");
  if (scheme != std::string_view::npos) {
    url.remove_prefix(scheme + 3);
  }
  url = url.substr(0, url.find('/'));
  if (const auto at = url.rfind('@'); at != std::string_view::npos) {
    url.remove_prefix(at + 1);
  }
  if (url.starts_with('[')) {
    return std::string(url.substr(1, url.find(']') - 1));
  }
  return std::string(url.substr(0, url.find(':')));
}

// Impersonate-Extra-<key>: the key percent-encoded where it is not a legal header token.
std::string header_key_escape(std::string_view key) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : key) {
    const bool legal = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       std::string_view("!#$&'*+-.^_`|~").find(c) != std::string_view::npos;
    if (legal) {
      out += c;
    } else {
      const auto u = static_cast<unsigned char>(c);
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 15];
    }
  }
  return out;
}

[[noreturn]] void cancelled(const std::string& context) {
  throw Error(Code::kUnavailable, context + ": cancelled");
}

// A stop token that fires when either of two does.
class EitherStop {
 public:
  EitherStop(const std::stop_token& a, const std::stop_token& b) {
    if (a.stop_requested() || b.stop_requested()) {
      source_.request_stop();
    }
    if (a.stop_possible()) {
      on_a_.emplace(a, Fire{&source_});
    }
    if (b.stop_possible()) {
      on_b_.emplace(b, Fire{&source_});
    }
  }
  std::stop_token token() const { return source_.get_token(); }

 private:
  struct Fire {
    std::stop_source* source;
    void operator()() const { source->request_stop(); }
  };
  std::stop_source source_;
  std::optional<std::stop_callback<Fire>> on_a_;
  std::optional<std::stop_callback<Fire>> on_b_;
};

json parse_body(const http::Response& r, const std::string& context) {
  if (r.body.empty()) {
    return nullptr;
  }
  json j = json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    throw Error(Code::kInternal, fmt::format("{}: {} {}: the answer is not JSON", context, r.method,
                                             http::redact_url(r.url)));
  }
  return j;
}

}  // namespace

// What one call needs beyond the ApiRequest.
struct Client::Call {
  std::string context;
  std::stop_token stop;
  std::chrono::milliseconds timeout{0};
  std::uint32_t low_speed_limit = 0;
  std::chrono::seconds low_speed_time{0};
  const http::StreamHandlers* stream = nullptr;  // null: a buffered send()
};

Client::Client(RestConfig config, http::Transport& transport, Clock& clock, ClientOptions options)
    : config_(std::move(config)),
      transport_(transport),
      clock_(clock),
      options_(std::move(options)),
      limiter_(config_.qps, config_.burst, clock) {
  if (config_.server.empty()) {
    throw_invalid("kube client: the config has no server");
  }
  if (!config_.tls_server_name.empty() && config_.tls_server_name != url_host(config_.server)) {
    throw_invalid(
        fmt::format("kube client: tls-server-name \"{}\" differs from the server's host, "
                    "and the HTTP transport cannot verify another name yet",
                    config_.tls_server_name));
  }
}

http::Request Client::build(const ApiRequest& api, const Call& call) {
  http::Request r;
  r.method = api.method;
  r.url = config_.server + api.path;
  r.headers.set("Accept", api.accept);
  if (!api.content_type.empty()) {
    r.headers.set("Content-Type", api.content_type);
  }
  r.headers.set("User-Agent", config_.user_agent);
  r.body = api.body;
  r.timeout = call.timeout;
  r.connect_timeout = options_.connect_timeout;
  r.low_speed_limit = call.low_speed_limit;
  r.low_speed_time = call.low_speed_time;
  r.tls = config_.tls;
  r.max_body_bytes = options_.max_response_bytes;
  r.stop = call.stop;
  if (config_.token_source) {
    Credential c;
    try {
      c = config_.token_source->get();
    } catch (const Error& e) {
      throw e.wrap(call.context + ": getting credentials");
    }
    if (!c.token.empty()) {
      if (has_control_char(c.token)) {
        throw Error(Code::kUnauthenticated,
                    call.context + ": the token source gave a token with control characters");
      }
      r.headers.set("Authorization", "Bearer " + c.token);
    }
    if (!c.client_cert_pem.empty()) {
      r.tls.client_cert_pem = std::move(c.client_cert_pem);
      r.tls.client_key_pem = std::move(c.client_key_pem);
      r.tls.client_cert_file.clear();
      r.tls.client_key_file.clear();
    }
  }
  const auto& imp = config_.impersonate;
  if (!imp.user.empty()) {
    r.headers.set("Impersonate-User", imp.user);
  }
  if (!imp.uid.empty()) {
    r.headers.set("Impersonate-Uid", imp.uid);
  }
  for (const auto& g : imp.groups) {
    r.headers.add("Impersonate-Group", g);
  }
  for (const auto& [k, values] : imp.extra) {
    for (const auto& v : values) {
      r.headers.add("Impersonate-Extra-" + header_key_escape(k), v);
    }
  }
  return r;
}

http::Response Client::execute(const ApiRequest& api, const Call& call) {
  bool refreshed = false;
  int retries = 0;
  for (;;) {
    if (!limiter_.acquire(call.stop)) {
      cancelled(call.context);
    }
    const http::Request request = build(api, call);
    http::Response response = call.stream != nullptr ? transport_.stream(request, *call.stream)
                                                     : transport_.send(request);
    if (response.method.empty()) {
      response.method = request.method;
    }
    if (response.url.empty()) {
      response.url = request.url;
    }
    if (response.ok()) {
      return response;
    }
    if (response.status == 401 && config_.token_source && !refreshed) {
      config_.token_source->invalidate();
      refreshed = true;
      continue;
    }
    KubeError error = error_from_response(response, call.context, clock_.wall_now());
    const bool retryable =
        response.status == 429 || (response.status >= 500 && response.status < 600);
    if (retryable && error.retry_after() && retries < options_.max_retries) {
      ++retries;
      const auto wait =
          std::min<std::chrono::seconds>(*error.retry_after(), options_.max_retry_wait);
      if (!clock_.sleep_for(wait, call.stop)) {
        cancelled(call.context);
      }
      continue;
    }
    throw error;
  }
}

json Client::execute_json(const ApiRequest& api, const std::string& context) {
  Call call;
  call.context = context;
  call.stop = options_.stop;
  call.timeout = options_.request_timeout;
  return parse_body(execute(api, call), context);
}

json Client::get(const ResourceRef& ref, const GetOptions& options) {
  return execute_json(get_request(ref, options), "get " + describe(ref));
}

std::optional<json> Client::try_get(const ResourceRef& ref, const GetOptions& options) {
  try {
    return get(ref, options);
  } catch (const Error& e) {
    if (e.code() == Code::kNotFound) {
      return std::nullopt;
    }
    throw;
  }
}

json Client::list(const ResourceRef& collection, const ListOptions& options) {
  return execute_json(list_request(collection, options), "list " + describe(collection));
}

void Client::list_pages(const ResourceRef& collection, ListOptions options, std::int64_t page_size,
                        const std::function<void(json& page)>& on_page) {
  options.limit = page_size;
  options.continue_token.clear();
  for (;;) {
    json page = list(collection, options);
    std::string next;
    if (const auto m = page.find("metadata"); m != page.end() && m->is_object()) {
      if (const auto c = m->find("continue"); c != m->end() && c->is_string()) {
        next = *c;
      }
    }
    on_page(page);
    if (next.empty()) {
      return;
    }
    if (next == options.continue_token) {
      throw Error(Code::kInternal, fmt::format("list {}: the server repeated a continue token",
                                               describe(collection)));
    }
    options.continue_token = std::move(next);
    options.resource_version.reset();  // the continue token carries the snapshot
    options.resource_version_match.clear();
  }
}

json Client::list_all(const ResourceRef& collection, ListOptions options, std::int64_t page_size) {
  json result;
  json items = json::array();
  list_pages(collection, std::move(options), page_size, [&](json& page) {
    if (const auto it = page.find("items"); it != page.end() && it->is_array()) {
      for (auto& item : *it) {
        items.push_back(std::move(item));
      }
    }
    result = std::move(page);
  });
  if (!result.is_object()) {
    result = json::object();
  }
  result["items"] = std::move(items);
  if (auto m = result.find("metadata"); m != result.end() && m->is_object()) {
    m->erase("continue");
  }
  return result;
}

json Client::create(const ResourceRef& collection, const json& object,
                    const WriteOptions& options) {
  return execute_json(
      create_request(collection, object, options),
      "create " + describe(ResourceRef{collection.gvr, collection.namespace_, "", ""}));
}

json Client::update(const ResourceRef& ref, const json& object, const WriteOptions& options) {
  return execute_json(update_request(ref, object, options), "update " + describe(ref));
}

json Client::update_status(const ResourceRef& ref, const json& object,
                           const WriteOptions& options) {
  ResourceRef status = ref;
  status.subresource = "status";
  return update(status, object, options);
}

json Client::patch(const ResourceRef& ref, PatchType type, const json& patch,
                   const PatchOptions& options) {
  return execute_json(patch_request(ref, type, patch, options), "patch " + describe(ref));
}

json Client::apply(const ResourceRef& ref, const json& intent, const PatchOptions& options) {
  return execute_json(apply_request(ref, intent, options), "apply " + describe(ref));
}

json Client::delete_(const ResourceRef& ref, const DeleteOptions& options) {
  return execute_json(delete_request(ref, options), "delete " + describe(ref));
}

json Client::get_path(std::string_view path) {
  if (!path.starts_with('/') || has_control_char(path)) {
    throw_invalid(fmt::format("get_path: \"{}\" is not an absolute API path", path));
  }
  ApiRequest api;
  api.method = "GET";
  api.path = std::string(path);
  return execute_json(api, "get " + std::string(path));
}

void Client::watch(const ResourceRef& collection, ListOptions options,
                   const std::function<bool(std::string_view chunk)>& on_chunk,
                   const std::stop_token& stop) {
  if (!options.timeout_seconds) {
    options.timeout_seconds = options_.default_watch_timeout.count();
  }
  const ApiRequest api = watch_request(collection, options);
  const std::string context = "watch " + describe(collection);
  const EitherStop either(options_.stop, stop);
  http::StreamHandlers handlers;
  handlers.on_head = [](const http::Response& head) {
    return head.status == 200 ? http::BodyAction::kStream : http::BodyAction::kBuffer;
  };
  handlers.on_body = [&](std::string_view chunk) { return on_chunk(chunk); };
  Call call;
  call.context = context;
  call.stop = either.token();
  const std::chrono::seconds server_timeout(*options.timeout_seconds);
  call.timeout = server_timeout + 3 * options_.watch_idle_slack;  // a backstop
  call.low_speed_limit = 1;  // bytes per second: any event or bookmark keeps it alive
  call.low_speed_time = server_timeout + options_.watch_idle_slack;
  call.stream = &handlers;
  try {
    execute(api, call);
  } catch (const Error&) {
    if (call.stop.stop_requested()) {
      return;
    }
    throw;
  }
}

}  // namespace stowage::kube
