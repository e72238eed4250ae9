// CatchTorchExceptions, the one wrapper between LibTorch's exceptions and
// core's statuses (StatusFromException's conversions are in engine_test.cc).
#include "core/engine/torch_status.h"

#include <c10/util/Exception.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <new>
#include <stdexcept>
#include <string>

#include "absl/status/statusor.h"

namespace curvd::core {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(CatchTorchExceptionsTest, PassesResultsAndErrorsThrough) {
  auto value = CatchTorchExceptions([]() -> absl::StatusOr<int> { return 7; });
  ASSERT_TRUE(value.ok());
  EXPECT_EQ(*value, 7);
  const absl::Status error = CatchTorchExceptions(
      [] { return absl::NotFoundError("no such shard"); }, "context: ");
  EXPECT_EQ(error, absl::NotFoundError("no such shard"));
}

TEST(CatchTorchExceptionsTest, TurnsWhatIsThrownIntoStatuses) {
  const absl::Status shape = CatchTorchExceptions(
      []() -> absl::Status {
        throw c10::Error({__func__, __FILE__, __LINE__},
                         "mat1 and mat2 shapes cannot be multiplied");
      },
      "cannot load model: ");
  EXPECT_EQ(shape.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(shape.message()),
              StartsWith("cannot load model: mat1 and mat2"));

  // Without a context an out-of-memory error stays one the engine retries.
  auto oom = CatchTorchExceptions([]() -> absl::StatusOr<double> {
    throw c10::OutOfMemoryError({__func__, __FILE__, __LINE__},
                                "CUDA out of memory.");
  });
  EXPECT_TRUE(IsOutOfMemory(oom.status())) << oom.status();
  EXPECT_TRUE(IsOutOfMemory(CatchTorchExceptions([]() -> absl::Status {
    throw std::bad_alloc();
  })));

  const absl::Status bug = CatchTorchExceptions(
      []() -> absl::Status { throw std::logic_error("a bug"); }, "measure: ");
  EXPECT_EQ(bug.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(bug.message()), HasSubstr("measure: a bug"));
}

}  // namespace
}  // namespace curvd::core
