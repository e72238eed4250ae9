// Engine::MeasureSplit against Engine::Measure: every kind that splits, in
// one plan, equal to rounding; on the CPU three engines of one device, on
// CUDA the GPU with the CPU beside it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/api/engine.h"
#include "tests/core/engine_sources.h"

namespace curvd::core {
namespace {

using ::curvd::core::testing::EngineDeviceTest;
using ::curvd::core::testing::GaussianRegression;
using ::curvd::core::testing::kRegressionSamples;
using ::curvd::core::testing::Of;
using ::curvd::core::testing::ZooMlp;
using ::testing::HasSubstr;

// A plan of every kind that splits, in float64.
MeasurementRequest EverySplitKind() {
  MeasurementRequest request;
  request.objective.precision = Precision::kFloat64;
  request.objective.loss = LossFunction::kMse;
  request.Add<SharpnessMethod>().options.top_k = 2;
  SlqOptions& slq = request.Add<SpectralDensityMethod>().options;
  slq.runs = 2;
  slq.steps = 20;
  request.Add<HessianTraceMethod>().options.max_probes = 20;
  request.Add<HutchppMethod>().options.max_hvps = 30;
  request.Add<AdaptiveTraceMethod>();
  request.Add<TraceCubedMethod>().options.max_probes = 10;
  LossExpansionOptions& expansion = request.Add<LossExpansionMethod>().options;
  expansion.rho = 0.1;
  expansion.h0 = 1;
  expansion.ess = 8;
  expansion.num_steps = 10;
  request.Add<ExactHessianMethod>();
  request.Add<PowerIterationMethod>();
  request.Add<LossSliceMethod>().options.points = 5;
  return request;
}

void ExpectNear(double actual, double expected, double scale) {
  EXPECT_NEAR(actual, expected, 1e-9 * std::max(std::abs(scale), 1e-300));
}

class EngineSplitTest : public EngineDeviceTest {
 protected:
  void SetUp() override {
    EngineDeviceTest::SetUp();
    if (IsSkipped()) return;
    // The helpers: the CPU, then this device again.
    for (const std::string device : {"cpu", on_cuda() ? "cuda:0" : "cpu"}) {
      auto helper = Engine::Create(device);
      ASSERT_TRUE(helper.ok()) << helper.status();
      helpers_.push_back(*std::move(helper));
    }
  }
  std::vector<Engine*> helpers() const {
    std::vector<Engine*> pointers;
    for (const auto& h : helpers_) pointers.push_back(h.get());
    return pointers;
  }

  std::vector<std::unique_ptr<Engine>> helpers_;
};

TEST_P(EngineSplitTest, EveryKindThatSplitsEqualsTheUnsplitMeasurement) {
  const ModelSource model = ZooMlp({4, 16, 2}, "zoo:split");
  const MeasurementRequest request = EverySplitKind();
  torch::manual_seed(5);
  auto whole =
      engine_->Measure(model, GaussianRegression(), request, Progress());
  ASSERT_TRUE(whole.ok()) << whole.status();
  // The cached copy of the model (same weights) measured again, split.
  auto split = engine_->MeasureSplit(helpers(), model, GaussianRegression(),
                                     request, Progress());
  ASSERT_TRUE(split.ok()) << split.status();

  // 64 samples over three devices: micro-batches of 22, the last of 20.
  EXPECT_EQ(split->micro_batch_size, 22);
  EXPECT_EQ(split->num_samples, kRegressionSamples);
  EXPECT_EQ(split->split,
            absl::StrCat("split: 3 parts: ", engine_->device(),
                         " micro-batches 0-0, cpu micro-batches 1-1, ",
                         helpers_[1]->device(), " micro-batches 2-2"));
  EXPECT_EQ(whole->split, "");
  EXPECT_EQ(split->device, engine_->device());
  EXPECT_EQ(split->hvps, whole->hvps);

  const double top = Of<SharpnessMethod>(whole).top[0].value;
  ExpectNear(split->loss, whole->loss, whole->loss);
  for (size_t i = 0; i < 2; ++i) {
    ExpectNear(Of<SharpnessMethod>(split).top[i].value,
               Of<SharpnessMethod>(whole).top[i].value, top);
  }
  ExpectNear(Of<SpectralDensityMethod>(split).estimates[0].trace,
             Of<SpectralDensityMethod>(whole).estimates[0].trace, top);
  ExpectNear(Of<HessianTraceMethod>(split).trace,
             Of<HessianTraceMethod>(whole).trace, top);
  ExpectNear(Of<HutchppMethod>(split).trace, Of<HutchppMethod>(whole).trace,
             top);
  ExpectNear(Of<AdaptiveTraceMethod>(split).trace,
             Of<AdaptiveTraceMethod>(whole).trace, top);
  ExpectNear(Of<TraceCubedMethod>(split).trace,
             Of<TraceCubedMethod>(whole).trace, top * top * top);
  ExpectNear(Of<LossExpansionMethod>(split).total,
             Of<LossExpansionMethod>(whole).total,
             Of<LossExpansionMethod>(whole).first_order_term);
  const std::vector<double>& exact = Of<ExactHessianMethod>(whole).eigenvalues;
  ASSERT_EQ(Of<ExactHessianMethod>(split).eigenvalues.size(), exact.size());
  for (size_t i = 0; i < exact.size(); ++i) {
    ExpectNear(Of<ExactHessianMethod>(split).eigenvalues[i], exact[i], top);
  }
  ExpectNear(Of<PowerIterationMethod>(split).pairs[0].value,
             Of<PowerIterationMethod>(whole).pairs[0].value, top);
  const std::vector<double>& slice = Of<LossSliceMethod>(whole).loss;
  ASSERT_EQ(Of<LossSliceMethod>(split).loss.size(), slice.size());
  for (size_t i = 0; i < slice.size(); ++i) {
    ExpectNear(Of<LossSliceMethod>(split).loss[i], slice[i], slice[i]);
  }
}

TEST_P(EngineSplitTest, PlansNoMoreHelpersThanTheWorkUses) {
  // 64 samples x 86 parameters, far below kMinSplitWork.
  const ModelSource model = ZooMlp({4, 12, 2}, "zoo:split-small");
  MeasurementRequest request;
  request.objective.loss = LossFunction::kMse;
  request.Add<SharpnessMethod>();
  torch::manual_seed(6);
  auto automatic = engine_->PlanSplit(model, GaussianRegression(), request,
                                      SplitRule::kIfLargeEnough, 2);
  ASSERT_TRUE(automatic.ok()) << automatic.status();
  EXPECT_EQ(automatic->helpers, 0);
  EXPECT_EQ(automatic->note,
            "not split: 64 samples x 86 parameters = 5504 < 2^30");
  // Forced: one micro-batch per device when the request leaves it to the
  // engine, else no more parts than micro-batches.
  auto forced = engine_->PlanSplit(model, GaussianRegression(), request,
                                   SplitRule::kAlways, 2);
  ASSERT_TRUE(forced.ok()) << forced.status();
  EXPECT_EQ(forced->helpers, 2);
  request.objective.micro_batch_size = 40;  // two micro-batches
  EXPECT_EQ(engine_
                ->PlanSplit(model, GaussianRegression(), request,
                            SplitRule::kAlways, 2)
                ->helpers,
            1);
  request.objective.micro_batch_size = 64;
  auto one = engine_->PlanSplit(model, GaussianRegression(), request,
                                SplitRule::kAlways, 2);
  EXPECT_EQ(one->helpers, 0);
  EXPECT_EQ(one->note, "not split: one micro-batch");
  // Kinds that do not split plan none, without an error.
  request.Add<GopMethod>();
  EXPECT_EQ(engine_
                ->PlanSplit(model, GaussianRegression(), request,
                            SplitRule::kAlways, 2)
                ->helpers,
            0);
}

TEST_P(EngineSplitTest, PerSampleKindsAreRefused) {
  const ModelSource model = ZooMlp({4, 8, 2}, "zoo:split-refused");
  for (int kind = 0; kind < 3; ++kind) {
    MeasurementRequest request;
    request.objective.loss = LossFunction::kMse;
    request.Add<HessianTraceMethod>();
    if (kind == 0) request.Add<GopMethod>();
    if (kind == 1) request.Add<LlcMethod>();
    if (kind == 2) request.Add<LlcCalibrationMethod>();
    auto split = engine_->MeasureSplit(helpers(), model, GaussianRegression(),
                                       request, Progress());
    ASSERT_FALSE(split.ok());
    EXPECT_EQ(split.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(split.status().message(), HasSubstr("is not split"));
  }
}

// A request of the llc kind alone divides its chains, each device holding
// the whole shard: the same chains as on one device (each chain's streams
// are its own), devices of one kind (the CPU's and CUDA's generators
// differ).
TEST_P(EngineSplitTest, LlcAloneDividesItsChainsAndEqualsTheUndividedRun) {
  const ModelSource model = ZooMlp({4, 8, 2}, "zoo:split-llc");
  MeasurementRequest request;
  request.objective.precision = Precision::kFloat64;
  request.objective.loss = LossFunction::kMse;
  LlcOptions& o = request.Add<LlcMethod>().options;
  o.chains = 3;
  o.draws = 20;
  o.burn_in = 5;
  o.batch_size = 16;
  o.full_loss_every = 5;
  auto whole = engine_->Measure(model, GaussianRegression(), request,
                                Progress());
  ASSERT_TRUE(whole.ok()) << whole.status();
  Engine* same_kind = helpers_[1].get();
  auto split = engine_->MeasureSplit({same_kind}, model, GaussianRegression(),
                                     request, Progress());
  ASSERT_TRUE(split.ok()) << split.status();
  EXPECT_THAT(split->split, HasSubstr("llc chains divided among 2 devices"));
  EXPECT_THAT(split->split, HasSubstr("chains 0-1 on "));
  EXPECT_THAT(split->split, HasSubstr("chains 2-2 on "));
  EXPECT_EQ(split->micro_batch_size, whole->micro_batch_size);
  const LlcResult& a = FindMethod<LlcMethod>(whole->methods)->result;
  const LlcResult& b = FindMethod<LlcMethod>(split->methods)->result;
  ASSERT_EQ(b.chains.size(), a.chains.size());
  ExpectNear(b.llc_mean, a.llc_mean, a.llc_mean);
  for (size_t c = 0; c < a.chains.size(); ++c) {
    SCOPED_TRACE(c);
    ExpectNear(b.chains[c].llc, a.chains[c].llc, a.chains[c].llc);
    ASSERT_EQ(b.chains[c].loss_trace.size(), a.chains[c].loss_trace.size());
    for (size_t t = 0; t < a.chains[c].loss_trace.size(); ++t) {
      ExpectNear(b.chains[c].loss_trace[t], a.chains[c].loss_trace[t],
                 a.chains[c].loss_trace[t]);
    }
  }
}

TEST_P(EngineSplitTest, PlansAChainSplitByItsChainsAndTheirWork) {
  // 3 chains x 16 samples x 58 parameters, far below kMinSplitWork.
  const ModelSource model = ZooMlp({4, 8, 2}, "zoo:split-llc-plan");
  MeasurementRequest request;
  request.objective.loss = LossFunction::kMse;
  LlcOptions& o = request.Add<LlcMethod>().options;
  o.chains = 3;
  o.batch_size = 16;
  auto automatic = engine_->PlanSplit(model, GaussianRegression(), request,
                                      SplitRule::kIfLargeEnough, 4);
  ASSERT_TRUE(automatic.ok()) << automatic.status();
  EXPECT_EQ(automatic->helpers, 0);
  EXPECT_EQ(automatic->note,
            "not split: 3 chains x 16 samples x 58 parameters = 2784 < 2^30");
  // Forced: a group per device, no more groups than chains.
  auto forced = engine_->PlanSplit(model, GaussianRegression(), request,
                                   SplitRule::kAlways, 4);
  ASSERT_TRUE(forced.ok()) << forced.status();
  EXPECT_EQ(forced->helpers, 2);
  // In train mode only a forced split divides the chains.
  request.objective.train_mode = true;
  auto train = engine_->PlanSplit(model, GaussianRegression(), request,
                                  SplitRule::kIfLargeEnough, 4);
  ASSERT_TRUE(train.ok()) << train.status();
  EXPECT_EQ(train->helpers, 0);
  EXPECT_THAT(train->note, HasSubstr("not split: train mode"));
  request.objective.train_mode = false;
  o.chains = 1;
  auto one = engine_->PlanSplit(model, GaussianRegression(), request,
                                SplitRule::kAlways, 4);
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->helpers, 0);
  EXPECT_EQ(one->note, "not split: one chain");
}

CURVD_INSTANTIATE_DEVICE_TEST(EngineSplitTest);

}  // namespace
}  // namespace curvd::core
