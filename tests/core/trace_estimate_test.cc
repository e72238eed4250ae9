// The one loop of the stochastic trace estimators (Hutchinson, tr(H^3)): the
// probes and the stopping rule do not depend on the block size, and the host
// reads each block's terms once.
#include "core/estimators/trace_estimate.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <limits>
#include <string>
#include <vector>

#include "core/objective/linear_operator.h"
#include "tests/core/host_reads.h"
#include "tests/core/toy_models.h"

namespace curvd::core {
namespace {

using ::curvd::core::testing::DeviceTest;
using ::curvd::core::testing::ItemReads;
using ::testing::HasSubstr;

TraceOptions Probes(int min_probes, int max_probes, double target) {
  TraceOptions trace;
  trace.distribution = ProbeDistribution::kGaussian;
  trace.min_probes = min_probes;
  trace.max_probes = max_probes;
  trace.target_relative_error = target;
  trace.seed = 3;
  return trace;
}

// Terms z^T D z for D = diag(1, 2, ..., size), counting the blocks.
ProbeTermEstimator Diagonal(int block_size, int* blocks) {
  ProbeTermEstimator estimator;
  estimator.name = "Test";
  estimator.term = "z^T D z";
  estimator.block_size = block_size;
  estimator.terms =
      [blocks](const torch::Tensor& probes) -> absl::StatusOr<torch::Tensor> {
    ++*blocks;
    const torch::Tensor d =
        torch::arange(1, probes.size(1) + 1, probes.options());
    return (probes * probes * d).sum({1}, false, torch::kFloat64);
  };
  return estimator;
}

class TraceEstimateTest : public DeviceTest {};

TEST_P(TraceEstimateTest, BlocksChangeOnlyTheNumberOfReads) {
  constexpr int64_t kSize = 10;
  const TraceOptions trace = Probes(10, 10, 0);
  // The sequential reference: the same probes, one at a time, on the CPU.
  at::Generator generator = SeededGenerator(trace.seed);
  RunningTraceEstimate reference(trace);
  const torch::Tensor d = torch::arange(1, kSize + 1, torch::kFloat64);
  for (int i = 0; i < 10; ++i) {
    const torch::Tensor z = RandomProbe(kSize, trace.distribution, generator,
                                        torch::TensorOptions(torch::kFloat64));
    reference.Add((z * z * d).sum().item<double>());
  }
  for (int block_size : {1, 3, 16}) {
    SCOPED_TRACE(block_size);
    int blocks = 0;
    absl::StatusOr<TraceResult> result;
    EXPECT_EQ(ItemReads([&] {
                result = EstimateTrace(Diagonal(block_size, &blocks), kSize,
                                       options(), trace, Progress(), {});
              }),
              0);
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(blocks, (10 + block_size - 1) / block_size);
    EXPECT_EQ(result->probes, 10);
    EXPECT_NEAR(result->trace, reference.result().trace,
                1e-13 * reference.result().trace);
    EXPECT_NEAR(result->standard_error, reference.result().standard_error,
                1e-11 * reference.result().standard_error);
  }
}

TEST_P(TraceEstimateTest, StopsWithinABlockAndNamesBadTerms) {
  int blocks = 0;
  // Every term is 10 for Rademacher probes of the identity: zero variance
  // stops the estimate at min_probes, inside the second block of 4.
  ProbeTermEstimator identity = Diagonal(4, &blocks);
  identity.terms =
      [](const torch::Tensor& probes) -> absl::StatusOr<torch::Tensor> {
    return (probes * probes).sum({1}, false, torch::kFloat64);
  };
  TraceOptions trace = Probes(6, 20, 0.1);
  trace.distribution = ProbeDistribution::kRademacher;
  auto result = EstimateTrace(identity, 10, options(), trace, Progress(), {});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->probes, 6);
  EXPECT_EQ(result->trace, 10);
  EXPECT_EQ(result->stop_reason, "exact_zero_variance");

  ProbeTermEstimator bad = Diagonal(4, &blocks);
  bad.terms = [](const torch::Tensor& probes) -> absl::StatusOr<torch::Tensor> {
    torch::Tensor terms =
        torch::ones({probes.size(0)}, probes.options().dtype(torch::kFloat64));
    terms[1] = std::numeric_limits<double>::quiet_NaN();
    return terms;
  };
  const absl::Status status =
      EstimateTrace(bad, 10, options(), Probes(1, 8, 0), Progress(), {})
          .status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("z^T D z of Test probe 2 is not finite"));
  EXPECT_EQ(EstimateTrace(Diagonal(0, &blocks), 10, options(), Probes(1, 8, 0),
                          Progress(), {})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

CURVD_INSTANTIATE_DEVICE_TEST(TraceEstimateTest);

}  // namespace
}  // namespace curvd::core
