#include "core/api/engine.h"

#include <ATen/Context.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "core/api/out_of_memory.h"
#include "core/api/safetensors.h"
#include "core/data/model.h"
#include "core/data/shard.h"
#include "core/engine/oom_retry.h"
#include "core/engine/torch_status.h"
#include "core/estimators/hutchinson.h"
#include "core/objective/objective.h"
#include "tests/core/engine_sources.h"
#include "tests/core/toy_models.h"

namespace curvd::core {
namespace {

using ::curvd::core::testing::Of;

using ::curvd::core::testing::EngineDeviceTest;
using ::curvd::core::testing::ExplicitMatrix;
using ::curvd::core::testing::GaussianRegression;
using ::testing::HasSubstr;

constexpr int64_t kSamples = testing::kRegressionSamples;
constexpr int64_t kParameters = 4 * 16 + 16 + 16 * 2 + 2;

// A zoo MLP 4-16-2 without a state dict: its weights come from torch's global
// generator, which the tests seed so that engine and reference build the same.
ModelSource ZooModel(const std::string& cache_key = "zoo:mlp-4-16-2-tanh") {
  return testing::ZooMlp({4, 16, 2}, cache_key);
}

// The tests' Lanczos and Hutchinson options.
void Configure(SharpnessMethod* m) {
  m->options.top_k = 2;
  m->options.bottom_k = 1;
  m->options.max_iterations = kParameters;
  m->options.relative_tolerance = 1e-10;
}
void Configure(HessianTraceMethod* m) {
  m->options.min_probes = 100;
  m->options.max_probes = 100;
  m->options.target_relative_error = 0;
}

// An MSE request of the one method M at `precision`.
template <typename M>
MeasurementRequest Request(Precision precision) {
  MeasurementRequest request;
  request.objective.loss = LossFunction::kMse;
  request.objective.precision = precision;
  Configure(&request.Add<M>());
  return request;
}

LanczosOptions& LanczosOf(MeasurementRequest& request) {
  return request.Find<SharpnessMethod>()->options;
}
TraceOptions& TraceOf(MeasurementRequest& request) {
  return request.Find<HessianTraceMethod>()->options;
}

// The loss and the explicit Hessian's spectrum of the model that torch seed
// `seed` builds, in float64 on the CPU, independently of the engine.
struct Reference {
  double loss;
  torch::Tensor eigenvalues;  // ascending
};

Reference ReferenceFor(uint64_t seed) {
  torch::manual_seed(seed);
  std::unique_ptr<Model> model = LoadModel(ZooModel()).value();
  model->To(torch::kCPU, torch::kFloat64);
  Shard shard = LoadShard(GaussianRegression()).value();
  Objective objective =
      Objective::Create(model.get(), shard.inputs.to(torch::kFloat64),
                        shard.targets.to(torch::kFloat64), LossFunction::kMse,
                        0)
          .value();
  const torch::Tensor hessian = ExplicitMatrix(
      [&objective](const torch::Tensor& v) { return objective.Hvp(v); },
      objective.num_parameters(), objective.vector_options());
  return {objective.Loss().value(), torch::linalg_eigvalsh(hessian)};
}

TEST(EngineCreateTest, AcceptsCpuAndRejectsUnavailableDevices) {
  auto cpu = Engine::Create("cpu");
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  EXPECT_EQ((*cpu)->device(), "cpu");
  if (Engine::CudaDeviceCount() < 8) {
    const absl::Status missing = Engine::Create("cuda:7").status();
    EXPECT_EQ(missing.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(missing.message(), HasSubstr("cuda:7"));
  }
  for (const char* bad : {"tpu:0", "cuda:x", "cuda:-1", ""}) {
    EXPECT_EQ(Engine::Create(bad).status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

TEST(EngineCountParametersTest, CountsAnArchivesBlockWithoutItsWeights) {
  ModelSource source;
  source.kind = ModelSource::Kind::kTorchScript;
  source.archive_path = std::string(CURVD_CORE_FIXTURE_DIR) + "/zoo_mlp.pt";
  if (!std::ifstream(source.archive_path)) {
    GTEST_SKIP() << "no Python TorchScript fixture at " << source.archive_path;
  }
  source.state_dict_path = "/nonexistent/weights.safetensors";  // not read
  // 5-8-3: fc0 5 * 8 + 8, fc1 8 * 3 + 3.
  EXPECT_EQ(Engine::CountParameters(source, ParameterBlock()).value(), 75);
  ParameterBlock block;
  block.names = {"fc1.bias"};
  block.prefixes = {"fc0."};
  EXPECT_EQ(Engine::CountParameters(source, block).value(), 3 + 48);

  source.archive_path = "/nonexistent/archive.pt";
  EXPECT_EQ(Engine::CountParameters(source, ParameterBlock()).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(TorchStatusTest, ConvertsExceptionsByKind) {
  const absl::Status oom =
      StatusFromException(std::make_exception_ptr(c10::OutOfMemoryError(
          {__func__, __FILE__, __LINE__}, "CUDA out of memory.")));
  EXPECT_EQ(oom.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(IsOutOfMemory(oom));
  const absl::Status shape = StatusFromException(std::make_exception_ptr(
      c10::Error({__func__, __FILE__, __LINE__},
                 "mat1 and mat2 shapes cannot be multiplied")));
  EXPECT_EQ(shape.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(shape.message(), HasSubstr("shapes cannot be multiplied"));
  EXPECT_FALSE(IsOutOfMemory(shape));
  // What a real CUDA device said when full at a measurement's first matmul.
  const absl::Status cublas = StatusFromException(std::make_exception_ptr(
      c10::Error({__func__, __FILE__, __LINE__},
                 "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling "
                 "`cublasCreate(handle)`")));
  EXPECT_TRUE(IsOutOfMemory(cublas)) << cublas;
  EXPECT_EQ(
      StatusFromException(std::make_exception_ptr(std::runtime_error("bug")))
          .code(),
      absl::StatusCode::kInternal);
  EXPECT_FALSE(IsOutOfMemory(absl::ResourceExhaustedError("queue full")));
}

TEST(OomRetryTest, HalvesTheMicroBatchUntilItFits) {
  std::vector<int64_t> tried;
  auto fits_at_most_12 =
      [&tried](int64_t batch) -> absl::StatusOr<MeasurementResult> {
    tried.push_back(batch);
    if (batch > 12) return absl::ResourceExhaustedError("out of memory: test");
    MeasurementResult result;
    result.micro_batch_size = batch;
    return result;
  };
  auto result = RetryWithSmallerMicroBatches(100, fits_at_most_12, "cuda:0");
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->micro_batch_size, 12);
  EXPECT_EQ(tried, (std::vector<int64_t>{100, 50, 25, 12}));

  tried.clear();
  auto never_fits =
      [&tried](int64_t batch) -> absl::StatusOr<MeasurementResult> {
    tried.push_back(batch);
    return absl::ResourceExhaustedError("out of memory: test");
  };
  const absl::Status exhausted =
      RetryWithSmallerMicroBatches(5, never_fits, "cuda:0").status();
  EXPECT_EQ(exhausted.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(exhausted.message(), HasSubstr("micro_batch_size 1"));
  EXPECT_TRUE(IsDeviceOutOfMemory(exhausted));
  EXPECT_FALSE(IsDeviceOutOfMemory(
      absl::ResourceExhaustedError("cuda:0 ran out of memory: a budget")));
  EXPECT_EQ(tried, (std::vector<int64_t>{5, 2, 1}));

  // Other errors are not retried.
  int calls = 0;
  auto invalid = [&calls](int64_t) -> absl::StatusOr<MeasurementResult> {
    ++calls;
    return absl::InvalidArgumentError("bad shard");
  };
  EXPECT_EQ(RetryWithSmallerMicroBatches(64, invalid, "cpu").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(calls, 1);
}

TEST(OomRetryTest, DropsRetainedGraphsBeforeHalving) {
  std::vector<std::pair<int64_t, bool>> tried;
  auto fits_at_most_30 = [&tried](int64_t batch, bool retain)
      -> absl::StatusOr<MeasurementResult> {
    tried.emplace_back(batch, retain);
    if (retain || batch > 30) {
      return absl::ResourceExhaustedError("out of memory: test");
    }
    MeasurementResult result;
    result.micro_batch_size = batch;
    return result;
  };
  auto result = RetryOnOutOfMemory(100, true, fits_at_most_30, "cuda:0");
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->micro_batch_size, 25);
  EXPECT_EQ(tried, (std::vector<std::pair<int64_t, bool>>{
                       {100, true}, {100, false}, {50, false}, {25, false}}));

  tried.clear();
  ASSERT_TRUE(RetryOnOutOfMemory(20, false, fits_at_most_30, "cuda:0").ok());
  EXPECT_EQ(tried, (std::vector<std::pair<int64_t, bool>>{{20, false}}));

  tried.clear();
  auto never_fits = [&tried](int64_t batch, bool retain)
      -> absl::StatusOr<MeasurementResult> {
    tried.emplace_back(batch, retain);
    return absl::ResourceExhaustedError("out of memory: test");
  };
  const absl::Status exhausted =
      RetryOnOutOfMemory(2, true, never_fits, "cuda:0").status();
  EXPECT_EQ(exhausted.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_FALSE(IsOutOfMemory(exhausted));
  EXPECT_EQ(tried, (std::vector<std::pair<int64_t, bool>>{
                       {2, true}, {2, false}, {1, false}}));
}

class EngineTest : public EngineDeviceTest {
 protected:
  using EngineDeviceTest::Measure;
  // Measures ZooModel() with weights from torch seed `seed`.
  absl::StatusOr<MeasurementResult> Measure(
      const MeasurementRequest& request, uint64_t seed,
      const Progress& progress = Progress()) {
    return Measure(request, ZooModel(), seed, progress);
  }
};

TEST_P(EngineTest, SharpnessMatchesExplicitHessian) {
  const Reference reference = ReferenceFor(1);
  auto result =
      Measure(Request<SharpnessMethod>(Precision::kFloat64), 1);
  ASSERT_TRUE(result.ok()) << result.status();
  const double top = reference.eigenvalues[-1].item<double>();
  const SharpnessResult& sharpness = Of<SharpnessMethod>(result);
  EXPECT_TRUE(sharpness.converged);
  ASSERT_EQ(sharpness.top.size(), 2);
  ASSERT_EQ(sharpness.bottom.size(), 1);
  EXPECT_NEAR(sharpness.top[0].value, top, 1e-8 * top);
  EXPECT_NEAR(sharpness.top[1].value, reference.eigenvalues[-2].item<double>(),
              1e-8 * top);
  EXPECT_NEAR(sharpness.bottom[0].value,
              reference.eigenvalues[0].item<double>(), 1e-8 * top);

  EXPECT_EQ(result->methods.size(), 1u);
  EXPECT_NEAR(result->loss, reference.loss, 1e-12 * reference.loss);
  EXPECT_EQ(result->hvps, sharpness.iterations);
  EXPECT_EQ(result->num_samples, kSamples);
  EXPECT_EQ(result->num_parameters, kParameters);
  EXPECT_EQ(result->micro_batch_size, kSamples);
  EXPECT_EQ(result->device, engine_->device());
  EXPECT_EQ(result->precision, Precision::kFloat64);
  EXPECT_FALSE(result->train_mode);
  EXPECT_GT(result->compute_seconds, 0);
}

TEST_P(EngineTest, TraceWithinFourStandardErrors) {
  const Reference reference = ReferenceFor(2);
  auto result =
      Measure(Request<HessianTraceMethod>(Precision::kFloat64), 2);
  ASSERT_TRUE(result.ok()) << result.status();
  const double exact = reference.eigenvalues.sum().item<double>();
  EXPECT_LE(std::abs(Of<HessianTraceMethod>(result).trace - exact),
            4 * Of<HessianTraceMethod>(result).standard_error);
  EXPECT_EQ(Of<HessianTraceMethod>(result).probes, 100);
  EXPECT_EQ(Of<HessianTraceMethod>(result).stop_reason, "max_probes");
  EXPECT_EQ(result->hvps, 100);
}

TEST_P(EngineTest, Float32AndMicroBatchesMatchFloat64Reference) {
  const Reference reference = ReferenceFor(3);
  const double top = reference.eigenvalues[-1].item<double>();
  MeasurementRequest request =
      Request<SharpnessMethod>(Precision::kFloat32);
  LanczosOf(request).relative_tolerance = 1e-5;
  LanczosOf(request).bottom_k = 0;
  request.objective.micro_batch_size = 10;
  auto result = Measure(request, 3);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->micro_batch_size, 10);
  EXPECT_EQ(result->precision, Precision::kFloat32);
  // float32 HVPs carry relative errors near 1e-6; the top eigenvalue to 1e-4.
  EXPECT_NEAR(Of<SharpnessMethod>(result).top[0].value, top, 1e-4 * top);
}

TEST_P(EngineTest, ReusesTheCachedModelAndShard) {
  const MeasurementRequest request =
      Request<SharpnessMethod>(Precision::kFloat64);
  auto first = Measure(request, 4);
  ASSERT_TRUE(first.ok()) << first.status();
  // Without reseeding, a reloaded zoo model would get new random weights: equal
  // results mean the engine kept the one it had.
  auto again =
      engine_->Measure(ZooModel(), GaussianRegression(), request, Progress());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(Of<SharpnessMethod>(again).top[0].value, Of<SharpnessMethod>(first).top[0].value);
  auto other = engine_->Measure(ZooModel("zoo:other-key"), GaussianRegression(),
                                request, Progress());
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_NE(Of<SharpnessMethod>(other).top[0].value, Of<SharpnessMethod>(first).top[0].value);
}

// A state dict rewritten in place under the same name and cache key (a trainer
// overwriting "latest.safetensors") must be loaded again, not served from the
// engine's copy of the old weights.
TEST_P(EngineTest, ReloadsAStateDictRewrittenInPlace) {
  torch::manual_seed(6);
  std::unique_ptr<Model> reference = LoadModel(ZooModel()).value();
  const std::string path =
      ::testing::TempDir() + "/engine_test_rewritten_in_place.safetensors";
  auto write_scaled = [&](double scale) {
    std::vector<SafetensorsTensor> tensors;
    const std::vector<std::string> names = reference->ParameterNames();
    const std::vector<torch::Tensor> parameters = reference->Parameters();
    for (size_t i = 0; i < names.size(); ++i) {
      const torch::Tensor t =
          (parameters[i].detach() * scale).to(torch::kFloat64).contiguous();
      tensors.push_back(
          {names[i], "F64", t.sizes().vec(),
           std::string(static_cast<const char*>(t.data_ptr()),
                       t.numel() * sizeof(double))});
    }
    std::ofstream(path, std::ios::binary | std::ios::trunc)
        << SerializeSafetensors(tensors).value();
  };
  ModelSource source = ZooModel("zoo:mlp-4-16-2-tanh+file://" + path);
  source.state_dict_path = path;
  const MeasurementRequest request =
      Request<SharpnessMethod>(Precision::kFloat64);

  write_scaled(1.0);
  auto first =
      engine_->Measure(source, GaussianRegression(), request, Progress());
  ASSERT_TRUE(first.ok()) << first.status();
  write_scaled(2.0);  // the same size: only the modification time tells
  std::filesystem::last_write_time(
      path, std::filesystem::last_write_time(path) + std::chrono::seconds(5));
  auto second =
      engine_->Measure(source, GaussianRegression(), request, Progress());
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_NE(Of<SharpnessMethod>(second).top[0].value, Of<SharpnessMethod>(first).top[0].value);
  EXPECT_NE(second->loss, first->loss);
}

TEST_P(EngineTest, RejectsBadInputsAndStopsWhenCancelled) {
  const MeasurementRequest request =
      Request<SharpnessMethod>(Precision::kFloat32);
  const absl::Status misfit =
      engine_
          ->Measure(ZooModel(), GaussianRegression(/*d=*/5), request,
                    Progress())
          .status();
  EXPECT_EQ(misfit.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(misfit.message(), HasSubstr("[64, 5]"));

  MeasurementRequest no_eigenvalues = request;
  LanczosOf(no_eigenvalues).top_k = 0;
  EXPECT_EQ(Measure(no_eigenvalues, 5).status().code(),
            absl::StatusCode::kInvalidArgument);

  MeasurementRequest class_targets = request;
  class_targets.objective.loss = LossFunction::kCrossEntropy;
  EXPECT_EQ(Measure(class_targets, 5).status().code(),
            absl::StatusCode::kInvalidArgument);

  Progress progress;
  progress.cancelled = [] { return true; };
  EXPECT_EQ(Measure(request, 5, progress).status().code(),
            absl::StatusCode::kCancelled);
  // The engine keeps working after each failure.
  EXPECT_TRUE(Measure(request, 5).ok());
}

// The engine's trace, from blocks of probes through graphs it keeps, is the
// estimate of one HVP per probe on the reference objective.
TEST_P(EngineTest, TraceEqualsSequentialHutchinson) {
  torch::manual_seed(7);
  std::unique_ptr<Model> model = LoadModel(ZooModel()).value();
  model->To(torch::kCPU, torch::kFloat64);
  Shard shard = LoadShard(GaussianRegression()).value();
  Objective reference =
      Objective::Create(model.get(), shard.inputs.to(torch::kFloat64),
                        shard.targets.to(torch::kFloat64), LossFunction::kMse,
                        0)
          .value();
  MeasurementRequest request =
      Request<HessianTraceMethod>(Precision::kFloat64);
  TraceOf(request).min_probes = 10;
  TraceOf(request).max_probes = 300;
  TraceOf(request).target_relative_error = 0.05;
  TraceOf(request).seed = 8;
  auto sequential = Hutchinson(
      [&reference](const torch::Tensor& v) { return reference.Hvp(v); },
      reference.num_parameters(), reference.vector_options(), TraceOf(request),
      Progress());
  ASSERT_TRUE(sequential.ok()) << sequential.status();
  ASSERT_EQ(sequential->stop_reason, "target_relative_error");

  for (int64_t micro_batch : {0, 10}) {
    SCOPED_TRACE(micro_batch);
    request.objective.micro_batch_size = micro_batch;
    auto result = Measure(request, 7);
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(Of<HessianTraceMethod>(result).probes, sequential->probes);
    EXPECT_EQ(Of<HessianTraceMethod>(result).stop_reason, sequential->stop_reason);
    EXPECT_NEAR(Of<HessianTraceMethod>(result).trace, sequential->trace,
                1e-10 * std::abs(sequential->trace));
    EXPECT_NEAR(Of<HessianTraceMethod>(result).standard_error, sequential->standard_error,
                1e-8 * sequential->standard_error);
    // Products of a block past the stopping point count as spent.
    EXPECT_GE(result->hvps, Of<HessianTraceMethod>(result).probes);
    EXPECT_EQ(result->graphs_retained, micro_batch == 0 || on_cuda());
    // On CUDA the retained products replay one device graph each.
    EXPECT_THAT(result->hvp_graph,
                HasSubstr(on_cuda() ? "hvp_graph: replayed ("
                                    : "hvp_graph: eager (no device graphs on cpu)"));
  }
}

// TF32 is used only when asked for, only on CUDA, only for that measurement;
// the result says what was used.
TEST_P(EngineTest, Tf32IsRecordedAndSwitchedOffAfterwards) {
  const Reference reference = ReferenceFor(9);
  const double top = reference.eigenvalues[-1].item<double>();
  MeasurementRequest request =
      Request<SharpnessMethod>(Precision::kTf32);
  LanczosOf(request).relative_tolerance = 1e-4;
  LanczosOf(request).bottom_k = 0;
  auto result = Measure(request, 9);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->precision,
            on_cuda() ? Precision::kTf32 : Precision::kFloat32);
  // TF32 keeps 10 mantissa bits of matmul inputs: about 1e-3 relative.
  EXPECT_NEAR(Of<SharpnessMethod>(result).top[0].value, top, 1e-2 * top);
  EXPECT_FALSE(at::globalContext().allowTF32CuBLAS());
  EXPECT_FALSE(at::globalContext().allowTF32CuDNN());

  auto float32 =
      Measure(Request<SharpnessMethod>(Precision::kFloat32), 9);
  ASSERT_TRUE(float32.ok()) << float32.status();
  EXPECT_EQ(float32->precision, Precision::kFloat32);
}

// With a budget smaller than one model, nothing outlives its measurement: a
// zoo model without a state dict is rebuilt from torch's (unseeded) generator
// each time.
TEST_P(EngineTest, CacheBudgetBoundsWhatStaysOnTheDevice) {
  EngineOptions options;
  options.cache_budget_bytes = 1;
  auto small = Engine::CreateWithOptions(on_cuda() ? "cuda:0" : "cpu", options);
  ASSERT_TRUE(small.ok()) << small.status();
  const MeasurementRequest request =
      Request<SharpnessMethod>(Precision::kFloat64);
  torch::manual_seed(10);
  auto first =
      (*small)->Measure(ZooModel(), GaussianRegression(), request, Progress());
  ASSERT_TRUE(first.ok()) << first.status();
  auto second =
      (*small)->Measure(ZooModel(), GaussianRegression(), request, Progress());
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_NE(Of<SharpnessMethod>(second).top[0].value, Of<SharpnessMethod>(first).top[0].value);

  options.cache_budget_bytes = -1;
  EXPECT_EQ(Engine::CreateWithOptions("cpu", options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// The host budget of one measurement: the model (114 float64 parameters, 912
// bytes), the generated shard (2080 bytes, as generated in float32) and the
// working set of one method (4 x 912 bytes), refused at the first that does
// not fit, before it is allocated.
TEST_P(EngineTest, MeasurementOverItsHostBudgetIsResourceExhausted) {
  const MeasurementRequest request =
      Request<SharpnessMethod>(Precision::kFloat64);
  const auto measure_within = [&](int64_t bytes) {
    EngineOptions options;
    options.measurement_host_bytes = bytes;
    auto engine =
        Engine::CreateWithOptions(on_cuda() ? "cuda:0" : "cpu", options);
    EXPECT_TRUE(engine.ok()) << engine.status();
    return (*engine)->Measure(ZooModel(), GaussianRegression(), request,
                              Progress());
  };
  auto shard = measure_within(1000);
  EXPECT_EQ(shard.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(shard.status().message()),
              HasSubstr("the generated shard of n=64, d=4, outputs=2 needs "
                        "2080 bytes of host memory, 1992 bytes more than is "
                        "left (88 bytes) of the 1000-byte budget"));
  auto working_set = measure_within(3000);
  EXPECT_EQ(working_set.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(working_set.status().message()),
              HasSubstr("the working set of 1 method(s) (4 parameter-sized "
                        "vectors each) needs 3648 bytes of host memory, 3640 "
                        "bytes more than is left (8 bytes)"));
  EXPECT_TRUE(measure_within(6640).ok());
  EngineOptions negative;
  negative.measurement_host_bytes = -1;
  EXPECT_EQ(Engine::CreateWithOptions("cpu", negative).status().code(),
            absl::StatusCode::kInvalidArgument);
}

CURVD_INSTANTIATE_DEVICE_TEST(EngineTest);

}  // namespace
}  // namespace curvd::core
