// The adaptive_trace kind through the engine (the plan runner) against a
// closed form: the Hessian of a linear model's MSE loss, whose trace follows
// from the shard's inputs alone.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "core/api/engine.h"
#include "core/data/shard.h"
#include "tests/core/engine_sources.h"
#include "tests/core/toy_models.h"

namespace curvd::core {
namespace {

using ::curvd::core::testing::EngineDeviceTest;
using ::curvd::core::testing::GaussianRegression;
using ::curvd::core::testing::Of;
using ::curvd::core::testing::ZooMlp;

constexpr int64_t kInputs = 16;
constexpr int64_t kParameters = 2 * (kInputs + 1);

// y = W x + b, 2 outputs: kParameters parameters.
ModelSource Linear() { return ZooMlp({kInputs, 2}, "zoo:linear-16-2"); }

// The MSE loss is the mean of (y - t)^2 over N samples and K outputs, so
// H = 2 / (N K) (I_K kron sum_n x~_n x~_n^T) with x~ = (x, 1), and
// tr(H) = 2 / N sum_n (|x_n|^2 + 1), whatever the weights.
double ExactTrace() {
  const torch::Tensor x =
      LoadShard(GaussianRegression(kInputs)).value().inputs.to(torch::kFloat64);
  return 2.0 * (x.square().sum().item<double>() + x.size(0)) / x.size(0);
}

MeasurementRequest AdaptiveRequest(double target_standard_error,
                                   double target_relative_error,
                                   uint64_t seed) {
  MeasurementRequest request;
  request.objective.loss = LossFunction::kMse;
  request.objective.precision = Precision::kFloat64;
  AdaptiveTraceOptions& a = request.Add<AdaptiveTraceMethod>().options;
  a.target_standard_error = target_standard_error;
  a.target_relative_error = target_relative_error;
  a.seed = seed;
  return request;
}

class AdaptiveTraceEngineTest : public EngineDeviceTest {
 protected:
  absl::StatusOr<MeasurementResult> MeasureLinear(
      const MeasurementRequest& request) {
    torch::manual_seed(2);
    return engine_->Measure(Linear(), GaussianRegression(kInputs), request,
                            Progress());
  }
};

// The products each method spends: Hutch++ two per sketch column and one per
// residual probe; Hutchinson one per probe (the sketch probes among them)
// plus the low-rank traces of the sketches it tried: none when it was taken
// at once, else at least the first's.
void ExpectProductsAddUp(const AdaptiveTraceResult& r, int64_t engine_hvps) {
  EXPECT_EQ(r.hvps, engine_hvps);
  if (r.method == "hutch++") {
    EXPECT_GT(r.sketch_size, 0);
    EXPECT_EQ(r.hvps, 2 * r.sketch_size + r.probes);
  } else {
    EXPECT_EQ(r.method, "hutchinson") << r.decision;
    EXPECT_EQ(r.sketch_size, 0);
    if (r.hvps > r.probes) {
      EXPECT_GE(r.hvps - r.probes, AdaptiveTraceOptions().initial_sketch_size);
      EXPECT_LE(r.hvps - r.probes, kParameters);
    }
  }
  EXPECT_GE(r.probes, AdaptiveTraceOptions().min_probes);
  EXPECT_FALSE(r.decision.empty());
}

// An absolute target over eight fixed seeds: each reaches it, and each
// estimate lies within 4 of its standard errors of the exact trace.
TEST_P(AdaptiveTraceEngineTest, ReachesAnAbsoluteTargetAroundTheExactTrace) {
  const double exact = ExactTrace();
  // About 2% of the trace: some 40 Rademacher probes (the variance per probe,
  // 2 (|H|_F^2 - |diag H|^2), is about 1.5% of tr(H)^2 here).
  const double target = 0.02 * exact;
  for (uint64_t seed = 0; seed < 8; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    auto result = MeasureLinear(AdaptiveRequest(target, 0, seed));
    ASSERT_TRUE(result.ok()) << result.status();
    const AdaptiveTraceResult& r = Of<AdaptiveTraceMethod>(result);
    EXPECT_EQ(r.stop_reason, "target_standard_error") << r.decision;
    EXPECT_LE(r.standard_error, target);
    EXPECT_GT(r.standard_error, 0);
    EXPECT_LE(std::abs(r.trace - exact), 4 * r.standard_error)
        << r.trace << " vs " << exact;
    EXPECT_GT(r.frobenius_norm_squared, 0);
    ExpectProductsAddUp(r, result->hvps);
  }
}

// A relative target stops on its own reason; the same seed gives the same
// estimate again (the probes depend on the seed alone).
TEST_P(AdaptiveTraceEngineTest, ReachesARelativeTargetReproducibly) {
  const double exact = ExactTrace();
  auto result = MeasureLinear(AdaptiveRequest(0, 0.03, 4));
  ASSERT_TRUE(result.ok()) << result.status();
  const AdaptiveTraceResult& r = Of<AdaptiveTraceMethod>(result);
  EXPECT_EQ(r.stop_reason, "target_relative_error") << r.decision;
  EXPECT_LE(r.standard_error, 0.03 * std::abs(r.trace));
  EXPECT_LE(std::abs(r.trace - exact), 4 * r.standard_error);
  ExpectProductsAddUp(r, result->hvps);

  auto again = MeasureLinear(AdaptiveRequest(0, 0.03, 4));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_DOUBLE_EQ(Of<AdaptiveTraceMethod>(again).trace, r.trace);
  EXPECT_EQ(Of<AdaptiveTraceMethod>(again).hvps, r.hvps);
}

// The engine refuses what validation refuses, naming the field.
TEST_P(AdaptiveTraceEngineTest, RefusesNoTarget) {
  auto result = MeasureLinear(AdaptiveRequest(0, 0, 1));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(result.status().message())
                .find("adaptive_trace.target_standard_error"),
            std::string::npos)
      << result.status();
}

CURVD_INSTANTIATE_DEVICE_TEST(AdaptiveTraceEngineTest);

}  // namespace
}  // namespace curvd::core
