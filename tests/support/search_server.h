// A stand-in for Docker Hub's index search API (`GET /v1/search?q=&n=`), which no Debian package
// serves: docker-registry (distribution) offers only the catalog. A plain-HTTP server on 127.0.0.1
// (kernel-chosen port) answering `GET /v2/` with 200 (clients probe it before searching) and
// `GET /v1/search` with the entries of a fixed dataset whose name contains q, in dataset order, at
// most n of them (25 without n), in Docker Hub's JSON shape. Everything else is 404. Its
// behaviour is validated by pointing `podman search` at the same server.
//   SearchServer server(SearchServer::default_dataset());
//   stowctl search <server.host()>/alpine   (registries.conf marks server.host() insecure)
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace stowage::test {

namespace wire {
class Conn;
class Server;
}  // namespace wire

struct SearchEntry {
  std::string name;  // "library/alpine" style, as the index lists it
  std::string description;
  std::uint64_t star_count = 0;
  bool is_official = false;
  bool is_automated = false;
};

class SearchServer {
 public:
  // A dozen entries matching "stow": official and not, automated and not, star counts spread
  // from 0 to several thousand, one description longer than a table column and one with a
  // newline.
  static std::vector<SearchEntry> default_dataset();

  // Starts serving. Throws stowage::Error when it cannot listen.
  explicit SearchServer(std::vector<SearchEntry> dataset = default_dataset());
  ~SearchServer();
  SearchServer(const SearchServer&) = delete;
  SearchServer& operator=(const SearchServer&) = delete;

  int port() const;
  std::string host() const;  // "127.0.0.1:PORT"
  const std::vector<SearchEntry>& dataset() const { return dataset_; }
  // Request targets (path and query) received so far, in order. Thread-safe.
  std::vector<std::string> requests() const;

 private:
  void serve(wire::Conn& conn);
  std::string respond(const std::string& method, const std::string& path,
                      const std::string& query) const;

  std::vector<SearchEntry> dataset_;
  mutable std::mutex mutex_;  // guards requests_
  std::vector<std::string> requests_;
  std::unique_ptr<wire::Server> server_;
};

}  // namespace stowage::test
