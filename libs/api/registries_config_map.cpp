#include "api/registries_config_map.h"

#include <fmt/format.h>

#include "base/error.h"

namespace stowage::api {
namespace {

constexpr std::size_t kMaxKeyLength = 253;
constexpr std::string_view kHostsTomlPathSuffix = "/hosts.toml";

bool plain_key_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-';
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

}  // namespace

std::string registries_config_map_name(std::string_view hash) {
  return std::string(kRegistriesConfigMapPrefix) + std::string(hash);
}

std::optional<std::string> hash_from_registries_config_map_name(std::string_view name) {
  if (!name.starts_with(kRegistriesConfigMapPrefix)) return std::nullopt;
  std::string hash(name.substr(kRegistriesConfigMapPrefix.size()));
  if (hash.empty()) return std::nullopt;
  for (const char c : hash) {
    if (hex_value(c) < 0) return std::nullopt;
  }
  return hash;
}

std::string hosts_toml_key(std::string_view host) {
  if (host.empty()) throw_invalid("hosts.toml ConfigMap key: empty host");
  std::string key;
  for (const char c : host) {
    if (plain_key_char(c)) {
      key += c;
    } else {
      key += fmt::format("_{:02x}", static_cast<unsigned>(static_cast<unsigned char>(c)));
    }
  }
  key += kHostsTomlKeySuffix;
  if (key.size() > kMaxKeyLength) {
    throw_invalid(fmt::format("hosts.toml ConfigMap key for host \"{}\": longer than {} characters",
                              host, kMaxKeyLength));
  }
  return key;
}

std::optional<std::string> host_from_hosts_toml_key(std::string_view key) {
  if (!key.ends_with(kHostsTomlKeySuffix)) return std::nullopt;
  const std::string_view escaped = key.substr(0, key.size() - kHostsTomlKeySuffix.size());
  if (escaped.empty()) return std::nullopt;
  std::string host;
  for (std::size_t i = 0; i < escaped.size(); ++i) {
    const char c = escaped[i];
    if (plain_key_char(c)) {
      host += c;
      continue;
    }
    if (c != '_' || i + 2 >= escaped.size()) return std::nullopt;
    const int hi = hex_value(escaped[i + 1]);
    const int lo = hex_value(escaped[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    const char decoded = static_cast<char>(hi * 16 + lo);
    if (plain_key_char(decoded)) return std::nullopt;  // not the canonical form
    host += decoded;
    i += 2;
  }
  return host;
}

std::map<std::string, std::string> registries_config_map_data(
    const std::vector<registries::RenderedFile>& files) {
  std::map<std::string, std::string> data;
  for (const auto& f : files) {
    std::string key;
    if (f.path == kDropInKey) {
      key = f.path;
    } else if (f.path.ends_with(kHostsTomlPathSuffix) &&
               f.path.size() > kHostsTomlPathSuffix.size()) {
      const std::string host = f.path.substr(0, f.path.size() - kHostsTomlPathSuffix.size());
      if (host.find('/') != std::string::npos) {
        throw_invalid(fmt::format("registries ConfigMap: unexpected file \"{}\"", f.path));
      }
      key = hosts_toml_key(host);
    } else {
      throw_invalid(fmt::format("registries ConfigMap: unexpected file \"{}\"", f.path));
    }
    if (!data.emplace(key, f.content).second) {
      throw_invalid(fmt::format("registries ConfigMap: file \"{}\" given twice", f.path));
    }
  }
  return data;
}

RegistriesFiles registries_files_from_config_map_data(
    const std::map<std::string, std::string>& data) {
  RegistriesFiles files;
  bool dropin = false;
  for (const auto& [key, value] : data) {
    if (key == kDropInKey) {
      files.dropin = value;
      dropin = true;
    } else if (auto host = host_from_hosts_toml_key(key)) {
      files.hosts_toml.emplace(std::move(*host), value);
    } else {
      throw_invalid(
          fmt::format("registries ConfigMap: data.{}: not \"{}\" nor "
                      "\"<escaped host>{}\"",
                      key, kDropInKey, kHostsTomlKeySuffix));
    }
  }
  if (!dropin) throw_invalid(fmt::format("registries ConfigMap: data.{}: missing", kDropInKey));
  return files;
}

}  // namespace stowage::api
