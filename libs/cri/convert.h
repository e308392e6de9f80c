// Conversions between the runtime.v1 protobuf messages and the plain values of cri/types.h.
// Internal to stowage::cri (and its unit tests): it includes the generated api.pb.h, which only
// targets linking stowage::cri_proto can see. Pure functions, no I/O.
#pragma once

#include <optional>
#include <string>

#include "cri/api.pb.h"
#include "cri/types.h"

namespace stowage::cri::convert {

namespace v1 = ::runtime::v1;

Image from_proto(const v1::Image& image);
FilesystemUsage from_proto(const v1::FilesystemUsage& usage);
ImageFsInfo from_proto(const v1::ImageFsInfoResponse& response);
VersionInfo from_proto(const v1::VersionResponse& response);
PodSandbox from_proto(const v1::PodSandbox& sandbox);
Container from_proto(const v1::Container& container);
ContainerStatus from_proto(const v1::ContainerStatus& status);
// Values outside the enum (proto3 enums are open) are kUnknown / kNotReady.
ContainerState from_proto(v1::ContainerState state);
PodSandboxState from_proto(v1::PodSandboxState state);

v1::AuthConfig to_proto(const AuthConfig& auth);
v1::PodSandboxConfig to_proto(const PodSandboxConfig& config);
v1::PodSandboxFilter to_proto(const PodSandboxFilter& filter);
v1::ContainerConfig to_proto(const ContainerConfig& config);
v1::ContainerFilter to_proto(const ContainerFilter& filter);
v1::ContainerState to_proto(ContainerState state);
v1::PodSandboxState to_proto(PodSandboxState state);
v1::NamespaceMode to_proto(NamespaceMode mode);

// The sandbox config sent with a pull when the caller gives none: some runtimes fail on a nil
// PullImageRequest.sandbox_config, so Stowage always sends this one.
PodSandboxConfig default_pull_sandbox();

// A PullImageRequest for `image`, passed on unchanged (tags and digests alike).
v1::PullImageRequest pull_request(const std::string& image, const std::optional<AuthConfig>& auth,
                                  const std::optional<PodSandboxConfig>& sandbox);

}  // namespace stowage::cri::convert
