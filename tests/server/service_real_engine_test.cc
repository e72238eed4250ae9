// The bad inputs of a measurement through the whole server on the real CPU
// engine, and every kind measured by it.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "core/api/safetensors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service_fixture.h"

namespace curvd::server {
namespace {

using ::testing::HasSubstr;

// The bad inputs of a measurement through the whole server on the real CPU
// engine: each ends as a FAILED measurement whose error says what is wrong,
// results stored before survive, and the server goes on measuring.
class RealEngineServiceTest : public ServiceTest {
 protected:
  void SetUp() override {
    real_engine_ = true;
    ServiceTest::SetUp();
  }

  // A safetensors state dict of the 3-4-1 MLP with every weight `value`, or
  // with `name` replaced by `renamed` / its shape by `reshaped` when given.
  static std::string StateDict(float value, const std::string& renamed = "",
                               const std::vector<int64_t>& reshaped = {}) {
    const std::vector<std::pair<std::string, std::vector<int64_t>>> layout = {
        {"fc0.weight", {4, 3}},
        {"fc0.bias", {4}},
        {"fc1.weight", {1, 4}},
        {"fc1.bias", {1}}};
    std::vector<core::SafetensorsTensor> tensors;
    for (size_t i = 0; i < layout.size(); ++i) {
      core::SafetensorsTensor t;
      t.name = (i == 0 && !renamed.empty()) ? renamed : layout[i].first;
      t.dtype = "F32";
      t.shape = (i == 0 && !reshaped.empty()) ? reshaped : layout[i].second;
      int64_t count = 1;
      for (int64_t d : t.shape) count *= d;
      const std::vector<float> values(count, value);
      t.data.assign(reinterpret_cast<const char*>(values.data()),
                    values.size() * sizeof(float));
      tensors.push_back(std::move(t));
    }
    return core::SerializeSafetensors(tensors).value();
  }

  static v1::MeasurementSpec MseSharpness(const std::string& shard = kShard) {
    v1::MeasurementSpec spec = SharpnessSpec(1);
    spec.set_shard_uri(shard);
    spec.set_loss(v1::LOSS_FUNCTION_MSE);
    return spec;
  }

  // Creates a measurement and waits for it to end.
  v1::Measurement Measure(const std::string& parent,
                          const v1::MeasurementSpec& spec) {
    v1::Measurement m;
    grpc::Status created = CreateMeasurement(parent, spec, &m);
    EXPECT_TRUE(created.ok()) << created.error_message();
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (absl::Now() < deadline) {
      m = Get(m.name());
      if (m.state() == v1::Measurement::SUCCEEDED ||
          m.state() == v1::Measurement::FAILED ||
          m.state() == v1::Measurement::CANCELLED) {
        return m;
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
    ADD_FAILURE() << m.name() << " did not end";
    return m;
  }

  void ExpectFailed(const v1::Measurement& m, const std::string& reason) {
    EXPECT_EQ(m.state(), v1::Measurement::FAILED) << m.DebugString();
    EXPECT_EQ(m.error_code(),
              static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT))
        << m.error_message();
    EXPECT_THAT(m.error_message(), HasSubstr(reason));
  }

  // A measurement that succeeded before the bad inputs, and checks that it is
  // still stored and that the server still measures.
  void MeasureGoodCheckpoint() {
    CreateRun("good");
    good_parent_ = AddCheckpoint("good", 1, StateDict(0.1f));
    good_ = Measure(good_parent_, MseSharpness());
    ASSERT_EQ(good_.state(), v1::Measurement::SUCCEEDED)
        << good_.error_message();
  }
  void ExpectStillServingAndStored() {
    v1::Measurement kept = Get(good_.name());
    EXPECT_EQ(kept.state(), v1::Measurement::SUCCEEDED);
    EXPECT_EQ(kept.sharpness().sharpness(), good_.sharpness().sharpness());
    v1::Measurement again = Measure(good_parent_, MseSharpness());
    EXPECT_EQ(again.state(), v1::Measurement::SUCCEEDED)
        << again.error_message();
    EXPECT_EQ(again.sharpness().sharpness(), good_.sharpness().sharpness());
  }

  std::string good_parent_;
  v1::Measurement good_;
};

TEST_F(RealEngineServiceTest, CorruptAndTruncatedTorchScriptArchivesFail) {
  MeasureGoodCheckpoint();
  // A run registered with an archive that is not one, measured at a state
  // dict (a checkpoint that is not a zip file is refused at create), and one
  // cut short: a zip local-file header and nothing after it, its own
  // checkpoint.
  const std::pair<std::string, std::string> archives[] = {
      {"corrupt", "this is not a TorchScript archive"},
      {"truncated", std::string("PK\x03\x04\x14\x00\x00\x00", 8)}};
  for (const auto& [run_id, bytes] : archives) {
    v1::CreateRunRequest request;
    request.set_run_id(run_id);
    request.mutable_run()->mutable_model()->set_archive_digest(Upload(bytes));
    grpc::ClientContext context;
    v1::Run run;
    ASSERT_TRUE(stub_->CreateRun(&context, request, &run).ok());
    const bool corrupt = run_id == "corrupt";
    const std::string parent =
        AddCheckpoint(run_id, 1, corrupt ? StateDict(0.1f) : bytes,
                      corrupt ? v1::CHECKPOINT_FORMAT_SAFETENSORS
                              : v1::CHECKPOINT_FORMAT_UNSPECIFIED);
    ExpectFailed(Measure(parent, MseSharpness()),
                 "cannot load TorchScript archive");
  }
  ExpectStillServingAndStored();
}

// The server hands its archive checker to the engine: an archive whose
// checker dies of a signal (as LibTorch's loader did on a malformed archive)
// fails its measurement, and the server goes on.
TEST_F(RealEngineServiceTest, AnArchiveTheCheckerCrashesOnFails) {
  const std::filesystem::path fixtures(CURVD_CORE_FIXTURE_DIR);
  if (!std::filesystem::exists(fixtures / "zoo_mlp.pt")) {
    GTEST_SKIP() << "no TorchScript fixture: CMake found no python3 with torch";
  }
  archive_checker_ = testing::MakeTempDir() + "/crashing_checker";
  std::ofstream(archive_checker_) << "#!/bin/sh\nkill -SEGV $$\n";
  std::filesystem::permissions(archive_checker_,
                               std::filesystem::perms::owner_all);
  max_blob_bytes_ = 1 << 20;  // the archive is about 5 KB
  RestartServer();
  MeasureGoodCheckpoint();
  std::ifstream in(fixtures / "zoo_mlp.pt", std::ios::binary);
  const std::string archive(std::istreambuf_iterator<char>(in), {});
  v1::CreateRunRequest request;
  request.set_run_id("archive");
  request.mutable_run()->mutable_model()->set_archive_digest(Upload(archive));
  grpc::ClientContext context;
  v1::Run run;
  ASSERT_TRUE(stub_->CreateRun(&context, request, &run).ok());
  v1::MeasurementSpec spec =
      MseSharpness("builtin://gaussian_regression?n=8&d=5&outputs=3");
  ExpectFailed(Measure(AddCheckpoint("archive", 1, archive), spec),
               "crashed on it (signal 11");
  ExpectStillServingAndStored();
}

TEST_F(RealEngineServiceTest, SafetensorsHeaderThatLiesFails) {
  MeasureGoodCheckpoint();
  // The header promises 400 bytes of fc0.bias; the file has 4.
  const std::string header =
      R"({"fc0.bias":{"dtype":"F32","shape":[100],"data_offsets":[0,400]}})";
  std::string lying(8, '\0');
  const uint64_t size = header.size();
  std::memcpy(lying.data(), &size, 8);  // little-endian on every target
  lying += header + std::string(4, '\0');
  CreateRun("lying");
  const std::string parent = AddCheckpoint("lying", 1, lying);
  const v1::Measurement weights = Measure(parent, MseSharpness());
  ExpectFailed(weights, "safetensors");
  // The same file as a shard.
  const std::string digest = Upload(lying);
  const v1::Measurement shard =
      Measure(good_parent_, MseSharpness("blob://" + digest));
  ExpectFailed(shard, "safetensors");
  // The errors name the blob, not where the server keeps it.
  for (const v1::Measurement& m : {weights, shard}) {
    EXPECT_THAT(m.error_message(), HasSubstr("blob://" + digest));
    EXPECT_THAT(m.error_message(), ::testing::Not(HasSubstr(state_dir_)));
  }
  ExpectStillServingAndStored();
}

// An archive's parameter count is known only once the worker loads it: an
// exact Hessian over the cap ends FAILED with INVALID_ARGUMENT, and a block of
// the same archive under the cap runs.
TEST_F(RealEngineServiceTest, ArchiveExactHessianOverTheCapIsRefusedAtCreateAndABlockRuns) {
  const std::filesystem::path fixtures(CURVD_CORE_FIXTURE_DIR);
  if (!std::filesystem::exists(fixtures / "zoo_mlp.pt")) {
    GTEST_SKIP() << "no TorchScript fixture: CMake found no python3 with torch";
  }
  auto read = [](const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  limits_.exact_hessian_max_parameters = 20;  // zoo_mlp.pt (5-8-3) has 75
  max_blob_bytes_ = 1 << 20;                  // the archive is about 5 KB
  RestartServer();
  MeasureGoodCheckpoint();
  v1::CreateRunRequest request;
  request.set_run_id("archive");
  const std::string archive = read(fixtures / "zoo_mlp.pt");
  request.mutable_run()->mutable_model()->set_archive_digest(Upload(archive));
  grpc::ClientContext context;
  v1::Run run;
  ASSERT_TRUE(stub_->CreateRun(&context, request, &run).ok());
  // A whole archive per step, as torch.jit.save writes during training.
  const std::string parent = AddCheckpoint("archive", 1, archive);

  v1::MeasurementSpec spec;
  spec.set_shard_uri("builtin://gaussian_regression?n=8&d=5&outputs=3");
  spec.set_loss(v1::LOSS_FUNCTION_MSE);
  spec.mutable_exact_hessian();
  // Refused at create, the archive's parameters counted: nothing queues.
  v1::CreateMeasurementRequest create;
  create.set_parent(parent);
  *create.mutable_spec() = spec;
  grpc::ClientContext create_context;
  v1::Measurement refused;
  const grpc::Status status =
      stub_->CreateMeasurement(&create_context, create, &refused);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              ::testing::HasSubstr(
                  "exact Hessian of 75 parameters exceeds the server's cap of "
                  "20 (--exact_hessian_max_parameters): restrict the operator "
                  "to a parameter block with spec.block"));

  spec.mutable_block()->add_names("fc1.bias");  // 3 parameters
  const v1::Measurement block = Measure(parent, spec);
  ASSERT_EQ(block.state(), v1::Measurement::SUCCEEDED) << block.error_message();
  EXPECT_EQ(block.exact_hessian().eigenvalues_size(), 3);
  EXPECT_THAT(block.diagnostics().block_parameters(),
              ::testing::ElementsAre("fc1.bias"));
  ExpectStillServingAndStored();
}

// A CIFAR-10 shard named by its file:// URI measures on the real engine as the
// same tensors uploaded as a safetensors shard do, sliced alike by limit=; a
// batch file that is not whole records or has a label byte beyond 9 FAILS
// naming the file; a URI outside the data roots, with an unknown parameter or
// limit=0 is refused at create; and the server goes on measuring.
TEST_F(RealEngineServiceTest, CifarShardMeasuresAsItsTensorsAndBadFilesFail) {
  max_blob_bytes_ = 1 << 20;  // the weights are about 50 KB, the shard 74 KB
  RestartServer();
  MeasureGoodCheckpoint();
  // Six records, labels 3r mod 10, pixel byte j of record r (31r + 7j) mod
  // 256, in the five training batches of a cifar-10-batches-bin directory.
  constexpr int64_t kRecords = 6;
  constexpr int64_t kPixels = 3072;
  std::vector<std::string> batches(5);
  std::vector<float> pixels;
  std::vector<int64_t> labels;
  for (int64_t r = 0; r < kRecords; ++r) {
    std::string& batch = batches[r < 2 ? 0 : r - 1];
    labels.push_back(3 * r % 10);
    batch.push_back(static_cast<char>(labels.back()));
    for (int64_t j = 0; j < kPixels; ++j) {
      const auto value = static_cast<uint8_t>((31 * r + 7 * j) % 256);
      batch.push_back(static_cast<char>(value));
      pixels.push_back(value / 255.0f);
    }
  }
  const std::filesystem::path dir =
      std::filesystem::path(data_root_) / "cifar-10-batches-bin";
  std::filesystem::create_directories(dir);
  for (size_t i = 0; i < batches.size(); ++i) {
    std::ofstream(dir / ("data_batch_" + std::to_string(i + 1) + ".bin"),
                  std::ios::binary)
        << batches[i];
  }
  auto raw = [](const std::string& name, const std::string& dtype,
                std::vector<int64_t> shape, const void* data, size_t bytes) {
    core::SafetensorsTensor t;
    t.name = name;
    t.dtype = dtype;
    t.shape = std::move(shape);
    t.data.assign(static_cast<const char*>(data), bytes);
    return t;
  };
  const std::string tensors = Upload(
      core::SerializeSafetensors(
          {raw("inputs", "F32", {kRecords, 3, 32, 32}, pixels.data(),
               pixels.size() * sizeof(float)),
           raw("targets", "I64", {kRecords}, labels.data(),
               labels.size() * sizeof(int64_t))})
          .value());

  // The zoo MLP 3072-4-10 (it flattens [N, 3, 32, 32]) at varied weights.
  v1::CreateRunRequest request;
  request.set_run_id("cifar");
  auto* zoo = request.mutable_run()->mutable_model()->mutable_zoo();
  for (int w : {3072, 4, 10}) zoo->add_layer_widths(w);
  grpc::ClientContext context;
  v1::Run run;
  ASSERT_TRUE(stub_->CreateRun(&context, request, &run).ok());
  std::vector<core::SafetensorsTensor> weights;
  int64_t seed = 0;
  for (const auto& [name, shape] :
       std::vector<std::pair<std::string, std::vector<int64_t>>>{
           {"fc0.weight", {4, 3072}},
           {"fc0.bias", {4}},
           {"fc1.weight", {10, 4}},
           {"fc1.bias", {10}}}) {
    std::vector<float> values(shape.size() == 2 ? shape[0] * shape[1]
                                                : shape[0]);
    for (float& v : values) v = 0.02f * static_cast<float>(seed++ % 17 - 8);
    weights.push_back(raw(name, "F32", shape, values.data(),
                          values.size() * sizeof(float)));
  }
  const std::string parent = AddCheckpoint(
      "cifar", 1, core::SerializeSafetensors(weights).value());

  auto sharpness = [](const std::string& shard) {
    v1::MeasurementSpec spec = SharpnessSpec(1);
    spec.set_shard_uri(shard);  // cross-entropy, the default loss
    return spec;
  };
  const std::string uri = "file://" + dir.string() + "?format=cifar10";
  for (const auto& [query, samples] :
       std::vector<std::pair<std::string, int64_t>>{{"", kRecords},
                                                    {"limit=4", 4}}) {
    SCOPED_TRACE(query);
    const v1::Measurement cifar =
        Measure(parent, sharpness(query.empty() ? uri : uri + "&" + query));
    const v1::Measurement uploaded = Measure(
        parent, sharpness("blob://" + tensors +
                          (query.empty() ? "" : "?" + query)));
    ASSERT_EQ(cifar.state(), v1::Measurement::SUCCEEDED)
        << cifar.error_message();
    ASSERT_EQ(uploaded.state(), v1::Measurement::SUCCEEDED)
        << uploaded.error_message();
    EXPECT_EQ(cifar.diagnostics().num_samples(), samples);
    EXPECT_EQ(cifar.diagnostics().num_parameters(), 3072 * 4 + 4 + 4 * 10 + 10);
    EXPECT_GT(cifar.sharpness().sharpness(), 0);
    EXPECT_DOUBLE_EQ(cifar.diagnostics().loss(), uploaded.diagnostics().loss());
    EXPECT_DOUBLE_EQ(cifar.sharpness().sharpness(),
                     uploaded.sharpness().sharpness());
  }

  const std::string cut = data_root_ + "/cut.bin";
  std::ofstream(cut, std::ios::binary) << batches[1].substr(1);
  ExpectFailed(Measure(parent, sharpness("file://" + cut + "?format=cifar10")),
               cut + ": 3072 bytes are not whole CIFAR-10 records of 3073");
  std::string ten = batches[1];
  ten[0] = 10;
  const std::string label = data_root_ + "/label.bin";
  std::ofstream(label, std::ios::binary) << ten;
  ExpectFailed(
      Measure(parent, sharpness("file://" + label + "?format=cifar10")),
      label + ": record 0's label byte is 10; CIFAR-10 labels are 0 to 9");

  const std::string outside = testing::MakeTempDir() + "/test_batch.bin";
  std::ofstream(outside, std::ios::binary) << batches[1];
  const std::tuple<std::string, grpc::StatusCode, std::string> refused[] = {
      {"file://" + outside + "?format=cifar10",
       grpc::StatusCode::PERMISSION_DENIED, "outside the data roots"},
      {uri + "&shuffle=1", grpc::StatusCode::INVALID_ARGUMENT,
       "unknown query parameter 'shuffle'"},
      {uri + "&limit=0", grpc::StatusCode::INVALID_ARGUMENT, "limit='0'"}};
  for (const auto& [shard, code, reason] : refused) {
    SCOPED_TRACE(shard);
    v1::Measurement m;
    const grpc::Status status = CreateMeasurement(parent, sharpness(shard), &m);
    EXPECT_EQ(status.error_code(), code);
    EXPECT_THAT(status.error_message(), HasSubstr(reason));
  }
  ExpectStillServingAndStored();
}

TEST_F(RealEngineServiceTest, StateDictNameOrShapeMismatchFails) {
  MeasureGoodCheckpoint();
  CreateRun("mismatch");
  ExpectFailed(Measure(AddCheckpoint("mismatch", 1, StateDict(0.1f, "fc9.weight")),
                       MseSharpness()),
               "fc0.weight");
  ExpectFailed(Measure(AddCheckpoint("mismatch", 2,
                                     StateDict(0.1f, "", {4, 2})),
                       MseSharpness()),
               "shape [4, 2]");
  ExpectStillServingAndStored();
}

// float64 weights that float32 cannot hold: a float32 measurement FAILS
// naming the tensor, its dtype, the measurement's and the remedy; a float64
// one loads them exactly (its loss differs from that of the same weights
// rounded to float32).
TEST_F(RealEngineServiceTest,
       Float64WeightsAreRefusedInFloat32AndExactInFloat64) {
  MeasureGoodCheckpoint();
  std::vector<core::SafetensorsTensor> tensors =
      core::ParseSafetensors(StateDict(0.1f)).value();
  for (core::SafetensorsTensor& t : tensors) {
    const std::vector<double> values(t.data.size() / sizeof(float), 0.1);
    t.dtype = "F64";
    t.data.assign(reinterpret_cast<const char*>(values.data()),
                  values.size() * sizeof(double));
  }
  CreateRun("double");
  const std::string parent =
      AddCheckpoint("double", 1, core::SerializeSafetensors(tensors).value());
  const v1::Measurement rounded = Measure(parent, MseSharpness());
  ExpectFailed(rounded,
               "state dict tensor 'fc0.weight' (F64) has values that float32, "
               "the dtype this measurement runs in, cannot hold");
  EXPECT_THAT(rounded.error_message(),
              HasSubstr("spec.precision PRECISION_FLOAT64"));

  v1::MeasurementSpec float64 = MseSharpness();
  float64.set_precision(v1::PRECISION_FLOAT64);
  const v1::Measurement exact = Measure(parent, float64);
  ASSERT_EQ(exact.state(), v1::Measurement::SUCCEEDED) << exact.error_message();
  EXPECT_EQ(exact.diagnostics().precision(), v1::PRECISION_FLOAT64);
  const v1::Measurement widened = Measure(good_parent_, float64);
  ASSERT_EQ(widened.state(), v1::Measurement::SUCCEEDED);
  EXPECT_NE(exact.diagnostics().loss(), widened.diagnostics().loss());
  EXPECT_NEAR(exact.diagnostics().loss(), widened.diagnostics().loss(),
              1e-6 * std::abs(widened.diagnostics().loss()));
  ExpectStillServingAndStored();
}

TEST_F(RealEngineServiceTest, ShardThatDoesNotFitTheModelFails) {
  MeasureGoodCheckpoint();
  ExpectFailed(
      Measure(good_parent_,
              MseSharpness("builtin://gaussian_regression?n=8&d=5")),
      "do not fit the model");
  ExpectStillServingAndStored();
}

TEST_F(RealEngineServiceTest, NanAndInfWeightsFail) {
  MeasureGoodCheckpoint();
  CreateRun("nonfinite");
  ExpectFailed(
      Measure(AddCheckpoint("nonfinite", 1,
                            StateDict(std::numeric_limits<float>::quiet_NaN())),
              MseSharpness()),
      "NaN or Inf");
  ExpectFailed(
      Measure(AddCheckpoint("nonfinite", 2,
                            StateDict(std::numeric_limits<float>::infinity())),
              MseSharpness()),
      "NaN or Inf");
  ExpectStillServingAndStored();
}

// A zoo model beyond the engine's limits is refused when the run is created,
// not stored to fail every measurement later.
TEST_F(RealEngineServiceTest, ZooModelBeyondTheLimitsIsRefusedAtCreateRun) {
  v1::CreateRunRequest request;
  request.set_run_id("huge");
  auto* zoo = request.mutable_run()->mutable_model()->mutable_zoo();
  for (int64_t w : {int64_t{1} << 21, int64_t{1}}) zoo->add_layer_widths(w);
  grpc::ClientContext context;
  v1::Run run;
  grpc::Status status = stub_->CreateRun(&context, request, &run);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("layer_widths[0]"));
  zoo->clear_layer_widths();  // too many layers, each small
  for (int i = 0; i < 1025; ++i) zoo->add_layer_widths(1);
  grpc::ClientContext deep_context;
  status = stub_->CreateRun(&deep_context, request, &run);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("2 to 1024 layer widths"));
  v1::GetRunRequest get;
  get.set_name("runs/huge");
  grpc::ClientContext context2;
  EXPECT_EQ(stub_->GetRun(&context2, get, &run).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

// Each issue-5 kind on the real CPU engine reaches SUCCEEDED with results
// that fit the 3-4-1 MLP (21 parameters).
TEST_F(RealEngineServiceTest, EveryNewKindSucceedsOnTheCpuEngine) {
  MeasureGoodCheckpoint();
  for (const v1::MeasurementSpec& spec : NewKindSpecs()) {
    SCOPED_TRACE(spec.DebugString());
    const v1::Measurement m = Measure(good_parent_, spec);
    ASSERT_EQ(m.state(), v1::Measurement::SUCCEEDED) << m.error_message();
    EXPECT_EQ(m.diagnostics().num_parameters(), 21);
    EXPECT_GT(m.diagnostics().hvps(), 0);
    if (m.has_spectral_density()) {
      EXPECT_EQ(m.spectral_density().runs_size(), 3);
      EXPECT_EQ(m.spectral_density().grid_size(), 64);
    } else if (m.has_hutchpp()) {
      EXPECT_GT(m.hutchpp().sketch_size(), 0);
      EXPECT_GT(m.hutchpp().frobenius_norm_squared(), 0);
      EXPECT_GT(m.hutchpp().sketch_frobenius_fraction(), 0);
      EXPECT_LE(m.hutchpp().sketch_frobenius_fraction(), 1 + 1e-12);
      EXPECT_GT(m.hutchpp().hutchinson_standard_error_same_hvps(), 0);
    } else if (m.has_trace_h3()) {
      EXPECT_GE(m.trace_h3().probes(), 10);
    } else if (m.has_loss_expansion()) {
      EXPECT_DOUBLE_EQ(m.loss_expansion().sigma_squared(), 1.0 / 8);
      EXPECT_LE(m.loss_expansion().first_order_term(), 0);
    } else if (m.has_exact_hessian()) {
      EXPECT_EQ(m.exact_hessian().eigenvalues_size(), 21);
      EXPECT_EQ(m.exact_hessian().matrix_size(), 21 * 21);
      // The exact top eigenvalue is Lanczos's sharpness.
      EXPECT_NEAR(m.exact_hessian().eigenvalues(20),
                  good_.sharpness().sharpness(),
                  1e-3 * std::abs(good_.sharpness().sharpness()));
    } else if (m.has_power_iteration()) {
      EXPECT_EQ(m.power_iteration().pairs_size(), 2);
    } else if (m.has_loss_slice()) {
      EXPECT_EQ(m.loss_slice().loss_size(), 5);
      EXPECT_NEAR(m.loss_slice().loss(2), m.diagnostics().loss(),
                  1e-5 * m.diagnostics().loss());  // t = 0
    } else {
      ASSERT_TRUE(m.has_plan());
      EXPECT_EQ(m.plan().spectral_density().runs_size(), 3);
      EXPECT_GT(m.plan().hessian_trace().probes(), 0);
      EXPECT_GT(m.plan().trace_h3().probes(), 0);
      EXPECT_EQ(m.plan().exact_hessian().eigenvalues_size(), 21);
      // The adaptive trace agrees with the exact Hessian's within 4 of its
      // standard errors (and a rounding margin: a sketch may span H).
      double exact_trace = 0;
      for (double x : m.plan().exact_hessian().eigenvalues()) exact_trace += x;
      const v1::AdaptiveTraceResult& adaptive = m.plan().adaptive_trace();
      EXPECT_GT(adaptive.hvps(), 0);
      EXPECT_LE(adaptive.hvps(), 200);
      EXPECT_NEAR(adaptive.trace(), exact_trace,
                  4 * adaptive.standard_error() + 1e-4 * std::abs(exact_trace))
          << adaptive.method() << " " << adaptive.stop_reason();
      EXPECT_FALSE(m.plan().has_sharpness());
    }
  }
  ExpectStillServingAndStored();
}

// gop through the server on the zoo MLP 3-4-1 (21 parameters, N = 8): the
// trace is the sum of the spectrum and of the layers' traces, and the three
// variants agree: tr(F) = tr(Sigma) + ||g-bar||^2, the signal-to-noise ratio
// ||g-bar||^2 / tr(Sigma).
TEST_F(RealEngineServiceTest, GopMetricsAgreeAcrossLayersAndVariants) {
  CreateRun("gop");
  const std::string parent = AddCheckpoint("gop", 1, StateDict(0.3f));
  v1::MeasurementSpec spec = MseSharpness();
  spec.mutable_gop()->set_per_layer(true);
  spec.mutable_gop()->set_top_k(4);
  const auto measure = [&](v1::GopSpec::Variant variant) {
    spec.mutable_gop()->set_variant(variant);
    const v1::Measurement m = Measure(parent, spec);
    EXPECT_EQ(m.state(), v1::Measurement::SUCCEEDED) << m.error_message();
    EXPECT_TRUE(m.has_gop()) << m.DebugString();
    return m.gop();
  };
  const v1::GopResult fisher = measure(v1::GopSpec::EMPIRICAL_FISHER);
  EXPECT_EQ(fisher.num_samples(), 8);
  EXPECT_EQ(fisher.num_parameters(), 21);
  EXPECT_EQ(fisher.path(), "fast");  // the zoo MLP's Linear layers
  const double trace = fisher.metrics().trace();
  ASSERT_GT(trace, 0);
  double spectrum = 0;
  for (double lambda : fisher.metrics().eigenvalues()) spectrum += lambda;
  EXPECT_NEAR(spectrum, trace, 1e-9 * trace);
  EXPECT_EQ(fisher.metrics().top_eigenvalues_size(), 4);
  ASSERT_EQ(fisher.layers_size(), 2);
  EXPECT_EQ(fisher.layers(0).name(), "fc0");
  EXPECT_EQ(fisher.layers(0).size(), 16);
  EXPECT_EQ(fisher.layers(1).name(), "fc1");
  double layers = 0;
  double shares = 0;
  for (const v1::GopLayer& layer : fisher.layers()) {
    layers += layer.metrics().trace();
    shares += layer.trace_share();
  }
  EXPECT_NEAR(layers, trace, 1e-9 * trace);
  EXPECT_NEAR(shares, 1, 1e-9);
  // mean ||g_i|| <= sqrt(mean ||g_i||^2) = sqrt(tr F).
  EXPECT_GT(fisher.gradient_norms().mean(), 0);
  EXPECT_LE(fisher.gradient_norms().mean(), std::sqrt(trace) * (1 + 1e-12));

  const v1::GopResult noise = measure(v1::GopSpec::GRADIENT_COVARIANCE);
  const v1::GopResult mean = measure(v1::GopSpec::MEAN_GRADIENT);
  EXPECT_EQ(mean.metrics().rank(), 1);
  EXPECT_EQ(mean.path(), "generic");  // a closed form, no Gram matrix
  EXPECT_NEAR(noise.metrics().trace() + mean.metrics().trace(), trace,
              1e-6 * trace);
  ASSERT_TRUE(noise.has_signal_to_noise());
  EXPECT_NEAR(noise.signal_to_noise(),
              mean.metrics().trace() / noise.metrics().trace(),
              1e-6 * noise.signal_to_noise());
  EXPECT_EQ(noise.variant(), v1::GopSpec::GRADIENT_COVARIANCE);
}

// The server's --gop_max_samples reaches core: a gop of N = 8 that the
// default cap accepts fails, once the cap is lowered to 5, as INVALID_ARGUMENT
// naming the cap and by how much N exceeds it. The eigenvectors' cap is also
// what a blob of --max_blob_bytes holds: 2048 bytes hold 64 floats, fewer than
// 4 eigenvectors of 21 parameters.
TEST_F(RealEngineServiceTest, GopOverALoweredServerCapIsRefused) {
  CreateRun("gop");
  const std::string parent = AddCheckpoint("gop", 1, StateDict(0.3f));
  v1::MeasurementSpec spec = MseSharpness();
  spec.mutable_gop();
  const v1::Measurement accepted = Measure(parent, spec);
  EXPECT_EQ(accepted.state(), v1::Measurement::SUCCEEDED)
      << accepted.error_message();
  limits_.gop_max_samples = 5;
  RestartServer();
  ExpectFailed(Measure(parent, spec),
               "N = 8 exceeds the cap gop.max_samples = 5 by 3");

  limits_ = RequestLimits();
  max_blob_bytes_ = 2048;
  RestartServer();
  spec.mutable_gop()->set_top_k(4);
  spec.mutable_gop()->set_eigenvectors(true);
  ExpectFailed(Measure(parent, spec),
               "= 84 exceeds the cap gop.max_eigenvector_floats = 64 by 20");
}

// gop's eigenvectors are stored as a safetensors blob that ReadBlob returns,
// not in the result: unit vectors of M = 21 entries, with the top
// eigenvalues; the same measurement again references the same blob.
TEST_F(RealEngineServiceTest, GopEigenvectorsAreAContentAddressedBlob) {
  CreateRun("gop");
  const std::string parent = AddCheckpoint("gop", 1, StateDict(0.3f));
  v1::MeasurementSpec spec = MseSharpness();
  spec.mutable_gop()->set_top_k(3);
  spec.mutable_gop()->set_eigenvectors(true);
  const v1::Measurement m = Measure(parent, spec);
  ASSERT_EQ(m.state(), v1::Measurement::SUCCEEDED) << m.error_message();
  const v1::GopResult& gop = m.gop();
  ASSERT_EQ(gop.num_eigenvectors(), 3);
  EXPECT_EQ(gop.eigenvectors_size(), 0);
  EXPECT_THAT(gop.eigenvectors_shape(), ::testing::ElementsAre(3, 21));
  std::string bytes;
  ASSERT_TRUE(Read(gop.eigenvectors_blob_digest(), 0, &bytes).ok());
  auto tensors = core::ParseSafetensors(bytes);
  ASSERT_TRUE(tensors.ok()) << tensors.status();
  ASSERT_EQ(tensors->size(), 2u);
  const core::SafetensorsTensor& values = (*tensors)[0];
  const core::SafetensorsTensor& vectors = (*tensors)[1];
  ASSERT_EQ(values.name, "eigenvalues");
  ASSERT_EQ(vectors.name, "eigenvectors");
  EXPECT_THAT(vectors.shape, ::testing::ElementsAre(3, 21));
  const auto* v = reinterpret_cast<const double*>(vectors.data.data());
  for (int j = 0; j < 3; ++j) {
    double lambda = 0;
    std::memcpy(&lambda, values.data.data() + j * sizeof(double),
                sizeof(double));
    EXPECT_EQ(lambda, gop.metrics().top_eigenvalues(j));
    double norm = 0;
    for (int i = 0; i < 21; ++i) norm += v[j * 21 + i] * v[j * 21 + i];
    EXPECT_NEAR(norm, 1, 1e-9) << j;
  }
  const v1::Measurement again = Measure(parent, spec);
  EXPECT_EQ(again.gop().eigenvectors_blob_digest(),
            gop.eigenvectors_blob_digest());
}

// A train-mode measurement stores the seed its forward randomness was fixed
// with, in the effective spec and the diagnostics, and the operator check's
// difference; an eval-mode one is not checked.
TEST_F(RealEngineServiceTest, TrainModeRecordsTheFixedForwardRandomness) {
  MeasureGoodCheckpoint();
  v1::MeasurementSpec spec = MseSharpness();
  spec.set_train_mode(true);
  spec.set_forward_seed(42);
  spec.set_micro_batch_size(3);
  const v1::Measurement train = Measure(good_parent_, spec);
  ASSERT_EQ(train.state(), v1::Measurement::SUCCEEDED) << train.error_message();
  EXPECT_EQ(train.effective_spec().forward_seed(), 42u);
  EXPECT_EQ(train.diagnostics().forward_seed(), 42u);
  EXPECT_TRUE(train.diagnostics().forward_randomness_fixed());
  ASSERT_TRUE(train.diagnostics().has_operator_check_difference());
  EXPECT_LE(train.diagnostics().operator_check_difference(),
            std::sqrt(std::numeric_limits<float>::epsilon()));
  const v1::Measurement eval = Measure(good_parent_, MseSharpness());
  ASSERT_EQ(eval.state(), v1::Measurement::SUCCEEDED) << eval.error_message();
  EXPECT_EQ(eval.effective_spec().forward_seed(), 0u);
  EXPECT_TRUE(eval.diagnostics().forward_randomness_fixed());
  EXPECT_FALSE(eval.diagnostics().has_operator_check_difference());
  ExpectStillServingAndStored();
}

// A block that names no parameter fails the measurement (not the RPC: the
// names are the model's to judge), listing the model's parameter names.
TEST_F(RealEngineServiceTest, BlockNamingNoParameterFails) {
  MeasureGoodCheckpoint();
  v1::MeasurementSpec spec = MseSharpness();
  spec.mutable_block()->add_names("no.such.weight");
  ExpectFailed(Measure(good_parent_, spec), "fc0.weight");
  v1::MeasurementSpec exact = MseSharpness();
  exact.mutable_exact_hessian();
  exact.mutable_block()->add_prefixes("layers.");
  ExpectFailed(Measure(good_parent_, exact), "fc0.weight");
  // A block of fc1.* has the 5 parameters of the last layer.
  exact.mutable_block()->set_prefixes(0, "fc1.");
  const v1::Measurement block = Measure(good_parent_, exact);
  ASSERT_EQ(block.state(), v1::Measurement::SUCCEEDED) << block.error_message();
  EXPECT_EQ(block.exact_hessian().eigenvalues_size(), 5);
  EXPECT_EQ(block.diagnostics().num_parameters(), 5);
  EXPECT_THAT(block.diagnostics().block_parameters(),
              ::testing::ElementsAre("fc1.weight", "fc1.bias"));
  ExpectStillServingAndStored();
}

// A trainer's embedding model on integer token ids, the shard uploaded as a
// blob with int64 inputs: the exact Hessian in float32 succeeds and matches
// the float64 spectrum Python computed for the same model and data.
TEST_F(RealEngineServiceTest, TokenIdShardThroughABlobMatchesPythonReference) {
  const std::filesystem::path fixtures(CURVD_CORE_FIXTURE_DIR);
  if (!std::filesystem::exists(fixtures / "token_mlp.pt")) {
    GTEST_SKIP() << "no TorchScript fixture: CMake found no python3 with torch";
  }
  auto reference = core::ReadSafetensorsFile(
      (fixtures / "token_reference.safetensors").string());
  ASSERT_TRUE(reference.ok()) << reference.status();
  std::vector<double> eigenvalues;
  for (const core::SafetensorsTensor& t : *reference) {
    if (t.name != "eigenvalues") continue;
    eigenvalues.resize(t.data.size() / sizeof(double));
    std::memcpy(eigenvalues.data(), t.data.data(), t.data.size());
  }
  ASSERT_EQ(eigenvalues.size(), 68u);
  auto read = [&](const char* name) {
    std::ifstream in(fixtures / name, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  max_blob_bytes_ = 1 << 20;  // the archive is about 10 KB
  RestartServer();
  v1::CreateRunRequest request;
  request.set_run_id("tokens");
  const std::string archive = read("token_mlp.pt");
  request.mutable_run()->mutable_model()->set_archive_digest(Upload(archive));
  grpc::ClientContext context;
  v1::Run run;
  ASSERT_TRUE(stub_->CreateRun(&context, request, &run).ok());
  const std::string parent = AddCheckpoint("tokens", 1, archive);

  v1::MeasurementSpec spec;
  spec.set_shard_uri("blob://" + Upload(read("token_shard.safetensors")));
  spec.set_loss(v1::LOSS_FUNCTION_CROSS_ENTROPY);
  spec.set_precision(v1::PRECISION_FLOAT32);
  spec.mutable_exact_hessian();
  const v1::Measurement m = Measure(parent, spec);
  ASSERT_EQ(m.state(), v1::Measurement::SUCCEEDED) << m.error_message();
  EXPECT_EQ(m.diagnostics().num_samples(), 25);
  ASSERT_EQ(m.exact_hessian().eigenvalues_size(), 68);
  const double scale = std::abs(eigenvalues.back());
  for (int i = 0; i < 68; ++i) {
    EXPECT_NEAR(m.exact_hessian().eigenvalues(i), eigenvalues[i], 1e-4 * scale)
        << "eigenvalue " << i;
  }
}

}  // namespace
}  // namespace curvd::server
