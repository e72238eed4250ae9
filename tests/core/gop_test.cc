#include "core/measurements/gop.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/objective/objective.h"
#include "tests/core/toy_models.h"
#include "tests/core/zoo_mlp_fixture.h"

namespace curvd::core {
namespace {

using ::curvd::core::testing::DeviceTest;
using ::curvd::core::testing::LayeredTanhMlp;
using ::curvd::core::testing::LinearModel;
using ::curvd::core::testing::SeededLabels;
using ::curvd::core::testing::SeededRandn;
using ::curvd::core::testing::ZooMlpFixture;
using ::curvd::core::testing::ZooMlpFixtureSources;
using ::testing::HasSubstr;

// J [N, M], float64 on the CPU: row i the gradient of sample i's loss, each
// from an Objective of that one sample (Objective::Gradient, independent of
// the per-sample path under test).
torch::Tensor SingleSampleJacobian(Model& model, const torch::Tensor& inputs,
                                   const torch::Tensor& targets,
                                   LossFunction loss,
                                   const std::vector<int64_t>& samples) {
  std::vector<torch::Tensor> rows;
  for (int64_t i : samples) {
    auto one = Objective::Create(&model, inputs.narrow(0, i, 1),
                                 targets.narrow(0, i, 1), loss, 0);
    EXPECT_TRUE(one.ok()) << one.status();
    rows.push_back(one->Gradient().value().to(torch::kCPU, torch::kFloat64));
  }
  return torch::stack(rows);
}

std::vector<int64_t> AllSamples(int64_t n) {
  std::vector<int64_t> samples;
  for (int64_t i = 0; i < n; ++i) samples.push_back(i);
  return samples;
}

// The M x M matrix's eigenvalues, descending.
std::vector<double> DescendingEigenvalues(const torch::Tensor& matrix) {
  const torch::Tensor values =
      torch::linalg_eigvalsh(matrix).flip({0}).contiguous();
  return std::vector<double>(values.data_ptr<double>(),
                             values.data_ptr<double>() + values.numel());
}

// The result's non-zero spectrum equals the leading eigenvalues of the
// explicit matrix, whose remaining ones are zero to rounding; the trace,
// Frobenius and nuclear norms are those of the explicit matrix.
void ExpectMatchesExplicit(const GopMetrics& metrics,
                           const torch::Tensor& explicit_matrix,
                           int64_t expected_rank) {
  const std::vector<double> exact = DescendingEigenvalues(explicit_matrix);
  ASSERT_EQ(metrics.rank, expected_rank) << metrics.rank_rule;
  ASSERT_EQ(static_cast<int64_t>(metrics.eigenvalues.size()), expected_rank);
  const double scale = exact[0];
  for (int64_t j = 0; j < expected_rank; ++j) {
    EXPECT_NEAR(metrics.eigenvalues[j], exact[j], 1e-12 * scale) << j;
  }
  for (size_t j = expected_rank; j < exact.size(); ++j) {
    EXPECT_LT(std::abs(exact[j]), 1e-12 * scale) << j;
  }
  const double trace = explicit_matrix.trace().item<double>();
  const double frobenius = explicit_matrix.norm().item<double>();
  EXPECT_NEAR(metrics.trace, trace, 1e-12 * trace);
  EXPECT_NEAR(metrics.frobenius_norm, frobenius, 1e-12 * frobenius);
  EXPECT_NEAR(metrics.spectral_norm, exact[0], 1e-12 * scale);
  EXPECT_NEAR(metrics.nuclear_norm, trace, 1e-12 * trace);  // PSD
  EXPECT_EQ(metrics.size, explicit_matrix.size(0));
}

// Default options but for top_k 3, which the 7 samples of MakeMlp allow.
GopOptions TopThree() {
  GopOptions options;
  options.top_k = 3;
  return options;
}

double SquaresOf(const std::vector<double>& values) {
  double sum = 0;
  for (double value : values) sum += value * value;
  return sum;
}

class GopTest : public DeviceTest {
 protected:
  // A tanh MLP 3 -> 4 -> 2 with names layers.0.{weight,bias},
  // layers.1.{weight,bias} (M = 26), N = 7 samples, cross-entropy.
  void MakeMlp(int64_t n = 7) {
    mlp_ = std::make_unique<LayeredTanhMlp>(std::vector<int64_t>{3, 4, 2}, 5);
    mlp_->To(device(), torch::kFloat64);
    inputs_ = SeededRandn({n, 3}, 6).to(device());
    targets_ = SeededLabels(n, 2, 7).to(device());
  }
  Objective MlpObjective(int64_t micro_batch_size = 0) {
    auto objective =
        Objective::Create(mlp_.get(), inputs_, targets_,
                          LossFunction::kCrossEntropy, micro_batch_size);
    EXPECT_TRUE(objective.ok()) << objective.status();
    return std::move(objective).value();
  }
  torch::Tensor MlpJacobian(const std::vector<int64_t>& samples) {
    return SingleSampleJacobian(*mlp_, inputs_, targets_,
                                LossFunction::kCrossEntropy, samples);
  }

  std::unique_ptr<LayeredTanhMlp> mlp_;
  torch::Tensor inputs_;
  torch::Tensor targets_;
};

TEST_P(GopTest, LinearMseClosedFormPerSampleGradients) {
  // y = x^T w, one output, MSE: g_i = 2 (x_i^T w - y_i) x_i. With N = 9 > M
  // = 4 the matrix has full rank M; with N = 3 < M = 6 its rank is N.
  for (const auto& [n, m] : {std::pair<int64_t, int64_t>{9, 4}, {3, 6}}) {
    SCOPED_TRACE(absl::StrCat("N = ", n, ", M = ", m));
    LinearModel model(m, 1, /*seed=*/1);
    model.To(device(), torch::kFloat64);
    const torch::Tensor x = SeededRandn({n, m}, 2);
    const torch::Tensor y = SeededRandn({n, 1}, 3);
    const torch::Tensor w = model.Parameters()[0].detach().cpu().reshape({-1});
    const torch::Tensor jacobian =
        2 * (x.mv(w) - y.reshape({-1})).unsqueeze(1) * x;
    auto objective = Objective::Create(&model, x.to(device()), y.to(device()),
                                       LossFunction::kMse, 0);
    ASSERT_TRUE(objective.ok()) << objective.status();
    GopOptions options;
    options.top_k = 3;
    auto result = MeasureGop(*objective, options, Progress());
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->path, "generic");
    EXPECT_EQ(result->num_samples, n);
    EXPECT_EQ(result->num_parameters, m);
    const torch::Tensor explicit_matrix = jacobian.t().mm(jacobian) / n;
    ExpectMatchesExplicit(result->metrics, explicit_matrix, std::min(n, m));
    // tr = mean ||g_i||^2; Frobenius^2 = sum lambda^2.
    const torch::Tensor norms = jacobian.norm(2, {1});
    EXPECT_NEAR(result->metrics.trace, norms.square().mean().item<double>(),
                1e-12 * result->metrics.trace);
    EXPECT_NEAR(std::pow(result->metrics.frobenius_norm, 2),
                SquaresOf(result->metrics.eigenvalues),
                1e-12 * SquaresOf(result->metrics.eigenvalues));
    // The norm distribution: mean and the extreme quantiles.
    EXPECT_NEAR(result->gradient_norms.mean, norms.mean().item<double>(),
                1e-12 * norms.mean().item<double>());
    ASSERT_EQ(result->gradient_norms.quantiles.size(), 5);
    EXPECT_NEAR(result->gradient_norms.quantiles.front(),
                norms.min().item<double>(), 1e-12);
    EXPECT_NEAR(result->gradient_norms.quantiles.back(),
                norms.max().item<double>(), 1e-12);
    EXPECT_NEAR(result->gradient_norms.quantiles[2],
                norms.median().item<double>(), 1e-12);  // N odd
    EXPECT_FALSE(result->signal_to_noise.has_value());
  }
}

TEST_P(GopTest, MlpSpectrumMatchesTheExplicitMatrixAndItsMetrics) {
  MakeMlp();
  Objective objective = MlpObjective();
  const torch::Tensor jacobian = MlpJacobian(AllSamples(7));
  GopOptions options;
  options.top_k = 4;
  auto result = MeasureGop(objective, options, Progress());
  ASSERT_TRUE(result.ok()) << result.status();
  const GopMetrics& metrics = result->metrics;
  ExpectMatchesExplicit(metrics, jacobian.t().mm(jacobian) / 7, 7);

  const std::vector<double>& lambda = metrics.eigenvalues;
  double sum = 0, logs = 0;
  for (double value : lambda) {
    sum += value;
    logs += std::log(value);
  }
  double entropy = 0;
  for (double value : lambda) entropy -= value / sum * std::log(value / sum);
  EXPECT_NEAR(metrics.effective_rank, std::exp(entropy), 1e-12);
  EXPECT_GT(metrics.effective_rank, 1);
  EXPECT_LT(metrics.effective_rank, 7);
  EXPECT_NEAR(metrics.stable_rank, SquaresOf(lambda) / (lambda[0] * lambda[0]),
              1e-10);
  EXPECT_NEAR(metrics.condition_number, lambda.front() / lambda.back(),
              1e-9 * metrics.condition_number);
  EXPECT_NEAR(metrics.log_pseudo_determinant, logs, 1e-10);
  EXPECT_DOUBLE_EQ(metrics.max_nonzero, lambda.front());
  EXPECT_DOUBLE_EQ(metrics.min_nonzero, lambda.back());
  EXPECT_NEAR(metrics.mean_nonzero, sum / 7, 1e-14);
  EXPECT_NEAR(metrics.mean_all, metrics.trace / 26, 1e-14);
  const double var_all = SquaresOf(lambda) / 26 - std::pow(sum / 26, 2);
  EXPECT_NEAR(metrics.std_all, std::sqrt(var_all), 1e-10);
  const double var_nonzero = SquaresOf(lambda) / 7 - std::pow(sum / 7, 2);
  EXPECT_NEAR(metrics.std_nonzero, std::sqrt(var_nonzero), 1e-10);
  ASSERT_EQ(metrics.top_eigenvalues.size(), 4);
  ASSERT_EQ(metrics.explained_variance.size(), 4);
  double cumulative = 0;
  for (int j = 0; j < 4; ++j) {
    EXPECT_DOUBLE_EQ(metrics.top_eigenvalues[j], lambda[j]);
    cumulative += lambda[j];
    EXPECT_NEAR(metrics.explained_variance[j], cumulative / metrics.trace,
                1e-12);
  }
  EXPECT_LT(metrics.explained_variance.back(), 1);
  EXPECT_THAT(metrics.rank_rule, HasSubstr("N * eps_float64"));
  EXPECT_DOUBLE_EQ(metrics.rank_tolerance,
                   7 * std::numeric_limits<double>::epsilon() * lambda[0]);

  // A requested tolerance between two eigenvalues cuts the rank there.
  options.rank_rtol = std::sqrt(lambda[3] * lambda[4]) / lambda[0];
  auto cut = MeasureGop(objective, options, Progress());
  ASSERT_TRUE(cut.ok()) << cut.status();
  EXPECT_EQ(cut->metrics.rank, 4);
  EXPECT_THAT(cut->metrics.rank_rule, HasSubstr("requested"));
}

TEST_P(GopTest, PerLayerGramsSumToTheWholeModelGram) {
  MakeMlp();
  Objective objective = MlpObjective();
  const std::vector<GopGroup> groups = GopGroups(objective);
  ASSERT_EQ(groups.size(), 2);
  EXPECT_EQ(groups[0].name, "layers.0");
  EXPECT_EQ(groups[0].offset, 0);
  EXPECT_EQ(groups[0].size, 3 * 4 + 4);
  EXPECT_EQ(groups[1].name, "layers.1");
  EXPECT_EQ(groups[1].offset, 16);
  EXPECT_EQ(groups[1].size, 4 * 2 + 2);

  auto grams = GopGramMatrices(objective, AllSamples(7), groups,
                               int64_t{1} << 20, Progress());
  ASSERT_TRUE(grams.ok()) << grams.status();
  const torch::Tensor sum = grams->groups[0] + grams->groups[1];
  EXPECT_LT((sum - grams->whole).abs().max().item<double>(),
            1e-13 * grams->whole.abs().max().item<double>());
  // Each group's Gram matrix is that of its columns of J.
  const torch::Tensor jacobian = MlpJacobian(AllSamples(7));
  const torch::Tensor second = jacobian.narrow(1, 16, 10);
  EXPECT_LT((grams->groups[1].cpu() - second.mm(second.t()))
                .abs()
                .max()
                .item<double>(),
            1e-13);

  GopOptions options = TopThree();
  options.per_layer = true;
  options.variant = GopVariant::kGradientCovariance;
  auto result = MeasureGop(objective, options, Progress());
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->layers.size(), 2);
  EXPECT_EQ(result->layers[1].name, "layers.1");
  EXPECT_EQ(result->layers[1].size, 10);
  EXPECT_EQ(result->layers[1].metrics.size, 10);
  const double traces =
      result->layers[0].metrics.trace + result->layers[1].metrics.trace;
  EXPECT_NEAR(traces, result->metrics.trace, 1e-12 * traces);
  EXPECT_NEAR(result->layers[0].trace_share + result->layers[1].trace_share, 1,
              1e-12);
  EXPECT_GT(result->layers[1].trace_share, 0);
  // The last layer's gradients are (p_i - y_i) (x) [h_i, 1] with p_i - y_i
  // in the line (1, -1) of two classes: rank at most 4 + 1 = 5 of M = 10.
  const torch::Tensor centred = second - second.mean(0, true);
  ExpectMatchesExplicit(result->layers[1].metrics, centred.t().mm(centred) / 7,
                        5);
}

TEST_P(GopTest, CentredVariantIsTheExplicitCovariance) {
  MakeMlp();
  Objective objective = MlpObjective();
  const torch::Tensor jacobian = MlpJacobian(AllSamples(7));
  const torch::Tensor mean = jacobian.mean(0);
  const torch::Tensor centred = jacobian - mean;
  GopOptions options = TopThree();
  options.variant = GopVariant::kGradientCovariance;
  auto result = MeasureGop(objective, options, Progress());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->variant, GopVariant::kGradientCovariance);
  // Centring removes one dimension: rank N - 1.
  ExpectMatchesExplicit(result->metrics, centred.t().mm(centred) / 7, 6);
  ASSERT_TRUE(result->signal_to_noise.has_value());
  const double snr = mean.dot(mean).item<double>() /
                     (centred.square().sum().item<double>() / 7);
  EXPECT_NEAR(*result->signal_to_noise, snr, 1e-12 * snr);
  // The uncentred trace is the centred one plus ||g-bar||^2.
  options.variant = GopVariant::kEmpiricalFisher;
  auto uncentred = MeasureGop(objective, options, Progress());
  ASSERT_TRUE(uncentred.ok()) << uncentred.status();
  EXPECT_NEAR(uncentred->metrics.trace,
              result->metrics.trace + mean.dot(mean).item<double>(),
              1e-12 * uncentred->metrics.trace);
}

TEST_P(GopTest, MeanGradientClosedForms) {
  MakeMlp();
  Objective objective = MlpObjective(/*micro_batch_size=*/3);
  const torch::Tensor g = objective.Gradient().value().cpu();
  const double norm_squared = g.dot(g).item<double>();
  GopOptions options;
  options.variant = GopVariant::kMeanGradient;
  options.top_k = 3;
  options.eigenvectors = true;
  options.per_layer = true;
  auto result = MeasureGop(objective, options, Progress());
  ASSERT_TRUE(result.ok()) << result.status();
  const GopMetrics& metrics = result->metrics;
  EXPECT_EQ(metrics.rank, 1);
  ASSERT_EQ(metrics.eigenvalues.size(), 1);
  EXPECT_NEAR(metrics.eigenvalues[0], norm_squared, 1e-12 * norm_squared);
  EXPECT_NEAR(metrics.trace, norm_squared, 1e-12 * norm_squared);
  EXPECT_NEAR(metrics.frobenius_norm, norm_squared, 1e-12 * norm_squared);
  EXPECT_NEAR(metrics.nuclear_norm, norm_squared, 1e-12 * norm_squared);
  EXPECT_DOUBLE_EQ(metrics.effective_rank, 1);
  EXPECT_DOUBLE_EQ(metrics.stable_rank, 1);
  EXPECT_DOUBLE_EQ(metrics.condition_number, 1);
  EXPECT_NEAR(metrics.log_pseudo_determinant, std::log(norm_squared), 1e-12);
  EXPECT_EQ(metrics.top_eigenvalues,
            (std::vector<double>{metrics.eigenvalues[0], 0, 0}));
  EXPECT_NEAR(metrics.explained_variance[2], 1, 1e-15);
  ASSERT_EQ(result->num_eigenvectors, 1);
  const torch::Tensor v = torch::tensor(result->eigenvectors, torch::kFloat64);
  EXPECT_LT((v - g / std::sqrt(norm_squared)).abs().max().item<double>(),
            1e-12);
  EXPECT_TRUE(result->gradient_norms.quantiles.empty());
  ASSERT_EQ(result->layers.size(), 2);
  const torch::Tensor g1 = g.narrow(0, 16, 10);
  EXPECT_NEAR(result->layers[1].metrics.trace, g1.dot(g1).item<double>(),
              1e-12 * norm_squared);
  EXPECT_NEAR(result->layers[0].trace_share + result->layers[1].trace_share, 1,
              1e-12);
}

TEST_P(GopTest, EigenvectorsSatisfyTheImplicitEigenEquation) {
  MakeMlp();
  Objective objective = MlpObjective();
  const torch::Tensor jacobian = MlpJacobian(AllSamples(7));
  for (const GopVariant variant :
       {GopVariant::kEmpiricalFisher, GopVariant::kGradientCovariance}) {
    const bool centred = variant == GopVariant::kGradientCovariance;
    SCOPED_TRACE(centred ? "centred" : "uncentred");
    const torch::Tensor j =
        centred ? jacobian - jacobian.mean(0, true) : jacobian;
    GopOptions options;
    options.variant = variant;
    options.top_k = 7;
    options.eigenvectors = true;
    auto result = MeasureGop(objective, options, Progress());
    ASSERT_TRUE(result.ok()) << result.status();
    // Only those above the tolerance: all 7, or 6 when centred.
    const int64_t k = centred ? 6 : 7;
    ASSERT_EQ(result->num_eigenvectors, k);
    ASSERT_EQ(result->eigenvectors.size(), k * 26);
    const torch::Tensor v =
        torch::tensor(result->eigenvectors, torch::kFloat64).reshape({k, 26});
    for (int64_t i = 0; i < k; ++i) {
      const double lambda = result->metrics.top_eigenvalues[i];
      const torch::Tensor cv = j.t().mv(j.mv(v[i])) / 7;  // J^T (J v) / N
      EXPECT_LT((cv - lambda * v[i]).norm().item<double>(),
                1e-10 * result->metrics.spectral_norm)
          << i;
      EXPECT_NEAR(v[i].norm().item<double>(), 1, 1e-12);
    }
  }
}

// Streamed with room for R = 16 rows of M = 26 over N = 40: resident chunks
// of a = 14 rows (three), the earlier rows recomputed two at a time, so
// N + a K (K - 1) / 2 = 40 + 14 * 3 = 82 per-sample gradients (each polls
// `cancelled` once), where two chunks of R / 2 = 8 took 40 + 8 * 10 = 120;
// the Gram matrices those of the retained gradients.
TEST_P(GopTest, StreamingRecomputesEveryEarlierRowOnce) {
  MakeMlp(40);
  Objective objective = MlpObjective();
  const std::vector<GopGroup> groups = GopGroups(objective);
  auto retained = GopGramMatrices(objective, AllSamples(40), groups,
                                  int64_t{1} << 20, Progress());
  int64_t gradients = 0;
  Progress counting;
  counting.cancelled = [&gradients] {
    ++gradients;
    return false;
  };
  auto streamed =
      GopGramMatrices(objective, AllSamples(40), groups, 16 * 26, counting);
  ASSERT_TRUE(retained.ok()) << retained.status();
  ASSERT_TRUE(streamed.ok()) << streamed.status();
  EXPECT_EQ(gradients, 82);
  EXPECT_EQ(GopGenericGradientCount(40, 26, 16 * 26), 82);
  EXPECT_EQ(GopGenericGradientCount(40, 26, 40 * 26), 40);
  EXPECT_FALSE(streamed->gradients.defined());
  EXPECT_LT((streamed->whole - retained->whole).abs().max().item<double>(),
            1e-12 * retained->whole.abs().max().item<double>());
  for (size_t g = 0; g < groups.size(); ++g) {
    EXPECT_LT(
        (streamed->groups[g] - retained->groups[g]).abs().max().item<double>(),
        1e-12 * retained->groups[g].abs().max().item<double>())
        << groups[g].name;
  }
}

TEST_P(GopTest, StreamingEqualsRetainedGradients) {
  MakeMlp();
  Objective objective = MlpObjective();
  GopOptions options;
  options.top_k = 3;
  options.eigenvectors = true;
  options.per_layer = true;
  auto retained = MeasureGop(objective, options, Progress());
  // Four rows of 26: resident chunks of three over N = 7 (the last short),
  // the earlier rows recomputed one at a time, and the eigenvectors in a
  // second pass.
  options.max_gradient_floats = 4 * 26;
  auto streamed = MeasureGop(objective, options, Progress());
  ASSERT_TRUE(retained.ok()) << retained.status();
  ASSERT_TRUE(streamed.ok()) << streamed.status();
  ASSERT_EQ(streamed->metrics.eigenvalues.size(),
            retained->metrics.eigenvalues.size());
  for (size_t j = 0; j < retained->metrics.eigenvalues.size(); ++j) {
    EXPECT_NEAR(streamed->metrics.eigenvalues[j],
                retained->metrics.eigenvalues[j],
                1e-12 * retained->metrics.spectral_norm);
  }
  EXPECT_NEAR(streamed->layers[1].metrics.trace,
              retained->layers[1].metrics.trace,
              1e-12 * retained->metrics.trace);
  ASSERT_EQ(streamed->eigenvectors.size(), retained->eigenvectors.size());
  for (int64_t i = 0; i < 3; ++i) {
    // The same vector up to sign.
    double dot = 0;
    for (int64_t e = 0; e < 26; ++e) {
      dot += streamed->eigenvectors[i * 26 + e] *
             retained->eigenvectors[i * 26 + e];
    }
    EXPECT_NEAR(std::abs(dot), 1, 1e-10) << i;
  }
}

TEST_P(GopTest, SeededSubsetIsReproducibleAndMeasuresThoseSamples) {
  MakeMlp(/*n=*/12);
  Objective objective = MlpObjective();
  GopOptions options;
  options.num_samples = 5;
  options.seed = 3;
  options.top_k = 2;
  const std::vector<int64_t> samples = GopSampleIndices(options, 12);
  ASSERT_EQ(samples.size(), 5);
  EXPECT_TRUE(std::is_sorted(samples.begin(), samples.end()));
  EXPECT_EQ(GopSampleIndices(options, 12), samples);
  GopOptions other = options;
  other.seed = 4;
  EXPECT_NE(GopSampleIndices(other, 12), samples);

  auto first = MeasureGop(objective, options, Progress());
  auto second = MeasureGop(objective, options, Progress());
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(first->num_samples, 5);
  EXPECT_EQ(first->metrics.eigenvalues, second->metrics.eigenvalues);
  const torch::Tensor jacobian = MlpJacobian(samples);
  ExpectMatchesExplicit(first->metrics, jacobian.t().mm(jacobian) / 5, 5);
}

// The generic path through a TorchScript module: the same GOP, per layer
// too, as the zoo MLP with the same weights, whose modules are fc0 and fc1.
TEST_P(GopTest, TorchScriptEqualsZoo) {
  const std::optional<ZooMlpFixture> fixture = ZooMlpFixtureSources();
  if (!fixture) GTEST_SKIP() << "no Python TorchScript fixture";
  const ModelSource& scripted = fixture->scripted;
  const ModelSource& zoo = fixture->zoo;
  const torch::Tensor x = SeededRandn({9, 5}, 39).to(device());
  const torch::Tensor labels = SeededLabels(9, 3, 40).to(device());
  GopOptions options = TopThree();
  options.per_layer = true;
  options.variant = GopVariant::kGradientCovariance;
  std::vector<GopResult> results;
  for (const ModelSource& source : {scripted, zoo}) {
    auto model = LoadModel(source);
    ASSERT_TRUE(model.ok()) << model.status();
    (*model)->To(device(), torch::kFloat64);
    auto objective = Objective::Create(model->get(), x, labels,
                                       LossFunction::kCrossEntropy, 4);
    ASSERT_TRUE(objective.ok()) << objective.status();
    auto result = MeasureGop(*objective, options, Progress());
    ASSERT_TRUE(result.ok()) << result.status();
    results.push_back(*std::move(result));
  }
  ASSERT_EQ(results[0].layers.size(), 2);
  EXPECT_EQ(results[0].layers[0].name, "fc0");
  EXPECT_EQ(results[0].layers[1].name, "fc1");
  EXPECT_EQ(results[0].layers[1].size, 8 * 3 + 3);
  EXPECT_EQ(results[0].metrics.rank, 8);  // N - 1
  ASSERT_EQ(results[0].metrics.eigenvalues.size(),
            results[1].metrics.eigenvalues.size());
  for (size_t j = 0; j < results[0].metrics.eigenvalues.size(); ++j) {
    EXPECT_NEAR(results[0].metrics.eigenvalues[j],
                results[1].metrics.eigenvalues[j],
                1e-12 * results[1].metrics.spectral_norm);
  }
  EXPECT_NEAR(results[0].layers[0].trace_share,
              results[1].layers[0].trace_share, 1e-12);
}

TEST_P(GopTest, CancelledBeforeTheFirstSample) {
  MakeMlp();
  Objective objective = MlpObjective();
  Progress progress;
  progress.cancelled = [] { return true; };
  auto result = MeasureGop(objective, TopThree(), progress);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled);
}

TEST_P(GopTest, BadOptionsAreRefusedNamingTheField) {
  MakeMlp();
  Objective objective = MlpObjective();
  const auto refused = [&](const GopOptions& options) {
    auto result = MeasureGop(objective, options, Progress());
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(result.status().message());
  };
  GopOptions options = TopThree();
  options.top_k = -1;
  EXPECT_THAT(refused(options), HasSubstr("gop.top_k"));
  options = TopThree();
  options.num_samples = 8;
  EXPECT_THAT(refused(options), HasSubstr("gop.num_samples"));
  options.num_samples = -1;
  EXPECT_THAT(refused(options), HasSubstr("gop.num_samples"));
  options = TopThree();
  options.variant = static_cast<GopVariant>(7);
  EXPECT_THAT(refused(options), HasSubstr("gop.variant"));
  options = TopThree();
  options.max_samples = 5;
  EXPECT_THAT(refused(options),
              HasSubstr("exceeds the cap gop.max_samples = 5 by 2"));
  options = TopThree();
  options.top_k = 3;
  options.eigenvectors = true;
  options.max_eigenvector_floats = 70;  // 3 x 26 = 78
  EXPECT_THAT(
      refused(options),
      HasSubstr("exceeds the cap gop.max_eigenvector_floats = 70 by 8"));
  // The mean gradient's one eigenvector fits that cap's 26 floats.
  options.variant = GopVariant::kMeanGradient;
  options.max_eigenvector_floats = 26;
  EXPECT_TRUE(MeasureGop(objective, options, Progress()).ok());
  options = TopThree();
  options.per_layer = true;
  options.max_gram_floats = 100;  // 3 x 49 = 147
  EXPECT_THAT(refused(options),
              HasSubstr("exceeds the cap gop.max_gram_floats = 100 by 47"));
  options = TopThree();
  options.rank_rtol = 0;
  EXPECT_THAT(refused(options), HasSubstr("gop.rank_rtol"));
  options = TopThree();
  options.max_gradient_floats = 0;
  EXPECT_THAT(refused(options), HasSubstr("gop.max_gradient_floats"));
  // Refused before any work: a cancelling hook is never asked.
  Progress progress;
  progress.cancelled = [] {
    ADD_FAILURE() << "work started";
    return true;
  };
  options = TopThree();
  options.num_samples = 8;
  EXPECT_EQ(MeasureGop(objective, options, progress).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// The default top_k, 10, on 7 samples: their 7 eigenvalues, not a refusal.
TEST_P(GopTest, TopKAboveNGivesTheNEigenvalues) {
  MakeMlp();
  Objective objective = MlpObjective();
  GopOptions options;
  options.eigenvectors = true;
  absl::StatusOr<GopResult> result = MeasureGop(objective, options, Progress());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->metrics.top_eigenvalues.size(), 7u);
  EXPECT_EQ(result->num_eigenvectors, result->metrics.rank);
}

CURVD_INSTANTIATE_DEVICE_TEST(GopTest);

}  // namespace
}  // namespace curvd::core
