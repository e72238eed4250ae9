// Trace estimators that start from the terms of probes another method has
// already evaluated (RunningTraceEstimate::AddKnown): the estimate is the one
// they would have computed, with fewer products.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "core/estimators/hutchinson.h"
#include "core/estimators/trace_cubed.h"
#include "core/estimators/trace_estimate.h"
#include "core/objective/linear_operator.h"
#include "tests/core/test_matrices.h"
#include "tests/core/toy_models.h"

namespace curvd::core {
namespace {

using ::curvd::core::testing::DeviceTest;
using ::curvd::core::testing::MatrixOperator;
using ::curvd::core::testing::MatrixWithSpectrum;

constexpr int64_t kSize = 30;

TraceOptions Probes(int min_probes, int max_probes, double target) {
  TraceOptions options;
  options.min_probes = min_probes;
  options.max_probes = max_probes;
  options.target_relative_error = target;
  options.seed = 11;
  return options;
}

std::vector<double> Spectrum() {
  std::vector<double> spectrum;
  for (int i = 0; i < kSize; ++i) spectrum.push_back(1.0 + 0.3 * i);
  return spectrum;
}

// v^T A^power v for the first `count` probes of `trace`'s stream, on the CPU.
std::vector<double> FirstTerms(const torch::Tensor& a,
                               const TraceOptions& trace, int count,
                               int power) {
  at::Generator generator = SeededGenerator(trace.seed);
  const torch::Tensor a_power = torch::linalg_matrix_power(a, power);
  std::vector<double> terms;
  for (int i = 0; i < count; ++i) {
    const torch::Tensor v = RandomProbe(kSize, trace.distribution, generator,
                                        torch::TensorOptions(torch::kFloat64));
    terms.push_back(v.dot(a_power.mv(v)).item<double>());
  }
  return terms;
}

BlockOperator OneByOne(const LinearOperator& op) {
  return [op](const torch::Tensor& block) -> absl::StatusOr<torch::Tensor> {
    std::vector<torch::Tensor> rows;
    for (int64_t i = 0; i < block.size(0); ++i)
      rows.push_back(op(block[i]).value());
    return torch::stack(rows);
  };
}

class KnownTermsTest : public DeviceTest {};

TEST_P(KnownTermsTest, HutchinsonAndTraceCubedContinueAfterTheKnownProbes) {
  const torch::Tensor a = MatrixWithSpectrum(Spectrum(), 1);
  const TraceOptions trace = Probes(12, 12, 0);
  auto counted = std::make_shared<int64_t>(0);
  const LinearOperator op = MatrixOperator(a.to(device()), counted);
  auto full = Hutchinson(op, kSize, options(), trace, Progress());
  ASSERT_TRUE(full.ok()) << full.status();
  *counted = 0;
  auto resumed = BlockHutchinson(OneByOne(op), kSize, options(), trace,
                                 Progress(), 4, FirstTerms(a, trace, 5, 1));
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(resumed->probes, 12);
  EXPECT_EQ(*counted, 12 - 5);
  EXPECT_NEAR(resumed->trace, full->trace, 1e-12 * std::abs(full->trace));
  EXPECT_NEAR(resumed->standard_error, full->standard_error,
              1e-10 * full->standard_error);

  *counted = 0;
  auto cubed = TraceCubed(op, kSize, options(), trace, Progress());
  ASSERT_TRUE(cubed.ok()) << cubed.status();
  *counted = 0;
  auto cubed_resumed = TraceCubed(op, kSize, options(), trace, Progress(),
                                  FirstTerms(a, trace, 5, 3));
  ASSERT_TRUE(cubed_resumed.ok()) << cubed_resumed.status();
  EXPECT_EQ(*counted, 2 * (12 - 5));
  EXPECT_NEAR(cubed_resumed->trace, cubed->trace,
              1e-12 * std::abs(cubed->trace));
}

TEST_P(KnownTermsTest, StopsWithinTheKnownTermsAndRejectsNonFiniteOnes) {
  const torch::Tensor a = MatrixWithSpectrum(Spectrum(), 2);
  auto counted = std::make_shared<int64_t>(0);
  const LinearOperator op = MatrixOperator(a.to(device()), counted);
  // Equal terms: zero variance stops the estimate at min_probes = 3.
  const std::vector<double> equal(8, 2.5);
  auto stopped = BlockHutchinson(OneByOne(op), kSize, options(),
                                 Probes(3, 20, 0.1), Progress(), 4, equal);
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_EQ(stopped->probes, 3);
  EXPECT_EQ(stopped->stop_reason, "exact_zero_variance");
  EXPECT_EQ(stopped->trace, 2.5);
  EXPECT_EQ(*counted, 0);
  // More known terms than max_probes: only max_probes of them count.
  auto capped = TraceCubed(op, kSize, options(), Probes(2, 4, 0), Progress(),
                           {1, 2, 3, 4, 100, 100});
  ASSERT_TRUE(capped.ok()) << capped.status();
  EXPECT_EQ(capped->probes, 4);
  EXPECT_EQ(capped->trace, 2.5);
  EXPECT_EQ(*counted, 0);

  const std::vector<double> bad = {1, std::numeric_limits<double>::quiet_NaN()};
  EXPECT_EQ(BlockHutchinson(OneByOne(op), kSize, options(), Probes(2, 5, 0),
                            Progress(), 1, bad)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

CURVD_INSTANTIATE_DEVICE_TEST(KnownTermsTest);

}  // namespace
}  // namespace curvd::core
