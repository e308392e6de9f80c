#include "kube/encoding.h"

#include <gtest/gtest.h>

namespace stowage::kube {
namespace {

using std::chrono::seconds;
using std::chrono::system_clock;

TEST(Base64, RoundTripsEveryTailLength) {
  const std::string inputs[] = {"",     "f",     "fo",     "foo",
                                "foob", "fooba", "foobar", std::string("\x00\xff\x10", 3)};
  const std::string encoded[] = {"",         "Zg==",     "Zm8=",     "Zm9v",
                                 "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy", "AP8Q"};
  for (std::size_t i = 0; i < std::size(inputs); ++i) {
    EXPECT_EQ(base64_encode(inputs[i]), encoded[i]);
    EXPECT_EQ(base64_decode(encoded[i]), inputs[i]);
  }
}

TEST(Base64, DecodesWhatPeoplePaste) {
  EXPECT_EQ(base64_decode("Zm9v\nYmFy\n"), "foobar");  // wrapped lines
  EXPECT_EQ(base64_decode("Zm9vYg"), "foob");          // no padding
  EXPECT_EQ(base64_decode("  Zg = = "), "f");
}

TEST(Base64, RefusesMalformed) {
  for (const char* bad :
       {"Zm9v!", "Z", "Zm9vY", "Zg=", "Zg===", "Zm8==", "Zg==Zg==", "Zh==", "-_8=", "Zm9v="}) {
    EXPECT_EQ(base64_decode(bad), std::nullopt) << bad;
  }
}

TEST(Rfc3339, ParsesZonesAndFractions) {
  const system_clock::time_point base(seconds(1'700'000'000));  // 2023-11-14T22:13:20Z
  const struct {
    const char* text;
    system_clock::time_point want;
  } cases[] = {
      {"2023-11-14T22:13:20Z", base},
      {"2023-11-14t22:13:20z", base},
      {"2023-11-14T23:13:20+01:00", base},
      {"2023-11-14T20:43:20-01:30", base},
      {"2023-11-14T22:13:20.5Z", base + std::chrono::milliseconds(500)},
      {"2023-11-14T22:13:20.123456789Z", base + std::chrono::microseconds(123456)},
      {"1970-01-01T00:00:00Z", system_clock::time_point{}},
      {"2024-02-29T00:00:00Z", system_clock::time_point(seconds(1'709'164'800))},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(parse_rfc3339(c.text), c.want) << c.text;
  }
}

TEST(Rfc3339, RefusesMalformed) {
  for (const char* bad :
       {"", "2023-11-14", "2023-11-14T22:13:20", "2023-13-01T00:00:00Z", "2023-02-29T00:00:00Z",
        "2023-11-14T24:00:00Z", "2023-11-14T22:13:20.Z", "2023-11-14T22:13:20+0100",
        "2023-11-14T22:13:20Zjunk", "2023/11/14T22:13:20Z", "20231114T221320Z",
        // Outside what a nanosecond time_point holds: refused, not overflowed.
        "6752-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z"}) {
    EXPECT_EQ(parse_rfc3339(bad), std::nullopt) << bad;
  }
}

TEST(Rfc3339, FormatsSecondsAndMicros) {
  const system_clock::time_point t =
      system_clock::time_point(seconds(1'700'000'000)) + std::chrono::microseconds(42);
  EXPECT_EQ(format_rfc3339(t), "2023-11-14T22:13:20Z");
  EXPECT_EQ(format_rfc3339_micro(t), "2023-11-14T22:13:20.000042Z");
  EXPECT_EQ(parse_rfc3339(format_rfc3339_micro(t)), t);
}

}  // namespace
}  // namespace stowage::kube
