#include "cri/endpoint.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "base/error.h"

namespace stowage::cri {
namespace {

using ::testing::HasSubstr;

Code code_of(std::string_view endpoint) {
  try {
    parse_endpoint(endpoint);
  } catch (const Error& e) {
    return e.code();
  }
  ADD_FAILURE() << "no error for \"" << endpoint << "\"";
  return Code::kInternal;
}

std::string message_of(std::string_view endpoint) {
  try {
    parse_endpoint(endpoint);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(CriEndpoint, ParsesUnixUrlWithEmptyHost) {
  EXPECT_EQ(parse_endpoint("unix:///run/containerd/containerd.sock"),
            "/run/containerd/containerd.sock");
}

TEST(CriEndpoint, ParsesUnixSchemeWithSingleSlash) {
  EXPECT_EQ(parse_endpoint("unix:/var/run/crio/crio.sock"), "/var/run/crio/crio.sock");
}

TEST(CriEndpoint, ParsesBarePath) {
  EXPECT_EQ(parse_endpoint("/tmp/x/containerd.sock"), "/tmp/x/containerd.sock");
}

TEST(CriEndpoint, BarePathMayContainSchemeLikeText) {
  EXPECT_EQ(parse_endpoint("/tmp/a://b.sock"), "/tmp/a://b.sock");
}

TEST(CriEndpoint, DefaultEndpointsParse) {
  EXPECT_EQ(parse_endpoint(kContainerdEndpoint), "/run/containerd/containerd.sock");
  EXPECT_EQ(parse_endpoint(kCrioEndpoint), "/var/run/crio/crio.sock");
}

TEST(CriEndpoint, RejectsEmpty) {
  EXPECT_EQ(code_of(""), Code::kInvalidArgument);
  EXPECT_EQ(code_of("unix://"), Code::kInvalidArgument);
  EXPECT_EQ(code_of("unix:"), Code::kInvalidArgument);
}

TEST(CriEndpoint, RejectsOtherSchemes) {
  EXPECT_EQ(code_of("tcp://127.0.0.1:1234"), Code::kInvalidArgument);
  EXPECT_THAT(message_of("tcp://127.0.0.1:1234"), HasSubstr("scheme tcp is not supported"));
  EXPECT_EQ(code_of("npipe:////./pipe/containerd-containerd"), Code::kInvalidArgument);
}

TEST(CriEndpoint, RejectsHostPart) {
  EXPECT_EQ(code_of("unix://run/containerd/containerd.sock"), Code::kInvalidArgument);
  EXPECT_THAT(message_of("unix://localhost/run/x.sock"), HasSubstr("no host part"));
}

TEST(CriEndpoint, RejectsRelativePaths) {
  EXPECT_EQ(code_of("containerd.sock"), Code::kInvalidArgument);
  EXPECT_EQ(code_of("unix:containerd.sock"), Code::kInvalidArgument);
  EXPECT_THAT(message_of("run/x.sock"), HasSubstr("must be absolute"));
}

TEST(CriEndpoint, RejectsPathTooLongForUnixSocket) {
  const std::string longest = "/" + std::string(106, 'a');  // 107 bytes + NUL fills sun_path
  EXPECT_EQ(parse_endpoint(longest), longest);
  EXPECT_EQ(code_of(longest + "a"), Code::kInvalidArgument);
  EXPECT_THAT(message_of("unix://" + longest + "a"), HasSubstr("108 bytes"));
}

TEST(CriEndpoint, RejectsNulByte) {
  EXPECT_EQ(code_of(std::string_view("/run/a\0b.sock", 13)), Code::kInvalidArgument);
}

TEST(CriEndpoint, GrpcTargetIsUnixSchemeWithPath) {
  EXPECT_EQ(grpc_target("/run/containerd/containerd.sock"), "unix:/run/containerd/containerd.sock");
}

}  // namespace
}  // namespace stowage::cri
