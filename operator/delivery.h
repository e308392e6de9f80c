// How a RegistryConfig reaches its nodes: through the node agent, or (OpenShift) as a
// MachineConfig per pool. One rule for every controller that must agree on it: delivery
// MachineConfig, or Auto where the machineconfiguration.openshift.io/v1 API is served.
#pragma once

#include "registries/spec.h"

namespace stowage::op {

inline bool machine_config_delivery(const registries::RegistryConfigSpec& spec,
                                    bool machine_config_api) {
  return spec.delivery == "MachineConfig" || (spec.delivery == "Auto" && machine_config_api);
}

}  // namespace stowage::op
