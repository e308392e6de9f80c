// The registries ConfigMap's name and key scheme, shared by the operator (writes) and the agent
// (reads).
#include "api/registries_config_map.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/error.h"

namespace stowage::api {
namespace {

TEST(RegistriesConfigMap, NameCarriesTheHash) {
  EXPECT_EQ(registries_config_map_name("3f9a0c"), "stowage-registries-3f9a0c");
  EXPECT_EQ(hash_from_registries_config_map_name("stowage-registries-3f9a0c"), "3f9a0c");
  EXPECT_EQ(hash_from_registries_config_map_name("stowage-registries-"), std::nullopt);
  EXPECT_EQ(hash_from_registries_config_map_name("stowage-registries-XYZ"), std::nullopt);
  EXPECT_EQ(hash_from_registries_config_map_name("kube-root-ca.crt"), std::nullopt);
}

TEST(RegistriesConfigMap, HostKeysAreValidConfigMapKeysAndRoundTrip) {
  struct Case {
    const char* host;
    const char* key;
  };
  for (const auto& c : {Case{"quay.io", "quay.io.hosts.toml"},
                        Case{"mirror.corp:5000", "mirror.corp_3a5000.hosts.toml"},
                        Case{"_default", "_5fdefault.hosts.toml"},
                        Case{"[::1]:5000", "_5b_3a_3a1_5d_3a5000.hosts.toml"}}) {
    const std::string key = hosts_toml_key(c.host);
    EXPECT_EQ(key, c.key);
    EXPECT_EQ(
        key.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._"),
        std::string::npos);
    EXPECT_EQ(host_from_hosts_toml_key(key), c.host);
  }
  EXPECT_THROW(hosts_toml_key(""), Error);
  EXPECT_THROW(hosts_toml_key(std::string(250, 'a')), Error);
  for (const auto* bad : {"99-stowage.conf", ".hosts.toml", "a_3.hosts.toml", "a_zz.hosts.toml",
                          "a_61.hosts.toml", "quay.io.toml"}) {
    EXPECT_EQ(host_from_hosts_toml_key(bad), std::nullopt) << bad;
  }
}

TEST(RegistriesConfigMap, DataRoundTripsTheRenderedFiles) {
  const std::vector<registries::RenderedFile> files = {{"99-stowage.conf", "dropin"},
                                                       {"quay.io/hosts.toml", "q"},
                                                       {"localhost:5000/hosts.toml", "l"}};
  const auto data = registries_config_map_data(files);
  EXPECT_EQ(data, (std::map<std::string, std::string>{{"99-stowage.conf", "dropin"},
                                                      {"localhost_3a5000.hosts.toml", "l"},
                                                      {"quay.io.hosts.toml", "q"}}));
  const RegistriesFiles back = registries_files_from_config_map_data(data);
  EXPECT_EQ(back.dropin, "dropin");
  EXPECT_EQ(back.hosts_toml,
            (std::map<std::string, std::string>{{"localhost:5000", "l"}, {"quay.io", "q"}}));
  EXPECT_THROW(registries_config_map_data({{"registries.conf", "x"}}), Error);
  EXPECT_THROW(registries_config_map_data({{"a/b/hosts.toml", "x"}}), Error);
  EXPECT_THROW(registries_files_from_config_map_data({{"quay.io.hosts.toml", "q"}}), Error);
  EXPECT_THROW(registries_files_from_config_map_data({{"99-stowage.conf", "d"}, {"other", "x"}}),
               Error);
}

}  // namespace
}  // namespace stowage::api
