// The one Lanczos recurrence: its basis and tridiagonal matrix against their
// definitions, and one read from the device per step for every method that
// drives it (sharpness, SLQ, the loss slice's eigenvector).
#include "core/linalg/lanczos_kernel.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <vector>

#include "core/api/engine.h"
#include "core/estimators/slq.h"
#include "core/linalg/lanczos.h"
#include "tests/core/engine_sources.h"
#include "tests/core/host_reads.h"
#include "tests/core/test_matrices.h"
#include "tests/core/toy_models.h"

namespace curvd::core {
namespace {

using ::curvd::core::testing::DeviceTest;
using ::curvd::core::testing::EngineDeviceTest;
using ::curvd::core::testing::ItemReads;
using ::curvd::core::testing::MatrixOperator;
using ::curvd::core::testing::MatrixWithSpectrum;
using ::curvd::core::testing::SeededRandn;
using ::curvd::core::testing::ZooMlp;

std::vector<double> Spread(int n) {
  std::vector<double> spectrum;
  for (int i = 0; i < n; ++i) spectrum.push_back(std::cos(2.0 * i + 1) * 3);
  return spectrum;
}

// T as a dense float64 matrix on the CPU.
torch::Tensor Dense(const LanczosTridiagonal& t) {
  torch::Tensor dense = torch::diag(torch::tensor(t.alphas, torch::kFloat64));
  if (!t.betas.empty()) {
    const torch::Tensor off = torch::tensor(t.betas, torch::kFloat64);
    dense += torch::diag(off, 1) + torch::diag(off, -1);
  }
  return dense;
}

LanczosHooks AlwaysExtend() {
  LanczosHooks hooks;
  hooks.after_step = [](const LanczosStep&) -> absl::StatusOr<LanczosNext> {
    return LanczosNext::kExtend;
  };
  return hooks;
}

class LanczosKernelTest : public DeviceTest {};

// Q A Q^T = T for the orthonormal basis Q that starts at start / ||start||,
// from one read per step.
TEST_P(LanczosKernelTest, BasisIsOrthonormalAndTridiagonalisesTheOperator) {
  constexpr int64_t kSize = 60;
  constexpr int64_t kSteps = 12;
  const torch::Tensor a = MatrixWithSpectrum(Spread(kSize), 3);
  const torch::Tensor start = SeededRandn({kSize}, 4);
  LanczosKernel kernel(kSteps, kSize, options(), /*initial_rows=*/2, "test");
  const int64_t reads_before = LanczosHostReadsOnThisThread();
  auto t = kernel.Run(MatrixOperator(a.to(device())), start.to(device()),
                      AlwaysExtend());
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->host_reads, kSteps);
  EXPECT_EQ(LanczosHostReadsOnThisThread() - reads_before, kSteps);
  ASSERT_EQ(t->alphas.size(), kSteps);
  ASSERT_EQ(t->betas.size(), kSteps - 1);
  const torch::Tensor q = kernel.basis().cpu();
  ASSERT_EQ(q.size(0), kSteps);
  EXPECT_LT((q.mm(q.t()) - torch::eye(kSteps, torch::kFloat64))
                .abs()
                .max()
                .item<double>(),
            1e-14);
  EXPECT_LT((q[0] - start / start.norm()).abs().max().item<double>(), 1e-15);
  EXPECT_LT((q.mm(a).mm(q.t()) - Dense(*t)).abs().max().item<double>(), 1e-13);
}

// After a breakdown the run goes on from a fresh vector, coupled by 0; the
// restart costs one read of its own.
TEST_P(LanczosKernelTest, RestartsAfterABreakdown) {
  // Three distinct eigenvalues: the Krylov space of a start is 3-dimensional.
  std::vector<double> spectrum;
  for (double value : {-1.0, 0.5, 2.0})
    spectrum.insert(spectrum.end(), 8, value);
  const torch::Tensor a = MatrixWithSpectrum(spectrum, 5);
  LanczosKernel kernel(5, 24, options(), /*initial_rows=*/5, "test");
  LanczosHooks hooks;
  hooks.after_step =
      [](const LanczosStep& step) -> absl::StatusOr<LanczosNext> {
    return step.beta < 1e-10 ? LanczosNext::kRestart : LanczosNext::kExtend;
  };
  uint64_t fresh_seed = 6;
  hooks.fresh_vector = [&] {
    return SeededRandn({24}, fresh_seed++).to(device());
  };
  auto t = kernel.Run(MatrixOperator(a.to(device())),
                      SeededRandn({24}, 7).to(device()), hooks);
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_EQ(t->alphas.size(), 5);
  EXPECT_EQ(t->betas[2], 0);
  EXPECT_GT(t->betas[3], 0);
  EXPECT_EQ(t->host_reads, 5 + 1);
  const torch::Tensor q = kernel.basis().cpu();
  EXPECT_LT(
      (q.mm(q.t()) - torch::eye(5, torch::kFloat64)).abs().max().item<double>(),
      1e-14);
  EXPECT_LT((q.mm(a).mm(q.t()) - Dense(*t)).abs().max().item<double>(), 1e-13);
}

// An error of a hook ends the run with it, before the step's product.
TEST_P(LanczosKernelTest, HookErrorsEndTheRun) {
  auto products = std::make_shared<int64_t>(0);
  LanczosHooks hooks = AlwaysExtend();
  hooks.before_step = [](int64_t step) {
    return step == 3 ? absl::CancelledError("stop") : absl::OkStatus();
  };
  LanczosKernel kernel(10, 30, options(), 10, "test");
  auto t = kernel.Run(
      MatrixOperator(MatrixWithSpectrum(Spread(30), 8).to(device()), products),
      SeededRandn({30}, 9).to(device()), hooks);
  EXPECT_EQ(t.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(*products, 3);
}

// Sharpness and SLQ: the host reads equal the steps, and no method reads a
// scalar by Tensor::item() behind the kernel's back.
TEST_P(LanczosKernelTest, OneDeviceReadPerStepForSharpnessAndSlq) {
  constexpr int64_t kSize = 80;
  const LinearOperator op =
      MatrixOperator(MatrixWithSpectrum(Spread(kSize), 10).to(device()));
  // The observer sees every read of a scalar, on any device.
  ASSERT_EQ(ItemReads([&] {
              (void)torch::ones({2}, options()).sum().item<double>();
            }),
            1);
  LanczosOptions lanczos;
  lanczos.top_k = 2;
  lanczos.max_iterations = kSize;
  lanczos.relative_tolerance = 1e-8;
  lanczos.seed = 11;
  absl::StatusOr<SharpnessResult> sharpness;
  int64_t reads = LanczosHostReadsOnThisThread();
  EXPECT_EQ(ItemReads([&] {
              sharpness = Lanczos(op, kSize, options(), lanczos, Progress());
            }),
            0);
  ASSERT_TRUE(sharpness.ok()) << sharpness.status();
  EXPECT_EQ(LanczosHostReadsOnThisThread() - reads, sharpness->iterations);

  SlqOptions slq;
  slq.runs = 3;
  slq.steps = 15;
  slq.seed = 12;
  absl::StatusOr<SlqResult> density;
  reads = LanczosHostReadsOnThisThread();
  EXPECT_EQ(ItemReads([&] {
              density = StochasticLanczosQuadrature(op, kSize, options(), slq,
                                                    Progress());
            }),
            0);
  ASSERT_TRUE(density.ok()) << density.status();
  EXPECT_EQ(density->hvps, 3 * 15);
  EXPECT_EQ(LanczosHostReadsOnThisThread() - reads, density->hvps);
}

CURVD_INSTANTIATE_DEVICE_TEST(LanczosKernelTest);

class LossSliceReadsTest : public EngineDeviceTest {};

// The loss slice's own Lanczos run, through the engine: one read per step
// (its other product, v^T H v, is the slice's).
TEST_P(LossSliceReadsTest, OneDeviceReadPerLanczosStep) {
  MeasurementRequest request;
  request.objective.loss = LossFunction::kMse;
  request.objective.precision = Precision::kFloat64;
  LossSliceOptions& slice = request.Add<LossSliceMethod>().options;
  slice.direction = SliceDirection::kTopEigenvector;
  slice.points = 5;
  slice.lanczos.top_k = 1;
  slice.lanczos.max_iterations = 100;
  slice.lanczos.relative_tolerance = 1e-8;
  const int64_t reads = LanczosHostReadsOnThisThread();
  auto result = Measure(request, ZooMlp({4, 8, 2}, "zoo:mlp-4-8-2-tanh"), 13);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_GT(result->hvps, 2);
  EXPECT_EQ(LanczosHostReadsOnThisThread() - reads, result->hvps - 1);
}

CURVD_INSTANTIATE_DEVICE_TEST(LossSliceReadsTest);

}  // namespace
}  // namespace curvd::core
