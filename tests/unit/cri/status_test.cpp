#include "cri/status.h"

#include <grpcpp/support/status_code_enum.h>
#include <gtest/gtest.h>

#include <utility>
#include <vector>

#include "base/error.h"

namespace stowage::cri {
namespace {

int n(grpc::StatusCode code) {
  return static_cast<int>(code);
}

TEST(CriStatus, MapsEveryGrpcCode) {
  const std::vector<std::pair<grpc::StatusCode, Code>> cases = {
      {grpc::StatusCode::CANCELLED, Code::kUnavailable},
      {grpc::StatusCode::UNKNOWN, Code::kInternal},
      {grpc::StatusCode::INVALID_ARGUMENT, Code::kInvalidArgument},
      {grpc::StatusCode::DEADLINE_EXCEEDED, Code::kDeadlineExceeded},
      {grpc::StatusCode::NOT_FOUND, Code::kNotFound},
      {grpc::StatusCode::ALREADY_EXISTS, Code::kAlreadyExists},
      {grpc::StatusCode::PERMISSION_DENIED, Code::kPermissionDenied},
      {grpc::StatusCode::RESOURCE_EXHAUSTED, Code::kResourceExhausted},
      {grpc::StatusCode::FAILED_PRECONDITION, Code::kInvalidArgument},
      {grpc::StatusCode::ABORTED, Code::kConflict},
      {grpc::StatusCode::OUT_OF_RANGE, Code::kInvalidArgument},
      {grpc::StatusCode::UNIMPLEMENTED, Code::kInternal},
      {grpc::StatusCode::INTERNAL, Code::kInternal},
      {grpc::StatusCode::UNAVAILABLE, Code::kUnavailable},
      {grpc::StatusCode::DATA_LOSS, Code::kDataLoss},
      {grpc::StatusCode::UNAUTHENTICATED, Code::kUnauthenticated},
  };
  for (const auto& [grpc_code, expected] : cases) {
    EXPECT_EQ(code_for_grpc(n(grpc_code)), expected)
        << grpc_code_name(n(grpc_code)) << " maps to " << code_name(code_for_grpc(n(grpc_code)));
  }
}

TEST(CriStatus, RetryableOnlyForTransientOutcomes) {
  EXPECT_TRUE(Error(code_for_grpc(n(grpc::StatusCode::UNAVAILABLE)), "").retryable());
  EXPECT_TRUE(Error(code_for_grpc(n(grpc::StatusCode::DEADLINE_EXCEEDED)), "").retryable());
  EXPECT_TRUE(Error(code_for_grpc(n(grpc::StatusCode::RESOURCE_EXHAUSTED)), "").retryable());
  EXPECT_FALSE(Error(code_for_grpc(n(grpc::StatusCode::NOT_FOUND)), "").retryable());
  EXPECT_FALSE(Error(code_for_grpc(n(grpc::StatusCode::UNAUTHENTICATED)), "").retryable());
  EXPECT_FALSE(Error(code_for_grpc(n(grpc::StatusCode::FAILED_PRECONDITION)), "").retryable());
  EXPECT_FALSE(Error(code_for_grpc(n(grpc::StatusCode::UNKNOWN)), "").retryable());
}

TEST(CriStatus, OkAndOutOfRangeValuesAreInternal) {
  EXPECT_EQ(code_for_grpc(0), Code::kInternal);
  EXPECT_EQ(code_for_grpc(17), Code::kInternal);
  EXPECT_EQ(code_for_grpc(-1), Code::kInternal);
}

TEST(CriStatus, NamesMatchGrpc) {
  EXPECT_EQ(grpc_code_name(n(grpc::StatusCode::OK)), "OK");
  EXPECT_EQ(grpc_code_name(n(grpc::StatusCode::DEADLINE_EXCEEDED)), "DEADLINE_EXCEEDED");
  EXPECT_EQ(grpc_code_name(n(grpc::StatusCode::UNAVAILABLE)), "UNAVAILABLE");
  EXPECT_EQ(grpc_code_name(n(grpc::StatusCode::UNAUTHENTICATED)), "UNAUTHENTICATED");
  EXPECT_EQ(grpc_code_name(99), "INVALID_STATUS_CODE");
}

}  // namespace
}  // namespace stowage::cri
