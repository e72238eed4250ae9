#include "core/linalg/lanczos.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/linalg/tridiagonal_eigen.h"
#include "core/objective/objective.h"
#include "tests/core/test_matrices.h"
#include "tests/core/toy_models.h"

namespace curvd::core {
namespace {

using ::curvd::core::testing::DeviceTest;
using ::curvd::core::testing::ExplicitMatrix;
using ::curvd::core::testing::LinearModel;
using ::curvd::core::testing::SeededRandn;
using ::curvd::core::testing::TanhMlp;

using ::curvd::core::testing::MatrixOperator;
using ::curvd::core::testing::MatrixWithSpectrum;

LinearOperator HvpOf(Objective& objective) {
  return [&objective](const torch::Tensor& v) { return objective.Hvp(v); };
}

LanczosOptions Wanted(int top_k, int bottom_k, int max_iterations,
                      double tolerance) {
  LanczosOptions options;
  options.top_k = top_k;
  options.bottom_k = bottom_k;
  options.max_iterations = max_iterations;
  options.relative_tolerance = tolerance;
  options.seed = 42;
  return options;
}

// Compares Ritz values with the exact ascending spectrum `exact`: top
// (descending) with its largest, bottom (ascending) with its smallest, each to
// within `tolerance` * max(|exact eigenvalue|, `floor`).
void ExpectSpectrumEnds(const SharpnessResult& result,
                        const torch::Tensor& exact, double tolerance,
                        double floor = 0) {
  const int64_t n = exact.size(0);
  for (size_t i = 0; i < result.top.size(); ++i) {
    const double want = exact[n - 1 - static_cast<int64_t>(i)].item<double>();
    EXPECT_NEAR(result.top[i].value, want,
                tolerance * std::max(std::abs(want), floor))
        << "top " << i;
  }
  for (size_t i = 0; i < result.bottom.size(); ++i) {
    const double want = exact[static_cast<int64_t>(i)].item<double>();
    EXPECT_NEAR(result.bottom[i].value, want,
                tolerance * std::max(std::abs(want), floor))
        << "bottom " << i;
  }
}

TEST(TridiagonalEigenTest, MatchesDenseEigh) {
  constexpr int64_t kM = 60;
  const torch::Tensor diagonal = SeededRandn({kM}, 1);
  const torch::Tensor off = SeededRandn({kM - 1}, 2);
  const torch::Tensor dense =
      torch::diag(diagonal) + torch::diag(off, 1) + torch::diag(off, -1);
  auto [values, vectors] = torch::linalg_eigh(dense);
  const std::vector<double> d(diagonal.data_ptr<double>(),
                              diagonal.data_ptr<double>() + kM);
  const std::vector<double> e(off.data_ptr<double>(),
                              off.data_ptr<double>() + kM - 1);

  auto eig = SolveTridiagonal(d, e);
  ASSERT_TRUE(eig.ok()) << eig.status();
  ASSERT_EQ(eig->values.size(), kM);
  for (int64_t i = 0; i < kM; ++i) {
    EXPECT_NEAR(eig->values[i], values[i].item<double>(), 1e-13);
    EXPECT_NEAR(std::abs(eig->last_components[i]),
                std::abs(vectors[kM - 1][i].item<double>()), 1e-10);
  }
}

TEST(TridiagonalEigenTest, DecoupledBlocksAndSmallSizes) {
  auto one = SolveTridiagonal({3.5}, {});
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->values, std::vector<double>{3.5});
  EXPECT_EQ(one->last_components, std::vector<double>{1.0});

  // A zero coupling splits T: the first block's eigenvectors end in exact
  // zeros.
  auto split = SolveTridiagonal({2, 1, 5}, {1, 0});
  ASSERT_TRUE(split.ok());
  EXPECT_NEAR(split->values[0], 1.5 - std::sqrt(1.25), 1e-15);
  EXPECT_NEAR(split->values[1], 1.5 + std::sqrt(1.25), 1e-15);
  EXPECT_DOUBLE_EQ(split->values[2], 5);
  EXPECT_EQ(split->last_components[0], 0);
  EXPECT_EQ(split->last_components[1], 0);
  EXPECT_DOUBLE_EQ(std::abs(split->last_components[2]), 1);

  EXPECT_EQ(SolveTridiagonal({1, 2}, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SolveTridiagonal({1, std::nan("")}, {1}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Only the bottom of the spectrum wanted: top is empty, and reporting progress
// (which names the largest Ritz value) must not read from it.
TEST(LanczosBottomOnlyTest, TopKZeroReportsProgressAndFindsTheBottom) {
  const std::vector<double> spectrum = {-3.0, -1.0, 0.5, 2.0, 4.0};
  const torch::Tensor a = MatrixWithSpectrum(spectrum, 7);
  int reports = 0;
  Progress progress;
  progress.report = [&reports](double, const std::string&) { ++reports; };
  auto result =
      Lanczos(MatrixOperator(a), 5, torch::TensorOptions(torch::kFloat64),
              Wanted(/*top_k=*/0, /*bottom_k=*/2, 5, 1e-10), progress);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->top.empty());
  ASSERT_EQ(result->bottom.size(), 2u);
  ExpectSpectrumEnds(*result, torch::tensor(spectrum, torch::kFloat64), 1e-10,
                     1.0);
  EXPECT_GT(reports, 0);
}

class LanczosTest : public DeviceTest {};

TEST_P(LanczosTest, QuadraticWithChosenSpectrum) {
  // 1/2 w^T A w has Hessian A: ends at 10, 9.5, 9 and -3, -2.5, -2, bulk
  // between.
  std::vector<double> spectrum = {10, 9.5, 9, -3, -2.5, -2};
  for (int i = 0; i < 114; ++i) spectrum.push_back(-1.5 + 7.0 * i / 113);
  const torch::Tensor a = MatrixWithSpectrum(spectrum, 3);
  auto result = Lanczos(MatrixOperator(a.to(device())), 120, options(),
                        Wanted(3, 3, 120, 1e-10), Progress());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->converged);
  ASSERT_EQ(result->top.size(), 3);
  ASSERT_EQ(result->bottom.size(), 3);
  ExpectSpectrumEnds(
      *result,
      std::get<0>(torch::sort(torch::tensor(spectrum, torch::kFloat64))),
      1e-10);
  for (const Eigenpair& pair : result->top) {
    EXPECT_TRUE(pair.converged);
    EXPECT_LE(pair.residual_norm, 1e-10 * std::abs(pair.value));
  }
}

TEST_P(LanczosTest, InvariantSubspaceIsExact) {
  // Four distinct eigenvalues: a random start spans a 4-dimensional invariant
  // Krylov space, and Lanczos breaks down after 4 steps with exact values.
  std::vector<double> spectrum;
  for (double value : {-1.0, 0.5, 2.0, 7.0})
    spectrum.insert(spectrum.end(), 25, value);
  auto result =
      Lanczos(MatrixOperator(MatrixWithSpectrum(spectrum, 4).to(device())), 100,
              options(), Wanted(1, 1, 100, 1e-12), Progress());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->iterations, 4);
  EXPECT_TRUE(result->converged);
  EXPECT_NEAR(result->top[0].value, 7.0, 1e-13);
  EXPECT_NEAR(result->bottom[0].value, -1.0, 1e-13);
  EXPECT_EQ(result->top[0].residual_norm, 0);
}

TEST_P(LanczosTest, IterationsCappedAtOperatorSize) {
  const torch::Tensor a =
      torch::diag(torch::tensor({1.0, 2.0, 3.0, 4.0, 5.0}, torch::kFloat64));
  auto result = Lanczos(MatrixOperator(a.to(device())), 5, options(),
                        Wanted(2, 5, 100, 1e-12), Progress());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_LE(result->iterations, 5);
  EXPECT_TRUE(result->converged);
  ASSERT_EQ(result->top.size(), 2);
  EXPECT_NEAR(result->top[0].value, 5, 1e-13);
  EXPECT_NEAR(result->top[1].value, 4, 1e-13);
  ASSERT_EQ(result->bottom.size(), 5);
  for (int i = 0; i < 5; ++i)
    EXPECT_NEAR(result->bottom[i].value, i + 1, 1e-13);
}

TEST_P(LanczosTest, LinearMseMatchesClosedForm) {
  constexpr int64_t kN = 40, kD = 8, kC = 3;
  LinearModel model(kD, kC, /*seed=*/5);
  model.To(device(), torch::kFloat64);
  const torch::Tensor x =
      SeededRandn({kN, kD}, 6) * torch::linspace(0.2, 3, kD, torch::kFloat64);
  auto objective = Objective::Create(&model, x.to(device()),
                                     SeededRandn({kN, kC}, 7).to(device()),
                                     LossFunction::kMse, 16);
  ASSERT_TRUE(objective.ok()) << objective.status();
  // H = 2/(N C) (I_C (x) X^T X): the spectrum of X^T X, scaled, each C times.
  const torch::Tensor exact =
      torch::linalg_eigvalsh(x.t().mm(x)) * (2.0 / (kN * kC));
  auto result = Lanczos(HvpOf(*objective), kD * kC, options(),
                        Wanted(1, 1, 24, 1e-10), Progress());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->converged);
  ExpectSpectrumEnds(*result, exact, 1e-10);
  EXPECT_EQ(objective->hvps(), result->iterations);
}

TEST_P(LanczosTest, SoftmaxCrossEntropyLinearMatchesClosedForm) {
  constexpr int64_t kN = 30, kD = 5, kC = 4;
  LinearModel model(kD, kC, /*seed=*/8);
  model.To(device(), torch::kFloat64);
  const torch::Tensor x = SeededRandn({kN, kD}, 9);
  at::Generator generator = SeededGenerator(10);
  const torch::Tensor labels =
      torch::randint(0, kC, {kN}, generator, torch::kInt64);
  auto objective =
      Objective::Create(&model, x.to(device()), labels.to(device()),
                        LossFunction::kCrossEntropy, 0);
  ASSERT_TRUE(objective.ok()) << objective.status();
  const torch::Tensor p =
      torch::softmax(x.mm(model.Parameters()[0].detach().cpu().t()), 1);
  torch::Tensor hessian = torch::zeros({kC * kD, kC * kD}, torch::kFloat64);
  for (int64_t k = 0; k < kN; ++k) {
    hessian += torch::kron(torch::diag(p[k]) - torch::outer(p[k], p[k]),
                           torch::outer(x[k], x[k]));
  }
  const torch::Tensor exact = torch::linalg_eigvalsh(hessian / kN);
  auto result = Lanczos(HvpOf(*objective), kC * kD, options(),
                        Wanted(2, 1, 20, 1e-10), Progress());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->converged);
  // Shifting every class's weights by one vector leaves softmax unchanged: the
  // bottom eigenvalue is 0, compared on the scale of the top one.
  ExpectSpectrumEnds(*result, exact, 1e-10, exact[-1].item<double>());
  EXPECT_NEAR(result->bottom[0].value, 0, 1e-10 * exact[-1].item<double>());
}

TEST_P(LanczosTest, TanhMlpMatchesExplicitHessian) {
  // 6-16-16-4 tanh network, 452 parameters, cross-entropy on 64 samples.
  TanhMlp model({6, 16, 16, 4}, /*seed=*/11);
  model.To(device(), torch::kFloat64);
  at::Generator generator = SeededGenerator(12);
  auto objective = Objective::Create(
      &model, SeededRandn({64, 6}, 13).to(device()),
      torch::randint(0, 4, {64}, generator, torch::kInt64).to(device()),
      LossFunction::kCrossEntropy, 24);
  ASSERT_TRUE(objective.ok()) << objective.status();
  const int64_t n = objective->num_parameters();
  ASSERT_EQ(n, 452);
  const torch::Tensor exact =
      torch::linalg_eigvalsh(ExplicitMatrix(HvpOf(*objective), n, options()));
  ASSERT_LT(exact[0].item<double>(), 0) << "want an indefinite Hessian";

  auto result = Lanczos(HvpOf(*objective), n, options(),
                        Wanted(3, 3, 452, 1e-10), Progress());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->converged);
  EXPECT_LT(result->iterations, n);
  ExpectSpectrumEnds(*result, exact, 1e-8);
}

// Keeping every micro-batch's graph for the run changes where the products
// come from, not what they are: the run is the same step for step.
TEST_P(LanczosTest, RetainedGraphsGiveTheRecomputedRun) {
  TanhMlp model({6, 16, 4}, /*seed=*/31);
  model.To(device(), torch::kFloat64);
  at::Generator generator = SeededGenerator(32);
  const torch::Tensor x = SeededRandn({50, 6}, 33).to(device());
  const torch::Tensor labels =
      torch::randint(0, 4, {50}, generator, torch::kInt64).to(device());
  std::vector<SharpnessResult> runs;
  for (bool retain : {false, true}) {
    auto objective =
        Objective::Create(&model, x, labels, LossFunction::kCrossEntropy, 16);
    ASSERT_TRUE(objective.ok()) << objective.status();
    objective->set_retain_graphs(retain);
    auto result = Lanczos(HvpOf(*objective), objective->num_parameters(),
                          options(), Wanted(3, 2, 100, 1e-9), Progress());
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(objective->hvps(), result->iterations);
    runs.push_back(*result);
  }
  EXPECT_EQ(runs[1].iterations, runs[0].iterations);
  EXPECT_EQ(runs[1].converged, runs[0].converged);
  ASSERT_EQ(runs[1].top.size(), 3);
  ASSERT_EQ(runs[1].bottom.size(), 2);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_NEAR(runs[1].top[i].value, runs[0].top[i].value,
                1e-12 * std::abs(runs[0].top[0].value));
  }
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_NEAR(runs[1].bottom[i].value, runs[0].bottom[i].value,
                1e-12 * std::abs(runs[0].top[0].value));
  }
}

TEST_P(LanczosTest, Float32SharpnessMatchesFloat64CpuReference) {
  const torch::Tensor x = SeededRandn({64, 6}, 14);
  const torch::Tensor y = SeededRandn({64, 2}, 15);
  TanhMlp reference_model({6, 32, 2}, /*seed=*/16);
  auto reference =
      Objective::Create(&reference_model, x, y, LossFunction::kMse, 0);
  ASSERT_TRUE(reference.ok()) << reference.status();
  auto exact = Lanczos(HvpOf(*reference), reference->num_parameters(),
                       torch::TensorOptions().dtype(torch::kFloat64),
                       Wanted(1, 0, 200, 1e-10), Progress());
  ASSERT_TRUE(exact.ok()) << exact.status();

  TanhMlp model({6, 32, 2}, /*seed=*/16);
  model.To(device(), torch::kFloat32);
  auto single =
      Objective::Create(&model, x.to(device(), torch::kFloat32),
                        y.to(device(), torch::kFloat32), LossFunction::kMse, 0);
  ASSERT_TRUE(single.ok()) << single.status();
  auto result =
      Lanczos(HvpOf(*single), single->num_parameters(),
              options(torch::kFloat32), Wanted(1, 0, 200, 1e-5), Progress());
  ASSERT_TRUE(result.ok()) << result.status();
  // float32 HVPs carry relative errors near 1e-6; the top eigenvalue to 1e-4.
  EXPECT_NEAR(result->top[0].value, exact->top[0].value,
              1e-4 * exact->top[0].value);
}

TEST_P(LanczosTest, ToleranceAndIterationLimitStopIt) {
  std::vector<double> spectrum;
  for (int i = 0; i < 200; ++i) spectrum.push_back(std::pow(0.97, i) * 10);
  const LinearOperator op =
      MatrixOperator(MatrixWithSpectrum(spectrum, 17).to(device()));

  auto loose = Lanczos(op, 200, options(), Wanted(2, 0, 200, 1e-3), Progress());
  ASSERT_TRUE(loose.ok()) << loose.status();
  EXPECT_TRUE(loose->converged);
  EXPECT_LT(loose->iterations, 200);
  for (const Eigenpair& pair : loose->top) {
    EXPECT_LE(pair.residual_norm, 1e-3 * std::abs(pair.value));
  }
  auto tight =
      Lanczos(op, 200, options(), Wanted(2, 0, 200, 1e-11), Progress());
  ASSERT_TRUE(tight.ok()) << tight.status();
  EXPECT_GT(tight->iterations, loose->iterations);

  auto capped = Lanczos(op, 200, options(), Wanted(2, 0, 3, 1e-11), Progress());
  ASSERT_TRUE(capped.ok()) << capped.status();
  EXPECT_EQ(capped->iterations, 3);
  EXPECT_FALSE(capped->converged);
  EXPECT_FALSE(capped->top[0].converged);
}

TEST_P(LanczosTest, SeedDeterminesTheRun) {
  std::vector<double> spectrum;
  for (int i = 0; i < 50; ++i) spectrum.push_back(i * 0.1);
  const LinearOperator op =
      MatrixOperator(MatrixWithSpectrum(spectrum, 18).to(device()));
  LanczosOptions options_a = Wanted(1, 0, 5, 1e-12);
  LanczosOptions options_b = options_a;
  options_b.seed = 43;
  auto a1 = Lanczos(op, 50, options(), options_a, Progress());
  auto a2 = Lanczos(op, 50, options(), options_a, Progress());
  auto b = Lanczos(op, 50, options(), options_b, Progress());
  ASSERT_TRUE(a1.ok() && a2.ok() && b.ok());
  EXPECT_EQ(a1->top[0].value, a2->top[0].value);
  EXPECT_NE(a1->top[0].value, b->top[0].value);
}

TEST_P(LanczosTest, ReportsProgressAndStopsWhenCancelled) {
  const torch::Tensor a =
      MatrixWithSpectrum(std::vector<double>(30, 1.0), 19) +
      torch::diag(torch::linspace(0, 3, 30, torch::kFloat64));
  std::vector<double> fractions;
  int polls = 0;
  Progress progress;
  progress.report = [&fractions](double fraction, const std::string&) {
    fractions.push_back(fraction);
  };
  progress.cancelled = [&polls] { return ++polls > 3; };
  auto result = Lanczos(MatrixOperator(a.to(device())), 30, options(),
                        Wanted(1, 0, 30, 1e-12), progress);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled);
  ASSERT_EQ(fractions.size(), 3);
  EXPECT_GT(fractions[0], 0);
  EXPECT_LT(fractions[0], fractions[1]);
  EXPECT_LE(fractions[2], 1);
}

TEST_P(LanczosTest, OperatorErrorsEndTheRun) {
  const LinearOperator nan_op =
      testing::NonFiniteOperator(std::numeric_limits<double>::quiet_NaN());
  const absl::Status nan =
      Lanczos(nan_op, 10, options(), Wanted(1, 0, 10, 1e-6), Progress())
          .status();
  EXPECT_EQ(nan.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(nan.message()), ::testing::HasSubstr("step 0"));
  const LinearOperator failing =
      [](const torch::Tensor&) -> absl::StatusOr<torch::Tensor> {
    return absl::ResourceExhaustedError("out of memory: test");
  };
  EXPECT_EQ(Lanczos(failing, 10, options(), Wanted(1, 0, 10, 1e-6), Progress())
                .status()
                .code(),
            absl::StatusCode::kResourceExhausted);
}

// The Ritz vectors of the top pairs are unit, nearly eigenvectors (their
// residual is the pair's estimate) and, for well separated eigenvalues, the
// true eigenvectors up to sign.
TEST_P(LanczosTest, TopEigenvectorsAreTheTrueOnes) {
  constexpr int64_t kN = 80;
  std::vector<double> spectrum = {10, 8, 6.5};
  for (int i = 3; i < kN; ++i) spectrum.push_back(-2.0 + 6.0 * i / kN);
  constexpr uint64_t kSeed = 20;
  const torch::Tensor a = MatrixWithSpectrum(spectrum, kSeed);
  // MatrixWithSpectrum's Q: column i is the eigenvector of spectrum[i].
  const torch::Tensor q =
      std::get<0>(torch::linalg_qr(SeededRandn({kN, kN}, kSeed)));
  // Replaced, not appended to.
  std::vector<torch::Tensor> vectors(5, torch::ones({1}));
  auto result = Lanczos(MatrixOperator(a.to(device())), kN, options(),
                        Wanted(3, 1, kN, 1e-10), Progress(), &vectors);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->converged);
  ASSERT_EQ(result->top.size(), 3);
  ASSERT_EQ(vectors.size(), 3);
  for (size_t i = 0; i < 3; ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(vectors[i].device(), device());
    EXPECT_EQ(vectors[i].scalar_type(), torch::kFloat64);
    const torch::Tensor v = vectors[i].cpu();
    const double theta = result->top[i].value;
    EXPECT_NEAR(v.norm().item<double>(), 1, 1e-14);
    const double residual = (a.mv(v) - theta * v).norm().item<double>();
    EXPECT_LE(residual, 1e-9 * std::abs(theta));
    EXPECT_NEAR(residual, result->top[i].residual_norm, 1e-12 * theta);
    EXPECT_NEAR(std::abs(v.dot(q.select(1, i)).item<double>()), 1, 1e-12);
  }
}

// After a breakdown the Ritz vectors come from every block of the basis, and
// are exact; when fewer steps than top_k ran there is one vector per pair.
TEST_P(LanczosTest, TopEigenvectorsAfterBreakdownAndFewSteps) {
  std::vector<double> spectrum;
  for (double value : {-1.0, 0.5, 2.0, 7.0})
    spectrum.insert(spectrum.end(), 10, value);
  const torch::Tensor a = MatrixWithSpectrum(spectrum, 21);
  std::vector<torch::Tensor> vectors;
  auto result = Lanczos(MatrixOperator(a.to(device())), 40, options(),
                        Wanted(6, 0, 40, 1e-12), Progress(), &vectors);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(vectors.size(), result->top.size());
  for (size_t i = 0; i < vectors.size(); ++i) {
    const torch::Tensor v = vectors[i].cpu();
    EXPECT_NEAR(v.norm().item<double>(), 1, 1e-14);
    EXPECT_LE((a.mv(v) - result->top[i].value * v).norm().item<double>(),
              1e-12 * 7)
        << i;
  }

  auto capped = Lanczos(MatrixOperator(a.to(device())), 40, options(),
                        Wanted(6, 0, 2, 1e-12), Progress(), &vectors);
  ASSERT_TRUE(capped.ok()) << capped.status();
  ASSERT_EQ(capped->top.size(), 2);
  ASSERT_EQ(vectors.size(), 2);
  EXPECT_NEAR(vectors[0].norm().item<double>(), 1, 1e-14);
}

CURVD_INSTANTIATE_DEVICE_TEST(LanczosTest);

}  // namespace
}  // namespace curvd::core
