#include "yaml_json.h"

#include <yaml-cpp/yaml.h>

#include <string>

namespace stowage::api::testing {
namespace {

nlohmann::json to_json(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Sequence: {
      nlohmann::json a = nlohmann::json::array();
      for (const auto& e : n) a.push_back(to_json(e));
      return a;
    }
    case YAML::NodeType::Map: {
      nlohmann::json o = nlohmann::json::object();
      for (const auto& kv : n) o[kv.first.Scalar()] = to_json(kv.second);
      return o;
    }
    case YAML::NodeType::Scalar: {
      const std::string& s = n.Scalar();
      if (n.Tag() == "!") return s;
      if (s == "true") return true;
      if (s == "false") return false;
      if (s == "null" || s == "~") return nullptr;
      if (!s.empty() && s.find_first_not_of("-0123456789") == std::string::npos &&
          s.find('-', 1) == std::string::npos && s != "-") {
        return std::stoll(s);
      }
      return s;
    }
    default: return nullptr;
  }
}

}  // namespace

std::vector<nlohmann::json> load_yaml_file(const std::filesystem::path& path) {
  std::vector<nlohmann::json> out;
  for (const auto& doc : YAML::LoadAllFromFile(path.string())) out.push_back(to_json(doc));
  return out;
}

std::filesystem::path source_path(const std::filesystem::path& relative) {
  return std::filesystem::path(STOWAGE_SOURCE_DIR) / relative;
}

}  // namespace stowage::api::testing
