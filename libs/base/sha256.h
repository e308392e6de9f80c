// Streaming SHA-256 over OpenSSL EVP, for hashing blobs while they are written (no second pass).
// One Sha256 per stream; not thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace stowage {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  Sha256(Sha256&& other) noexcept;
  Sha256& operator=(Sha256&& other) noexcept;

  void update(std::string_view data);
  void update(const void* data, std::size_t size);
  // Finishes the stream; the object must not be updated afterwards.
  std::array<std::uint8_t, 32> finish();
  // finish() as 64 lowercase hex characters.
  std::string finish_hex();

 private:
  void* ctx_;  // EVP_MD_CTX*
};

// One-shot helpers: lowercase hex, and "sha256:<hex>" as OCI digests are written.
std::string sha256_hex(std::string_view data);
std::string sha256_digest(std::string_view data);
std::string to_hex(const std::uint8_t* data, std::size_t size);

}  // namespace stowage
