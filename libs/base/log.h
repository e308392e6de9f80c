// Logging setup for the binaries: spdlog with a text (`key=value`) or JSON format on stderr.
// Libraries log little and through spdlog's default logger; only main() calls setup_logging().
#pragma once

#include <string>
#include <string_view>

namespace stowage {

enum class LogFormat { kText, kJson };

// Parses "text" or "json" (the --log-format flag); throws InvalidArgument otherwise.
LogFormat parse_log_format(std::string_view value);

// Installs the default logger writing to stderr in `format` at `level` ("debug", "info", ...).
void setup_logging(LogFormat format, std::string_view level = "info");

// Escapes a string for inclusion in a JSON string literal (without the quotes).
std::string json_escape(std::string_view in);

}  // namespace stowage
