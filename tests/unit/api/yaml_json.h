// YAML files of the repository (CRDs, samples) as JSON for the unit tests: mappings and sequences
// as they are, scalars as YAML 1.2 core types (booleans, null, integers, else strings; quoted
// scalars always strings).
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <vector>

namespace stowage::api::testing {

// Every document of the file, in order.
std::vector<nlohmann::json> load_yaml_file(const std::filesystem::path& path);

// A path under the source tree.
std::filesystem::path source_path(const std::filesystem::path& relative);

}  // namespace stowage::api::testing
