// Fuzzes kubeconfig parsing, merging and context selection (pure: no file is read, no plugin
// runs). Bad input must end in a stowage::Error, never a crash, a hang or another exception type.
// A parsed config must also survive merging with itself unchanged (the first file wins).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "base/error.h"
#include "kube/config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace kube = stowage::kube;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const kube::Kubeconfig kc = kube::parse_kubeconfig(text, "/fuzz/.kube/config");
    kube::Kubeconfig twice = kc;
    kube::merge_kubeconfig(twice, kc);
    if (twice.clusters != kc.clusters || twice.users != kc.users || twice.contexts != kc.contexts ||
        twice.current_context != kc.current_context) {
      __builtin_trap();
    }
    for (const auto& [name, context] : kc.contexts) {
      try {
        const kube::SelectedContext s = kube::select_context(kc, name);
        if (s.cluster.server.empty()) __builtin_trap();  // select_context refuses that
      } catch (const stowage::Error&) {
      }
    }
    try {
      kube::select_context(kc, "");
    } catch (const stowage::Error&) {
    }
  } catch (const stowage::Error&) {
  }
  return 0;
}
