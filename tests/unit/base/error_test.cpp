#include "base/error.h"

#include <gtest/gtest.h>

namespace stowage {
namespace {

TEST(Error, CarriesCodeAndMessage) {
  const Error e(Code::kNotFound, "manifest quay.io/x:1 not found");
  EXPECT_EQ(e.code(), Code::kNotFound);
  EXPECT_STREQ(e.what(), "manifest quay.io/x:1 not found");
  EXPECT_FALSE(e.retryable());
}

TEST(Error, RetryableCodes) {
  const struct {
    Code code;
    bool retryable;
  } cases[] = {
      {Code::kInvalidArgument, false},  {Code::kNotFound, false},   {Code::kAlreadyExists, false},
      {Code::kConflict, true},          {Code::kGone, true},        {Code::kUnauthenticated, false},
      {Code::kPermissionDenied, false}, {Code::kUnavailable, true}, {Code::kDeadlineExceeded, true},
      {Code::kResourceExhausted, true}, {Code::kDataLoss, false},   {Code::kInternal, false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(code_name(c.code)));
    EXPECT_EQ(code_retryable(c.code), c.retryable);
  }
}

TEST(Error, WrapKeepsCodeAndPrefixesContext) {
  const Error e(Code::kUnavailable, "connection reset after 41 MiB");
  const Error w = e.wrap("pulling quay.io/x@sha256:ab: layer 3/5");
  EXPECT_EQ(w.code(), Code::kUnavailable);
  EXPECT_STREQ(w.what(), "pulling quay.io/x@sha256:ab: layer 3/5: connection reset after 41 MiB");
}

TEST(Error, CodeNamesMatchStyleGuide) {
  EXPECT_EQ(code_name(Code::kInvalidArgument), "InvalidArgument");
  EXPECT_EQ(code_name(Code::kResourceExhausted), "ResourceExhausted");
  EXPECT_EQ(code_name(Code::kDataLoss), "DataLoss");
}

}  // namespace
}  // namespace stowage
