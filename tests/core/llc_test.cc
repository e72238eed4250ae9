// MeasureLlc end to end on a model whose loss is exactly quadratic: a linear
// model y = x W^T with MSE and targets it fits at w*, so L(w) - L(w*) =
// (1/2) u^T H u, u = w - w*, H = (2 / (N C)) (I_C (x) X^T X). With the full
// shard as the batch, SGLD's gradient is exact, and each eigen-coordinate of H
// (eigenvalue h) is the AR(1) process of ../shared/VALIDATION.md with
// a = n_beta h + gamma: from w*, Var(u_t) = V (1 - c^{2t}), c = 1 - epsilon
// a / 2, V = 1 / (a (1 - epsilon a / 4)). MALA samples the posterior itself,
// Var(u) = 1 / a with no epsilon bias.
#include "core/measurements/llc.h"
#include "core/measurements/llc_calibration.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/core/toy_models.h"

namespace curvd::core {
namespace {

using ::curvd::core::testing::DeviceTest;
using ::curvd::core::testing::LinearModel;
using ::curvd::core::testing::LinearWithUnusedParameter;
using ::curvd::core::testing::SeededRandn;

constexpr int64_t kSamples = 40;
constexpr int64_t kInputs = 6;
constexpr int64_t kOutputs = 1;

class LlcTest : public DeviceTest {
 protected:
  void SetUp() override {
    DeviceTest::SetUp();
    if (IsSkipped()) return;
    model_ = std::make_unique<LinearModel>(kInputs, kOutputs, 3);
    model_->To(device(), torch::kFloat64);
    // Inputs of unequal scales, so that H has a spread of eigenvalues.
    inputs_ = (SeededRandn({kSamples, kInputs}, 4) *
               torch::linspace(0.3, 1.5, kInputs, torch::kFloat64))
                  .to(options());
    targets_ = model_->Forward(inputs_).detach();  // L(w*) = 0
  }

  Objective MakeObjective() {
    return Objective::Create(model_.get(), inputs_, targets_,
                             LossFunction::kMse, /*micro_batch_size=*/16)
        .value();
  }

  // The eigenvalues of H, float64 on the CPU.
  std::vector<double> HessianEigenvalues() const {
    const torch::Tensor x = inputs_.cpu();
    const torch::Tensor h =
        2 * x.t().mm(x) / static_cast<double>(kSamples * kOutputs);
    const torch::Tensor values = torch::linalg_eigvalsh(h);
    return std::vector<double>(values.data_ptr<double>(),
                               values.data_ptr<double>() + values.numel());
  }

  std::unique_ptr<LinearModel> model_;
  torch::Tensor inputs_;
  torch::Tensor targets_;
};

LlcOptions FullBatch(LlcSampler sampler, double step_size, double n_beta,
                     double gamma) {
  LlcOptions o;
  o.sampler = sampler;
  o.step_size = step_size;
  o.n_beta_convention = NBetaConvention::kGiven;
  o.n_beta = n_beta;
  o.localization = gamma;
  o.chains = 64;
  o.batch_size = kSamples;
  o.seed = 21;
  return o;
}

// The mean over the chains' lambda_hat and its standard error across them.
struct Spread {
  double mean = 0;
  double standard_error = 0;
};
Spread AcrossChains(const LlcResult& result) {
  double sum = 0;
  double squares = 0;
  for (const LlcChain& chain : result.chains) sum += chain.llc;
  const double n = static_cast<double>(result.chains.size());
  const double mean = sum / n;
  for (const LlcChain& chain : result.chains) {
    squares += (chain.llc - mean) * (chain.llc - mean);
  }
  return {mean, std::sqrt(squares / (n - 1) / n)};
}

TEST_P(LlcTest, FullBatchSgldMatchesTheExactExpectationWithItsTransient) {
  Objective objective = MakeObjective();
  LlcOptions o = FullBatch(LlcSampler::kSgld, 2e-3, 30, 2);
  o.burn_in = 20;  // shorter than the slowest mode's 1 / (epsilon a): the
  o.draws = 300;   // transient is part of the expectation
  o.steps_between_draws = 2;
  const absl::StatusOr<LlcResult> result = MeasureLlc(objective, o, {});
  ASSERT_TRUE(result.ok()) << result.status();
  double expected = 0;
  for (int d = 0; d < o.draws; ++d) {
    const int t = o.burn_in + d * o.steps_between_draws;
    for (double h : HessianEigenvalues()) {
      const double a = o.n_beta * h + o.localization;
      const double v = 1 / (a * (1 - o.step_size * a / 4));
      const double c = 1 - o.step_size * a / 2;
      expected += o.n_beta * 0.5 * h * v * (1 - std::pow(c, 2 * t));
    }
  }
  expected /= o.draws;
  const Spread spread = AcrossChains(*result);
  EXPECT_NEAR(spread.mean, expected, 3 * spread.standard_error)
      << "standard error " << spread.standard_error;
  EXPECT_NEAR(result->llc_mean, spread.mean, 1e-12 * std::abs(spread.mean));
  EXPECT_EQ(result->n_beta, 30);
  EXPECT_EQ(result->batch_size, kSamples);
  EXPECT_EQ(result->steps, o.burn_in + o.draws * o.steps_between_draws);
  EXPECT_NEAR(result->initial_loss, 0, 1e-20);
  EXPECT_EQ(result->chains_diverged, 0);
}

TEST_P(LlcTest, MalaSamplesThePosteriorWithNoStepSizeBias) {
  Objective objective = MakeObjective();
  // epsilon a up to 1 for the stiffest mode: SGLD's variance there would be
  // 1 / (1 - 1/4) = 1.33 times the posterior's.
  const std::vector<double> h = HessianEigenvalues();
  const double n_beta = 30;
  const double gamma = 2;
  const double stiffest = n_beta * h.back() + gamma;
  LlcOptions o = FullBatch(LlcSampler::kMala, 1.0 / stiffest, n_beta, gamma);
  o.burn_in = 400;
  o.draws = 400;
  const absl::StatusOr<LlcResult> result = MeasureLlc(objective, o, {});
  ASSERT_TRUE(result.ok()) << result.status();
  double expected = 0;
  double sgld = 0;
  for (double value : h) {
    const double a = n_beta * value + gamma;
    expected += n_beta * 0.5 * value / a;
    sgld += n_beta * 0.5 * value / (a * (1 - o.step_size * a / 4));
  }
  const Spread spread = AcrossChains(*result);
  EXPECT_NEAR(spread.mean, expected, 3 * spread.standard_error);
  EXPECT_GT(std::abs(sgld - expected), 5 * spread.standard_error)
      << "the setting must separate MALA from SGLD's epsilon bias";
  ASSERT_TRUE(result->acceptance_rate.has_value());
  EXPECT_GT(*result->acceptance_rate, 0.3);
  EXPECT_LT(*result->acceptance_rate, 1.0);
  EXPECT_EQ(result->batch_size, kSamples);
}

TEST_P(LlcTest, NBetaConventionsAreResolvedAndRecorded) {
  Objective objective = MakeObjective();
  LlcOptions o = FullBatch(LlcSampler::kSgld, 1e-4, 1, 1);
  o.chains = 2;
  o.draws = 4;
  o.burn_in = 0;
  o.batch_size = 10;
  o.n_beta_convention = NBetaConvention::kDataset;
  EXPECT_DOUBLE_EQ(MeasureLlc(objective, o, {})->n_beta,
                   kSamples / std::log(double{kSamples}));
  o.n_beta_convention = NBetaConvention::kBatch;
  const absl::StatusOr<LlcResult> batch = MeasureLlc(objective, o, {});
  EXPECT_DOUBLE_EQ(batch->n_beta, 10 / std::log(10.0));
  EXPECT_EQ(batch->batch_size, 10);
  o.batch_size = 1000;  // more than the shard: the shard
  EXPECT_EQ(MeasureLlc(objective, o, {})->batch_size, kSamples);
  o.n_beta_convention = NBetaConvention::kGiven;
  o.n_beta = 0;
  EXPECT_EQ(MeasureLlc(objective, o, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_P(LlcTest, TracesAreDownsampledPastTheCapAndFullShardLossesKept) {
  Objective objective = MakeObjective();
  LlcOptions o = FullBatch(LlcSampler::kSgld, 1e-3, 10, 1);
  o.chains = 3;
  o.draws = 25;
  o.burn_in = 5;
  o.batch_size = 8;
  o.trace_cap = 10;  // stride ceil(25 / 10) = 3: draws 0, 3, ..., 24
  o.full_loss_every = 5;
  const absl::StatusOr<LlcResult> result = MeasureLlc(objective, o, {});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->trace_stride, 3);
  ASSERT_EQ(result->chains.size(), 3u);
  for (const LlcChain& chain : result->chains) {
    EXPECT_EQ(chain.loss_trace.size(), 9u);
    EXPECT_EQ(chain.llc_running_mean.size(), 9u);
    EXPECT_EQ(chain.distance_trace.size(), 9u);
    ASSERT_EQ(chain.full_loss_trace.size(), 5u);
    // lambda_hat comes from the full-shard losses when they are kept.
    double mean = 0;
    for (double loss : chain.full_loss_trace) mean += loss / 5;
    EXPECT_NEAR(chain.llc, o.n_beta * (mean - result->initial_loss),
                1e-9 * std::abs(chain.llc) + 1e-15);
    EXPECT_GT(chain.distance_trace.back(), 0);
  }
}

TEST_P(LlcTest, DivergenceFailsNamingTheChainOrWhenEveryChainDiverged) {
  Objective objective = MakeObjective();
  const std::vector<double> h = HessianEigenvalues();
  // epsilon a = 8 for the stiffest mode: |c| = 3, the chains explode.
  LlcOptions o = FullBatch(LlcSampler::kSgld, 0, 30, 0);
  o.step_size = 8 / (30 * h.back());
  o.chains = 4;
  o.draws = 200;
  o.on_divergence = DivergencePolicy::kFail;
  const absl::Status fail = MeasureLlc(objective, o, {}).status();
  EXPECT_EQ(fail.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(fail.message().find("diverged at step"), std::string::npos)
      << fail;
  o.on_divergence = DivergencePolicy::kDropChain;
  const absl::Status all = MeasureLlc(objective, o, {}).status();
  EXPECT_EQ(all.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(all.message().find("every llc chain diverged"), std::string::npos)
      << all;
  // A loss that is only the posterior's own (a tiny L(w*) sets a low
  // threshold) needs a larger factor, not a smaller step: both say so.
  for (const absl::Status& status : {fail, all}) {
    EXPECT_NE(status.message().find("raise divergence_factor"),
              std::string::npos)
        << status;
    EXPECT_NE(status.message().find(absl::StrCat("n_beta = ", o.n_beta)),
              std::string::npos)
        << status;
  }
}

TEST_P(LlcTest, CancellingStopsWithinAStepAndTheParametersAreUnchanged) {
  Objective objective = MakeObjective();
  const torch::Tensor before = model_->Parameters()[0].clone();
  LlcOptions o = FullBatch(LlcSampler::kSgld, 1e-3, 10, 1);
  o.chains = 2;
  o.draws = 1000;
  std::atomic<int> polls{0};
  Progress progress;
  progress.cancelled = [&polls] { return ++polls > 7; };
  const absl::Status status = MeasureLlc(objective, o, progress).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(polls.load(), 8);
  EXPECT_TRUE(torch::equal(model_->Parameters()[0], before));
  // A whole run leaves them as they were too.
  o.draws = 5;
  ASSERT_TRUE(MeasureLlc(objective, o, {}).ok());
  EXPECT_TRUE(torch::equal(model_->Parameters()[0], before));
}

TEST_P(LlcTest, ASeedRepeatsItsChainsAndAnotherDoesNot) {
  Objective objective = MakeObjective();
  LlcOptions o = FullBatch(LlcSampler::kSgld, 1e-3, 10, 1);
  o.chains = 2;
  o.draws = 20;
  o.batch_size = 8;
  const LlcResult a = MeasureLlc(objective, o, {}).value();
  const LlcResult b = MeasureLlc(objective, o, {}).value();
  o.seed += 1;
  const LlcResult c = MeasureLlc(objective, o, {}).value();
  EXPECT_EQ(a.chains[0].loss_trace, b.chains[0].loss_trace);
  EXPECT_NE(a.chains[0].loss_trace, c.chains[0].loss_trace);
  EXPECT_NE(a.chains[0].loss_trace, a.chains[1].loss_trace);
  // On CUDA the chains replay a device graph (else a warning says why not).
  for (const LlcResult* r : {&a, &b, &c}) {
    EXPECT_THAT(r->warnings,
                ::testing::Not(::testing::Contains(
                    ::testing::HasSubstr("without a device graph"))));
  }
}

// Chains divided among objectives (here on one device, as logical devices)
// draw what they would together: every chain's record equals the undivided
// run's, for a minibatch sampler and for MALA (per-chain acceptance joined),
// with groups of unequal size and more objectives than chains.
// LinearModel counting its forward passes.
class CountingLinear : public LinearModel {
 public:
  CountingLinear() : LinearModel(kInputs, kOutputs, 3) {}
  torch::Tensor Forward(const torch::Tensor& x) override {
    ++forwards;
    return LinearModel::Forward(x);
  }
  int forwards = 0;
};

TEST_P(LlcTest, ChainsDividedAmongObjectivesEqualTheUndividedChains) {
  std::vector<std::unique_ptr<CountingLinear>> copies;
  std::vector<Objective> objectives;
  for (int i = 0; i < 6; ++i) {
    copies.push_back(std::make_unique<CountingLinear>());
    copies.back()->To(device(), torch::kFloat64);
    objectives.push_back(Objective::Create(copies.back().get(), inputs_,
                                           targets_, LossFunction::kMse, 16)
                             .value());
  }
  for (LlcSampler sampler : {LlcSampler::kSgld, LlcSampler::kMala}) {
    LlcOptions o = FullBatch(sampler, 1e-3, 10, 1);
    o.chains = 5;
    o.draws = 30;
    o.burn_in = 5;
    o.batch_size = 8;
    o.full_loss_every = 4;
    const LlcResult whole = MeasureLlc(objectives[0], o, {}).value();
    for (size_t devices : {2u, 3u, 6u}) {
      SCOPED_TRACE(::testing::Message() << "sampler "
                                        << static_cast<int>(sampler) << ", "
                                        << devices << " objectives");
      std::vector<Objective*> parts;
      for (size_t i = 0; i < devices; ++i) parts.push_back(&objectives[i]);
      for (auto& copy : copies) copy->forwards = 0;
      const absl::StatusOr<LlcResult> divided = MeasureLlc(parts, o, {});
      ASSERT_TRUE(divided.ok()) << divided.status();
      // The groups: as even as the count allows, one per objective with a
      // chain; every such objective evaluated its chains, the sixth none.
      std::vector<int64_t> sizes;
      for (const LlcResult::ChainGroup& group : divided->groups) {
        sizes.push_back(group.chains);
        EXPECT_EQ(group.device, device().str());
      }
      EXPECT_EQ(sizes, ChainGroupSizes(5, static_cast<int64_t>(devices)));
      EXPECT_EQ(whole.groups.size(), 1u);
      for (size_t i = 0; i < copies.size(); ++i) {
        EXPECT_EQ(copies[i]->forwards > 0, i < std::min<size_t>(devices, 5))
            << "objective " << i;
      }
      ASSERT_EQ(divided->chains.size(), whole.chains.size());
      EXPECT_NEAR(divided->llc_mean, whole.llc_mean,
                  1e-12 * std::abs(whole.llc_mean));
      for (size_t c = 0; c < whole.chains.size(); ++c) {
        SCOPED_TRACE(c);
        const LlcChain& a = whole.chains[c];
        const LlcChain& b = divided->chains[c];
        ASSERT_EQ(b.loss_trace.size(), a.loss_trace.size());
        for (size_t t = 0; t < a.loss_trace.size(); ++t) {
          EXPECT_NEAR(b.loss_trace[t], a.loss_trace[t],
                      1e-12 * std::abs(a.loss_trace[t]) + 1e-300);
        }
        ASSERT_EQ(b.full_loss_trace.size(), a.full_loss_trace.size());
        for (size_t t = 0; t < a.full_loss_trace.size(); ++t) {
          EXPECT_NEAR(b.full_loss_trace[t], a.full_loss_trace[t],
                      1e-12 * std::abs(a.full_loss_trace[t]) + 1e-300);
        }
        ASSERT_EQ(b.distance_trace.size(), a.distance_trace.size());
        for (size_t t = 0; t < a.distance_trace.size(); ++t) {
          EXPECT_NEAR(b.distance_trace[t], a.distance_trace[t],
                      1e-12 * std::abs(a.distance_trace[t]) + 1e-300);
        }
        EXPECT_NEAR(b.llc, a.llc, 1e-12 * std::abs(a.llc));
        EXPECT_EQ(b.acceptance_rate, a.acceptance_rate);
      }
    }
  }
  // The chains differ from one another (each its own streams).
  LlcOptions o = FullBatch(LlcSampler::kSgld, 1e-3, 10, 1);
  o.chains = 2;
  o.draws = 10;
  o.batch_size = 8;
  const LlcResult two = MeasureLlc(objectives[0], o, {}).value();
  EXPECT_NE(two.chains[0].loss_trace, two.chains[1].loss_trace);
}

TEST_P(LlcTest, DividedChainsFailAsTheUndividedOnes) {
  std::vector<std::unique_ptr<LinearModel>> copies;
  std::vector<Objective> objectives;
  for (int i = 0; i < 2; ++i) {
    copies.push_back(std::make_unique<LinearModel>(kInputs, kOutputs, 3));
    copies.back()->To(device(), torch::kFloat64);
    objectives.push_back(Objective::Create(copies.back().get(), inputs_,
                                           targets_, LossFunction::kMse, 16)
                             .value());
  }
  const std::vector<double> h = HessianEigenvalues();
  LlcOptions o = FullBatch(LlcSampler::kSgld, 0, 30, 0);
  o.step_size = 8 / (30 * h.back());
  o.chains = 4;
  o.draws = 200;
  const std::vector<Objective*> parts = {&objectives[0], &objectives[1]};
  for (DivergencePolicy policy :
       {DivergencePolicy::kFail, DivergencePolicy::kDropChain}) {
    o.on_divergence = policy;
    const absl::Status one = MeasureLlc(objectives[0], o, {}).status();
    const absl::Status two = MeasureLlc(parts, o, {}).status();
    EXPECT_EQ(one.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ(two, one);
  }
  // Objectives over other shards are refused.
  LinearModel other(kInputs, kOutputs, 3);
  other.To(device(), torch::kFloat64);
  Objective shorter =
      Objective::Create(&other, inputs_.narrow(0, 0, 10),
                        targets_.narrow(0, 0, 10), LossFunction::kMse, 16)
          .value();
  const absl::Status mismatch =
      MeasureLlc({&objectives[0], &shorter}, o, {}).status();
  EXPECT_EQ(mismatch.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(mismatch.message().find("share their shard"), std::string::npos)
      << mismatch;
}

TEST(ChainGroupSizesTest, AsEvenAsTheCountAllowsFirstOnesLarger) {
  EXPECT_EQ(ChainGroupSizes(5, 2), (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(ChainGroupSizes(5, 3), (std::vector<int64_t>{2, 2, 1}));
  EXPECT_EQ(ChainGroupSizes(4, 8), (std::vector<int64_t>{1, 1, 1, 1}));
  EXPECT_EQ(ChainGroupSizes(4, 1), (std::vector<int64_t>{4}));
  EXPECT_EQ(ChainGroupSizes(4, 0), (std::vector<int64_t>{4}));
}

// The restricted LLC: a block the loss does not depend on has lambda_hat 0
// exactly (every draw's loss is L(w*)), and a block of every parameter the
// loss depends on gives the unrestricted chains.
TEST_P(LlcTest, ABlockRestrictsTheChainsToItsParameters) {
  LinearWithUnusedParameter model(kInputs, kOutputs, 3);
  model.To(device(), torch::kFloat64);
  const torch::Tensor targets = model.Forward(inputs_).detach();
  LlcOptions o = FullBatch(LlcSampler::kSgld, 1e-3, 10, 1);
  o.chains = 2;
  o.draws = 20;
  ParameterBlock unused;
  unused.names = {"p1"};
  Objective restricted =
      Objective::Create(&model, inputs_, targets, LossFunction::kMse, 16,
                        unused)
          .value();
  const LlcResult none = MeasureLlc(restricted, o, {}).value();
  ASSERT_EQ(none.chains.size(), 2u);
  for (const LlcChain& chain : none.chains) {
    EXPECT_EQ(chain.llc, 0);
    EXPECT_GT(chain.distance_trace.back(), 0) << "the block's chains moved";
  }
  ParameterBlock used;
  used.names = {"p0"};
  Objective weights = Objective::Create(&model, inputs_, targets,
                                        LossFunction::kMse, 16, used)
                          .value();
  const LlcResult some = MeasureLlc(weights, o, {}).value();
  Objective whole = MakeObjective();
  const LlcResult all = MeasureLlc(whole, o, {}).value();
  EXPECT_GT(some.llc_mean, 0);
  EXPECT_NEAR(some.llc_mean, all.llc_mean, 1e-9 * all.llc_mean)
      << "model_ and this model share p0 and the data";
}

// The grid end to end: every cell measured, a step size past the stability
// edge a cell of diverged chains rather than an error, and a recommendation
// among the cells that passed.
TEST_P(LlcTest, CalibrationMeasuresEveryCellAndRecommendsAStableOne) {
  Objective objective = MakeObjective();
  const double stiffest = HessianEigenvalues().back();
  LlcCalibrationOptions o;
  o.base = FullBatch(LlcSampler::kSgld, 0, 0, 0);
  o.base.n_beta = 30;
  o.base.chains = 8;
  // Mixing takes 1 / (epsilon a) steps, a = n_beta h + gamma: 40 to 160
  // for the softest mode at these step sizes, well within the burn-in.
  o.base.draws = 400;
  o.base.burn_in = 400;
  o.base.batch_size = kSamples;
  const double unstable = 8 / (30 * stiffest);
  o.step_sizes = {1e-3, 2e-3, 4e-3, unstable};
  o.localizations = {1, 10};
  std::vector<double> fractions;
  Progress progress;
  progress.report = [&fractions](double fraction, const std::string&) {
    fractions.push_back(fraction);
  };
  const absl::StatusOr<LlcCalibrationResult> result =
      MeasureLlcCalibration(objective, o, progress);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->cells.size(), 8u);
  for (const LlcCalibrationCell& cell : result->cells) {
    EXPECT_EQ(cell.n_beta, 30);
    if (cell.step_size == unstable) {
      EXPECT_NE(cell.rejection.find("diverged"), std::string::npos)
          << cell.rejection;
    } else {
      for (const LlcChain& chain : cell.result.chains) {
        EXPECT_TRUE(chain.loss_trace.empty()) << "cells keep no traces";
      }
    }
  }
  ASSERT_GE(result->recommended, 0) << result->reason;
  const LlcCalibrationCell& chosen = result->cells[result->recommended];
  EXPECT_LT(chosen.step_size, unstable);
  EXPECT_TRUE(chosen.rejection.empty());
  EXPECT_FALSE(result->reason.empty());
  ASSERT_FALSE(fractions.empty());
  EXPECT_TRUE(std::is_sorted(fractions.begin(), fractions.end()));
  EXPECT_LE(fractions.back(), 1.0);
  EXPECT_GT(fractions.back(), 0.99);
}

TEST_P(LlcTest, CalibrationRefusesAnEmptyOrNonPositiveAxis) {
  Objective objective = MakeObjective();
  LlcCalibrationOptions o;
  o.step_sizes = {};
  EXPECT_EQ(MeasureLlcCalibration(objective, o, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  o.step_sizes = {1e-3, -1};
  const absl::Status negative = MeasureLlcCalibration(objective, o, {}).status();
  EXPECT_EQ(negative.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(negative.message().find("step_sizes"), std::string::npos);
}

CURVD_INSTANTIATE_DEVICE_TEST(LlcTest);

}  // namespace
}  // namespace curvd::core
