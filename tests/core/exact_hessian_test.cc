#include "core/measurements/exact_hessian.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "core/objective/objective.h"
#include "tests/core/test_matrices.h"
#include "tests/core/toy_models.h"

namespace curvd::core {
namespace {

using ::curvd::core::testing::DeviceTest;
using ::curvd::core::testing::ExplicitMatrix;
using ::curvd::core::testing::LinearModel;
using ::curvd::core::testing::MatrixOperator;
using ::curvd::core::testing::MatrixWithSpectrum;
using ::curvd::core::testing::SeededRandn;

ExactHessianOptions Cap(int64_t max_parameters, int block_size) {
  ExactHessianOptions options;
  options.max_parameters = max_parameters;
  options.block_size = block_size;
  return options;
}

// P = 60, rank 17: eigenvalues spread over two decades, both signs, the rest 0.
std::vector<double> RankSeventeen() {
  std::vector<double> spectrum(60, 0.0);
  for (int i = 0; i < 17; ++i) {
    spectrum[i] = (i % 4 == 0 ? -1 : 1) * std::pow(10.0, -1.0 + i / 8.0);
  }
  return spectrum;
}

// P = size, rank = nonzero: the non-zero eigenvalues log-spaced from 1 down to
// 10^-decades, every fifth negative, the rest exactly 0.
std::vector<double> LogSpacedSpectrum(int size, int nonzero, double decades) {
  std::vector<double> spectrum(size, 0.0);
  for (int i = 0; i < nonzero; ++i) {
    spectrum[i] =
        (i % 5 == 4 ? -1 : 1) * std::pow(10.0, -decades * i / (nonzero - 1));
  }
  return spectrum;
}

// op(v) = Q (lambda * (Q^T v)) in the dtype and on the device of `options`,
// with Q a seeded random orthogonal matrix: two products that round as a
// model's Hessian-vector products do, and not symmetrically.
LinearOperator FactoredOperator(const torch::Tensor& q,
                                const std::vector<double>& spectrum,
                                const torch::TensorOptions& options) {
  const torch::Tensor q_here = q.to(options);
  const torch::Tensor lambda =
      torch::tensor(spectrum, torch::kFloat64).to(options);
  return [q_here,
          lambda](const torch::Tensor& v) -> absl::StatusOr<torch::Tensor> {
    return q_here.mv(lambda * q_here.t().mv(v));
  };
}

torch::Tensor RandomOrthogonal(int64_t size, uint64_t seed) {
  return std::get<0>(torch::linalg_qr(SeededRandn({size, size}, seed)));
}

class ExactHessianTest : public DeviceTest {};

TEST_P(ExactHessianTest, RankOfAMatrixBuiltToHaveRankR) {
  const torch::Tensor a = MatrixWithSpectrum(RankSeventeen(), 1);
  const torch::Tensor exact =
      std::get<0>(torch::sort(torch::tensor(RankSeventeen(), torch::kFloat64)));
  auto products = std::make_shared<int64_t>(0);
  auto result = ExactHessian(MatrixOperator(a.to(device()), products), 60,
                             options(), Cap(100, 16), Progress());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->rank, 17);
  EXPECT_EQ(result->positive, 12);
  EXPECT_EQ(result->negative, 5);
  EXPECT_EQ(result->num_parameters, 60);
  EXPECT_EQ(result->hvps, 60);
  EXPECT_EQ(*products, 60);
  ASSERT_EQ(result->eigenvalues.size(), 60);
  for (int i = 0; i < 60; ++i) {
    EXPECT_NEAR(result->eigenvalues[i], exact[i].item<double>(), 1e-13);
  }
  const double largest = std::pow(10.0, 1.0);
  EXPECT_DOUBLE_EQ(result->rank_tolerance,
                   largest * 60 * std::numeric_limits<double>::epsilon());
  EXPECT_NE(result->rank_rule.find("max|lambda| * P * eps"), std::string::npos)
      << result->rank_rule;
  EXPECT_NE(result->rank_rule.find("float64"), std::string::npos);
  EXPECT_TRUE(result->matrix.empty());

  // float32 products: rounding of order 1e-7 relative, far below the float32
  // rule's tolerance and far above the smallest non-zero eigenvalue's scale.
  auto single =
      ExactHessian(MatrixOperator(a.to(device(), torch::kFloat32)), 60,
                   options(torch::kFloat32), Cap(100, 16), Progress());
  ASSERT_TRUE(single.ok()) << single.status();
  EXPECT_EQ(single->rank, 17);
  EXPECT_NE(single->rank_rule.find("float32"), std::string::npos);
}

TEST_P(ExactHessianTest, Float32RankOverDecadesFollowsTheMeasuredNoise) {
  // 100 non-zero eigenvalues from 1 down to 3e-5 in P = 1000. The worst-case
  // rule's float32 tolerance, 1000 * 1.2e-7 = 1.2e-4, drops those below it;
  // the rounding actually present is some 1e-7, far below 3e-5.
  constexpr int kSize = 1000, kRank = 100;
  const std::vector<double> spectrum = LogSpacedSpectrum(kSize, kRank, 4.5);
  const torch::Tensor exact =
      std::get<0>(torch::sort(torch::tensor(spectrum, torch::kFloat64)));
  const torch::Tensor q = RandomOrthogonal(kSize, 8);
  for (const torch::ScalarType dtype : {torch::kFloat64, torch::kFloat32}) {
    SCOPED_TRACE(dtype == torch::kFloat64 ? "float64" : "float32");
    auto result =
        ExactHessian(FactoredOperator(q, spectrum, options(dtype)), kSize,
                     options(dtype), Cap(kSize, 256), Progress());
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->rank, kRank) << result->rank_rule;
    EXPECT_EQ(result->negative, kRank / 5);
    EXPECT_TRUE(result->rank_clear_cut) << result->rank_warning;
    EXPECT_TRUE(result->rank_warning.empty());
    EXPECT_GE(result->rank_gap_decades, kClearGapDecades);
    double error = 0;
    for (int i = 0; i < kSize; ++i) {
      error = std::max(
          error, std::abs(result->eigenvalues[i] - exact[i].item<double>()));
    }
    // The tolerance bounds the eigenvalues' actual error, and the noise
    // estimate is not a worst case far above it.
    EXPECT_LE(error, result->rank_tolerance);
    EXPECT_GE(error, result->noise_scale / 100);
    std::cout << "noise " << result->noise_scale << " error " << error << "\n"
              << result->rank_rule << "\n";
    if (dtype == torch::kFloat32) {
      // The worst-case rule, today's before this one, undercounts.
      EXPECT_LT(result->worst_case_rank, kRank - 5);
      EXPECT_GT(result->worst_case_tolerance, 1e-4);
      EXPECT_LT(result->rank_tolerance, 1e-5);
      EXPECT_GT(result->asymmetry, 0);
    } else {
      EXPECT_EQ(result->worst_case_rank, kRank);
    }
  }
}

TEST_P(ExactHessianTest, EigenvaluesAtTheNoiseLevelAreNotClearCut) {
  // Non-zero eigenvalues from 1 down to 1e-10: in float32 they run through
  // the rounding noise, so no tolerance separates them from it; in float64
  // the noise lies far below the smallest.
  constexpr int kSize = 400, kRank = 200;
  const std::vector<double> spectrum = LogSpacedSpectrum(kSize, kRank, 10);
  const torch::Tensor q = RandomOrthogonal(kSize, 9);
  auto single =
      ExactHessian(FactoredOperator(q, spectrum, options(torch::kFloat32)),
                   kSize, options(torch::kFloat32), Cap(kSize, 64), Progress());
  ASSERT_TRUE(single.ok()) << single.status();
  EXPECT_FALSE(single->rank_clear_cut);
  EXPECT_LT(single->rank, kRank);
  EXPECT_GT(single->rank_at_tenth_tolerance, single->rank);
  EXPECT_LT(single->rank_at_tenfold_tolerance, single->rank);
  EXPECT_LT(single->rank_gap_decades, 0.5);
  EXPECT_NE(single->rank_warning.find("not clear-cut"), std::string::npos)
      << single->rank_warning;
  std::cout << single->rank_warning << "\n";

  auto full = ExactHessian(FactoredOperator(q, spectrum, options()), kSize,
                           options(), Cap(kSize, 64), Progress());
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_EQ(full->rank, kRank);
  EXPECT_TRUE(full->rank_clear_cut) << full->rank_warning;
}

TEST_P(ExactHessianTest, ConditionNumberAndLogDeterminantInClosedForm) {
  std::vector<double> spectrum = {5, 2, 0.5, -1, -3};
  spectrum.resize(20, 0.0);
  const torch::Tensor a = MatrixWithSpectrum(spectrum, 2);
  auto result = ExactHessian(MatrixOperator(a.to(device())), 20, options(),
                             Cap(20, 256), Progress());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->rank, 5);
  EXPECT_EQ(result->positive, 3);
  EXPECT_EQ(result->negative, 2);
  // Over the non-zero part: max |lambda| = 5, min |lambda| = 0.5.
  EXPECT_NEAR(result->condition_number, 10, 1e-12);
  // log 5 + log 2 + log 0.5 = log 5.
  EXPECT_NEAR(result->log_determinant_positive, std::log(5.0), 1e-13);
  EXPECT_LT(result->asymmetry, 1e-15);
}

TEST_P(ExactHessianTest, BlocksSymmetriseAndReturnTheMatrix) {
  // An operator with a small antisymmetric part: the result is the symmetric
  // part, and the asymmetry it had is reported. 1100 > one symmetrisation
  // tile, and blocks of 97 leave a short last block.
  constexpr int64_t kSize = 1100;
  const torch::Tensor s = SeededRandn({kSize, kSize}, 3);
  const torch::Tensor symmetric = (s + s.t()) / 2;
  const torch::Tensor skew = 1e-9 * (s - s.t()) / 2;
  const torch::Tensor op_matrix = symmetric + skew;
  ExactHessianOptions exact = Cap(kSize, 97);
  exact.return_matrix = true;
  exact.max_matrix_parameters = kSize;
  auto result = ExactHessian(MatrixOperator(op_matrix.to(device())), kSize,
                             options(), exact, Progress());
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->matrix.size(), kSize * kSize);
  const torch::Tensor returned =
      torch::from_blob(result->matrix.data(), {kSize, kSize}, torch::kFloat64);
  EXPECT_TRUE(torch::equal(returned, returned.t()));
  // Rows are op(e_i) = column i of op_matrix, so the matrix read is
  // op_matrix^T.
  EXPECT_LT((returned - symmetric).abs().max().item<double>(), 1e-12);
  const double expected_asymmetry =
      (op_matrix - op_matrix.t()).abs().max().item<double>() /
      op_matrix.abs().max().item<double>();
  EXPECT_NEAR(result->asymmetry, expected_asymmetry, 1e-6 * expected_asymmetry);
  const torch::Tensor exact_values = torch::linalg_eigvalsh(symmetric);
  EXPECT_NEAR(result->eigenvalues.front(), exact_values[0].item<double>(),
              1e-9);
  EXPECT_NEAR(result->eigenvalues.back(), exact_values[-1].item<double>(),
              1e-9);
}

TEST_P(ExactHessianTest, LinearMseWithFewerSamplesThanInputs) {
  // H = 2/(N C) (I_C (x) X^T X) with X of rank N < D: rank C N.
  constexpr int64_t kN = 3, kD = 8, kC = 2;
  LinearModel model(kD, kC, /*seed=*/4);
  model.To(device(), torch::kFloat64);
  const torch::Tensor x = SeededRandn({kN, kD}, 5);
  auto objective = Objective::Create(&model, x.to(device()),
                                     SeededRandn({kN, kC}, 6).to(device()),
                                     LossFunction::kMse, 0);
  ASSERT_TRUE(objective.ok()) << objective.status();
  const LinearOperator hvp = [&](const torch::Tensor& v) {
    return objective->Hvp(v);
  };
  auto result = ExactHessian(hvp, kC * kD, options(), Cap(1000, 5), Progress());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->rank, kC * kN);
  EXPECT_EQ(result->positive, kC * kN);
  EXPECT_EQ(result->negative, 0);
  const torch::Tensor gram_values =
      torch::linalg_eigvalsh(x.t().mm(x)) * (2.0 / (kN * kC));
  // Each eigenvalue of X^T X, scaled, C times; the top ones are non-zero.
  for (int64_t i = 0; i < kN; ++i) {
    const double want = gram_values[kD - 1 - i].item<double>();
    for (int64_t c = 0; c < kC; ++c) {
      EXPECT_NEAR(result->eigenvalues[kC * kD - 1 - kC * i - c], want,
                  1e-12 * want);
    }
  }
  double logdet = 0;
  for (int64_t i = 0; i < kN; ++i) {
    logdet += kC * std::log(gram_values[kD - 1 - i].item<double>());
  }
  EXPECT_NEAR(result->log_determinant_positive, logdet, 1e-10);
  EXPECT_NEAR(
      result->condition_number,
      gram_values[kD - 1].item<double>() / gram_values[kD - kN].item<double>(),
      1e-9);
}

TEST_P(ExactHessianTest, CapsAndBadOptions) {
  const LinearOperator op =
      MatrixOperator(torch::eye(30, torch::kFloat64).to(device()));
  auto over = ExactHessian(op, 30, options(), Cap(29, 8), Progress());
  EXPECT_EQ(over.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(over.status().message()).find("cap of 29"),
            std::string::npos)
      << over.status();
  ExactHessianOptions matrix_over = Cap(30, 8);
  matrix_over.return_matrix = true;
  matrix_over.max_matrix_parameters = 20;
  EXPECT_EQ(
      ExactHessian(op, 30, options(), matrix_over, Progress()).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      ExactHessian(op, 30, options(), Cap(30, 0), Progress()).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      ExactHessian(op, 0, options(), Cap(30, 8), Progress()).status().code(),
      absl::StatusCode::kInvalidArgument);
}

TEST_P(ExactHessianTest, ZeroOperatorHasRankZero) {
  auto result = ExactHessian(MatrixOperator(torch::zeros({12, 12}, options())),
                             12, options(), Cap(12, 5), Progress());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->rank, 0);
  EXPECT_EQ(result->rank_tolerance, 0);
  EXPECT_TRUE(std::isnan(result->condition_number));
  EXPECT_EQ(result->log_determinant_positive, 0);
  EXPECT_EQ(result->asymmetry, 0);
}

TEST_P(ExactHessianTest, ProgressCancellationAndOperatorErrors) {
  const LinearOperator op =
      MatrixOperator(MatrixWithSpectrum(RankSeventeen(), 7).to(device()));
  std::vector<double> fractions;
  Progress reporting;
  reporting.report = [&fractions](double fraction, const std::string&) {
    fractions.push_back(fraction);
  };
  ASSERT_TRUE(ExactHessian(op, 60, options(), Cap(60, 16), reporting).ok());
  ASSERT_EQ(fractions.size(), 61);  // every column, then eigvalsh
  EXPECT_EQ(fractions.front(), 0);
  EXPECT_EQ(fractions.back(), 1);

  int polls = 0;
  Progress cancelling;
  cancelling.cancelled = [&polls] { return ++polls > 20; };
  EXPECT_EQ(
      ExactHessian(op, 60, options(), Cap(60, 16), cancelling).status().code(),
      absl::StatusCode::kCancelled);
  EXPECT_EQ(polls, 21);

  const LinearOperator nan_op = testing::NonFiniteOperator(
      std::numeric_limits<double>::quiet_NaN());
  EXPECT_EQ(ExactHessian(nan_op, 10, options(), Cap(60, 4), Progress())
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  const LinearOperator failing =
      [](const torch::Tensor&) -> absl::StatusOr<torch::Tensor> {
    return absl::ResourceExhaustedError("out of memory: test");
  };
  EXPECT_EQ(ExactHessian(failing, 10, options(), Cap(60, 4), Progress())
                .status()
                .code(),
            absl::StatusCode::kResourceExhausted);
}

TEST(SummariseSpectrumTest, NoiseToleranceGapAndDecade) {
  // Noise: max(asymmetry 1e-8, eps 1e-7 * ||H||_F) with ||H||_F = sqrt(1.25 +
  // 1e-6 + ...) = 1.1180344; tolerance 10 times that.
  SpectrumNoise noise;
  noise.epsilon = 1e-7;
  noise.dtype_name = "float32";
  noise.asymmetry_norm = 1e-8;
  const std::vector<double> values = {-0.5, -3e-9, 0,    1e-12,
                                      2e-8, 5e-7,  1e-3, 1};
  double squares = 0;
  for (double value : values) squares += value * value;
  ExactHessianResult r = SummariseSpectrum(values, noise);
  EXPECT_DOUBLE_EQ(r.noise_scale, 1e-7 * std::sqrt(squares));
  EXPECT_DOUBLE_EQ(r.rank_tolerance, 10 * r.noise_scale);
  EXPECT_EQ(r.rank, 3);
  EXPECT_EQ(r.positive, 2);
  EXPECT_EQ(r.negative, 1);
  EXPECT_DOUBLE_EQ(r.condition_number, 1000);
  EXPECT_NEAR(r.log_determinant_positive, std::log(1e-3), 1e-15);
  // Across the cut: 1e-3 counted, 5e-7 not.
  EXPECT_DOUBLE_EQ(r.rank_gap_decades, std::log10(1e-3 / 5e-7));
  EXPECT_EQ(r.rank_at_tenth_tolerance, 4);  // 5e-7 > 1.1e-7
  EXPECT_EQ(r.rank_at_tenfold_tolerance, 3);
  // The rank moves within the decade below, but the gap spans 3.3 decades.
  EXPECT_TRUE(r.rank_clear_cut);
  EXPECT_TRUE(r.rank_warning.empty());
  EXPECT_DOUBLE_EQ(r.worst_case_tolerance, 1.0 * 8 * 1e-7);
  EXPECT_EQ(r.worst_case_rank, 3);
  EXPECT_NE(r.rank_rule.find("eps_float32"), std::string::npos) << r.rank_rule;

  // The asymmetry dominates, and eigenvalues crowd the cut: 1.5e-6 counted,
  // 8e-7 not, 0.27 decades apart; rank 5 at 1e-7, 4 at 1e-6, 2 at 1e-5.
  noise.epsilon = 1e-9;
  noise.asymmetry_norm = 1e-7;
  r = SummariseSpectrum({0, 8e-7, 1.5e-6, 3e-6, 0.1, 1}, noise);
  EXPECT_DOUBLE_EQ(r.noise_scale, 1e-7);
  EXPECT_EQ(r.rank, 4);
  EXPECT_NEAR(r.rank_gap_decades, std::log10(1.5e-6 / 8e-7), 1e-12);
  EXPECT_EQ(r.rank_at_tenth_tolerance, 5);
  EXPECT_EQ(r.rank_at_tenfold_tolerance, 2);
  EXPECT_FALSE(r.rank_clear_cut);
  EXPECT_NE(r.rank_warning.find("rank 4 is not clear-cut"), std::string::npos)
      << r.rank_warning;

  // No noise measured: eigvalsh's float64 floor, max|lambda| P eps; every
  // eigenvalue counted, so the tolerance stands in below the cut.
  noise.epsilon = 0;
  noise.asymmetry_norm = 0;
  r = SummariseSpectrum({1, 2, 3}, noise);
  const double floor = 3 * 3 * std::numeric_limits<double>::epsilon();
  EXPECT_DOUBLE_EQ(r.rank_tolerance, floor);
  EXPECT_EQ(r.rank, 3);
  EXPECT_DOUBLE_EQ(r.rank_gap_decades, std::log10(1 / floor));
  EXPECT_TRUE(r.rank_clear_cut);

  // Exact zeros below the cut: an infinite gap.
  r = SummariseSpectrum({0, 0, 2}, noise);
  EXPECT_EQ(r.rank, 1);
  EXPECT_TRUE(std::isinf(r.rank_gap_decades));
  EXPECT_TRUE(r.rank_clear_cut);
}

CURVD_INSTANTIATE_DEVICE_TEST(ExactHessianTest);

}  // namespace
}  // namespace curvd::core
