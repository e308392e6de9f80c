#include "base/sha256.h"

#include <gtest/gtest.h>

namespace stowage {
namespace {

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_digest("abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256, StreamingEqualsOneShot) {
  std::string data;
  for (int i = 0; i < 100'000; ++i) data += static_cast<char>(i * 7);
  Sha256 h;
  for (size_t off = 0; off < data.size(); off += 4099) {
    h.update(std::string_view(data).substr(off, 4099));
  }
  EXPECT_EQ(h.finish_hex(), sha256_hex(data));
}

TEST(Sha256, MovedFromHasherStillFinishes) {
  Sha256 a;
  a.update("ab");
  Sha256 b(std::move(a));
  b.update("c");
  EXPECT_EQ(b.finish_hex(), sha256_hex("abc"));
}

}  // namespace
}  // namespace stowage
