#include "support/search_server.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>

#include "support/http_wire.h"

namespace stowage::test {

using nlohmann::json;

std::vector<SearchEntry> SearchServer::default_dataset() {
  return {
      {"stowage", "The Stowage operator and node agent in one image, built from the release branch",
       4200, true, false},
      {"stow", "GNU Stow, the symlink farm manager", 1500, true, false},
      {"team/stowage-agent", "Node agent\nwith a second line", 320, false, true},
      {"team/stowage-cli", "stowctl", 45, false, false},
      {"stowaway", "A small official image", 12, true, false},
      {"acme/stowbox", "boxes", 0, false, true},
      {"acme/stow-lite", "", 7, false, false},
      {"mirror/stowage", "A mirror of the official image", 99, false, true},
      {"stowage-operator", "The operator alone", 880, true, false},
      {"ci/stow-runner", "CI runner", 3, false, true},
      {"zed/stowed", "", 150, false, false},
      {"other/unrelated", "does not match the usual term", 10, false, false},
  };
}

SearchServer::SearchServer(std::vector<SearchEntry> dataset) : dataset_(std::move(dataset)) {
  server_ = std::make_unique<wire::Server>(
      [this](wire::Conn& conn, const std::stop_token&, wire::SocketSet&) { serve(conn); });
}

SearchServer::~SearchServer() {
  server_->stop();
}

int SearchServer::port() const {
  return server_->port();
}

std::string SearchServer::host() const {
  return fmt::format("127.0.0.1:{}", port());
}

std::vector<std::string> SearchServer::requests() const {
  std::lock_guard lock(mutex_);
  return requests_;
}

void SearchServer::serve(wire::Conn& conn) {
  while (true) {
    const auto head = wire::read_request_head(conn);
    if (!head) return;
    const auto framing = wire::request_framing(*head);
    const auto body = framing ? wire::read_body(conn, *framing, 64 * 1024) : std::nullopt;
    {
      std::lock_guard lock(mutex_);
      requests_.push_back(head->target);
    }
    const std::string response =
        body ? respond(head->method, head->path(), head->query())
             : wire::simple_response(400, "unreadable request body\n", {}, /*close=*/true);
    if (!conn.write_all(response) || !body || !wire::keep_alive(head->version, head->headers)) {
      return;
    }
  }
}

std::string SearchServer::respond(const std::string& method, const std::string& path,
                                  const std::string& query) const {
  const std::vector<std::pair<std::string, std::string>> json_type = {
      {"Content-Type", "application/json"}};
  if (method != "GET" && method != "HEAD") {
    return wire::simple_response(405, "{}", {{"Allow", "GET, HEAD"}});
  }
  if (path == "/v2/" || path == "/v2") {
    return wire::simple_response(200, "{}", json_type);
  }
  if (path != "/v1/search") return wire::simple_response(404, "404 page not found\n");
  std::string term;
  std::size_t limit = 25;
  for (const auto& [key, value] : wire::parse_form(query)) {
    if (key == "q") term = value;
    if (key == "n") {
      std::size_t n = 0;
      const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (ec != std::errc() || end != value.data() + value.size() || n == 0) {
        return wire::simple_response(400, R"({"error":"n must be a positive number"})", json_type);
      }
      limit = std::min<std::size_t>(n, 100);
    }
  }
  json results = json::array();
  for (const auto& e : dataset_) {
    if (results.size() >= limit) break;
    if (e.name.find(term) == std::string::npos) continue;
    results.push_back({{"name", e.name},
                       {"description", e.description},
                       {"star_count", e.star_count},
                       {"is_official", e.is_official},
                       {"is_automated", e.is_automated}});
  }
  const json out = {{"num_results", results.size()}, {"query", term}, {"results", results}};
  return wire::simple_response(200, out.dump(), json_type);
}

}  // namespace stowage::test
