// CRI endpoints: the unix sockets a runtime serves CRI on, written as kubelet and crictl take them
// ("unix:///run/containerd/containerd.sock") or as a bare absolute path. Only unix sockets are
// accepted: CRI over TCP is not something a node agent should ever talk to.
#pragma once

#include <string>
#include <string_view>

namespace stowage::cri {

inline constexpr std::string_view kContainerdEndpoint = "unix:///run/containerd/containerd.sock";
inline constexpr std::string_view kCrioEndpoint = "unix:///var/run/crio/crio.sock";

// The absolute socket path of `endpoint`: "unix:///abs/path", "unix:/abs/path" or "/abs/path".
// Throws Error(kInvalidArgument) for anything else: empty, other schemes (tcp://, npipe://), a
// host part ("unix://host/path"), a relative path, or a path too long for a unix socket.
std::string parse_endpoint(std::string_view endpoint);

// The gRPC target naming the socket at `socket_path` ("unix:" + absolute path).
std::string grpc_target(std::string_view socket_path);

}  // namespace stowage::cri
