#include "base/log.h"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "base/error.h"

namespace stowage {
namespace {

TEST(Log, ParsesFormat) {
  EXPECT_EQ(parse_log_format("text"), LogFormat::kText);
  EXPECT_EQ(parse_log_format("json"), LogFormat::kJson);
  EXPECT_THROW(parse_log_format("xml"), Error);
}

TEST(Log, JsonEscapeRoundTripsThroughAParser) {
  const std::string raw = "quote\" back\\ nl\n tab\t ctl\x01 é";
  const auto parsed = nlohmann::json::parse("\"" + json_escape(raw) + "\"");
  EXPECT_EQ(parsed.get<std::string>(), raw);
}

TEST(Log, JsonFormatEmitsOneObjectPerLine) {
  setup_logging(LogFormat::kJson, "info");
  testing::internal::CaptureStderr();
  spdlog::info("pulled image={} \"quoted\"", "quay.io/x:1");
  spdlog::debug("hidden");
  spdlog::default_logger()->flush();
  const std::string out = testing::internal::GetCapturedStderr();
  spdlog::drop_all();
  ASSERT_FALSE(out.empty());
  const auto j = nlohmann::json::parse(out.substr(0, out.find('\n')));
  EXPECT_EQ(j["level"], "info");
  EXPECT_EQ(j["msg"], "pulled image=quay.io/x:1 \"quoted\"");
  EXPECT_EQ(out.find("hidden"), std::string::npos);
}

TEST(Log, RefusesUnknownLevel) {
  EXPECT_THROW(setup_logging(LogFormat::kText, "loud"), Error);
  spdlog::drop_all();
}

}  // namespace
}  // namespace stowage
