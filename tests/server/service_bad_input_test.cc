// Requests the service refuses over the socket: unknown and malformed names,
// specs out of range, shards outside the data roots. Nothing is stored or run.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/service_impl.h"
#include "service_fixture.h"

namespace curvd::server {
namespace {

using ::testing::HasSubstr;

TEST_F(ServiceTest, UnknownNamesAreNotFoundAndMalformedOnesInvalid) {
  const std::string parent = CreateCheckpoint("r", 1);
  EXPECT_EQ(GetCode(parent + "/measurements/ffff"),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(GetCode("runs/nope/checkpoints/1/measurements/1"),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(GetCode("measurements/1"), grpc::StatusCode::INVALID_ARGUMENT);
  // One name per checkpoint: "007" is not step 7, and neither is "7 " or "+7".
  for (const char* step : {"01", "007", "7 ", "+7", "-1", "1e3"}) {
    EXPECT_EQ(GetCode(absl::StrCat("runs/r/checkpoints/", step,
                                   "/measurements/1")),
              grpc::StatusCode::INVALID_ARGUMENT)
        << step;
  }

  v1::GetRunRequest run;
  run.set_name("runs/nope");
  grpc::ClientContext c1;
  v1::Run r;
  EXPECT_EQ(stub_->GetRun(&c1, run, &r).error_code(),
            grpc::StatusCode::NOT_FOUND);
  v1::GetCheckpointRequest checkpoint;
  checkpoint.set_name("runs/r/checkpoints/99");
  grpc::ClientContext c2;
  v1::Checkpoint c;
  EXPECT_EQ(stub_->GetCheckpoint(&c2, checkpoint, &c).error_code(),
            grpc::StatusCode::NOT_FOUND);
  v1::Measurement m;
  EXPECT_EQ(CreateMeasurement("runs/r/checkpoints/99", SharpnessSpec(), &m)
                .error_code(),
            grpc::StatusCode::NOT_FOUND);
  v1::CancelMeasurementRequest cancel;
  cancel.set_name(parent + "/measurements/ffff");
  grpc::ClientContext c3;
  EXPECT_EQ(stub_->CancelMeasurement(&c3, cancel, &m).error_code(),
            grpc::StatusCode::NOT_FOUND);
  v1::WatchMeasurementRequest watch;
  watch.set_name(parent + "/measurements/ffff");
  grpc::ClientContext c4;
  auto reader = stub_->WatchMeasurement(&c4, watch);
  EXPECT_FALSE(reader->Read(&m));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(ServiceTest, SpecsOutOfRangeAreInvalidArgumentAndNotStored) {
  const std::string parent = CreateCheckpoint("r", 1);
  v1::Measurement m;
  grpc::Status k0 = CreateMeasurement(parent, SharpnessSpec(0), &m);
  EXPECT_EQ(k0.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(k0.error_message(), HasSubstr("top_k"));
  v1::MeasurementSpec probes0;
  probes0.set_shard_uri(kShard);
  probes0.mutable_hessian_trace()->set_min_probes(0);
  EXPECT_EQ(CreateMeasurement(parent, probes0, &m).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  probes0.mutable_hessian_trace()->clear_min_probes();
  probes0.mutable_hessian_trace()->set_max_probes(0);
  EXPECT_EQ(CreateMeasurement(parent, probes0, &m).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  v1::MeasurementSpec no_kind;
  no_kind.set_shard_uri(kShard);
  EXPECT_EQ(CreateMeasurement(parent, no_kind, &m).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  v1::MeasurementSpec bad_device = SharpnessSpec();
  bad_device.set_device("cuda");
  EXPECT_EQ(CreateMeasurement(parent, bad_device, &m).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);

  const v1::ListMeasurementsResponse response = ListAll(parent);
  EXPECT_EQ(response.measurements_size(), 0);
  EXPECT_EQ(control_->started(), 0);
}

// The issue-5 kinds' bad specs are refused before anything is stored or run,
// and the server keeps measuring.
TEST_F(ServiceTest, NewKindSpecsOutOfRangeAreInvalidArgumentAndNotStored) {
  limits_.exact_hessian_max_parameters = 20;  // the 3-4-1 MLP has 21
  limits_.exact_hessian_max_matrix_parameters = 4;
  RestartServer();
  const std::string parent = CreateCheckpoint("r", 1);
  v1::Measurement done;
  ASSERT_TRUE(CreateMeasurement(parent, SharpnessSpec(), &done).ok());
  WaitForState(done.name(), v1::Measurement::SUCCEEDED);

  v1::MeasurementSpec common;
  common.set_shard_uri(kShard);
  std::vector<std::pair<v1::MeasurementSpec, std::string>> bad;
  v1::MeasurementSpec spec = common;
  spec.mutable_spectral_density()->set_grid_points(0);
  bad.push_back({spec, "spectral_density.grid_points must be in [2, 100000]"});
  spec = common;
  spec.mutable_trace_h3()->set_min_probes(-5);
  bad.push_back({spec, "trace_h3.min_probes"});
  spec = common;
  spec.mutable_hutchpp()->set_min_residual_probes(-1);
  bad.push_back({spec, "hutchpp.min_residual_probes"});
  spec = common;
  spec.mutable_plan();
  bad.push_back({spec, "plan must set at least one measurement"});
  spec = common;
  SetLossExpansion(spec.mutable_loss_expansion());
  spec.mutable_loss_expansion()->set_rho(0);
  bad.push_back({spec, "loss_expansion.rho must be finite and > 0, got 0"});
  spec = common;
  spec.mutable_exact_hessian();
  bad.push_back({spec,
                 "exact Hessian of 21 parameters exceeds the server's "
                 "cap of 20"});
  spec = common;
  spec.mutable_plan()->mutable_exact_hessian();
  spec.mutable_plan()->mutable_hessian_trace();
  bad.push_back({spec, "exact Hessian of 21 parameters"});
  spec = common;
  spec.mutable_exact_hessian()->set_return_matrix(true);
  // fc1.* has 5 parameters: under the cap of 20, over the matrix cap of 4.
  spec.mutable_block()->add_names("fc1.weight");
  spec.mutable_block()->add_names("fc1.bias");
  bad.push_back({spec,
                 "Hessian matrix of 5 parameters exceeds the server's "
                 "cap of 4"});
  for (const auto& [bad_spec, message] : bad) {
    SCOPED_TRACE(message);
    v1::Measurement m;
    grpc::Status status = CreateMeasurement(parent, bad_spec, &m);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(status.error_message(), HasSubstr(message));
  }

  // Within the caps: a block of fc1.weight has 4 parameters.
  spec = common;
  spec.mutable_exact_hessian()->set_return_matrix(true);
  spec.mutable_block()->add_names("fc1.weight");
  v1::Measurement small;
  ASSERT_TRUE(CreateMeasurement(parent, spec, &small).ok());
  EXPECT_EQ(WaitForState(small.name(), v1::Measurement::SUCCEEDED)
                .diagnostics()
                .block_parameters(0),
            "fc1.weight");

  const v1::ListMeasurementsResponse response = ListAll(parent);
  EXPECT_EQ(response.measurements_size(), 2);  // the good ones only
  EXPECT_EQ(control_->started(), 2);
  EXPECT_EQ(Get(done.name()).sharpness().sharpness(), 10.0);
}

class AdaptiveTraceBadInputTest : public ServiceTest {
 protected:
  // Each adaptive_trace spec of `bad` is refused with INVALID_ARGUMENT naming
  // its field (the paired message), before anything is stored or run.
  void ExpectRefused(
      const std::vector<std::pair<v1::AdaptiveTraceSpec, std::string>>& bad) {
    const std::string parent = CreateCheckpoint("r", 1);
    for (const auto& [adaptive, message] : bad) {
      SCOPED_TRACE(message);
      v1::MeasurementSpec spec;
      spec.set_shard_uri(kShard);
      *spec.mutable_adaptive_trace() = adaptive;
      v1::Measurement m;
      grpc::Status status = CreateMeasurement(parent, spec, &m);
      EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
      EXPECT_THAT(status.error_message(), HasSubstr(message));
    }
    EXPECT_EQ(ListAll(parent).measurements_size(), 0);
    EXPECT_EQ(control_->started(), 0);
  }
};

TEST_F(AdaptiveTraceBadInputTest, NegativeTargetsAreRefused) {
  v1::AdaptiveTraceSpec absolute;
  absolute.set_target_standard_error(-1);
  v1::AdaptiveTraceSpec relative;
  relative.set_target_relative_error(-0.01);
  v1::AdaptiveTraceSpec not_a_number;
  not_a_number.set_target_standard_error(std::nan(""));
  ExpectRefused(
      {{absolute,
        "adaptive_trace.target_standard_error must be finite and "
        ">= 0, got -1"},
       {relative, "adaptive_trace.target_relative_error must be in [0, 1)"},
       {not_a_number, "adaptive_trace.target_standard_error"}});
}

TEST_F(AdaptiveTraceBadInputTest, BothTargetsZeroAreRefused) {
  v1::AdaptiveTraceSpec none;
  none.set_target_standard_error(0);
  none.set_target_relative_error(0);
  ExpectRefused(
      {{none,
        "adaptive_trace.target_standard_error or target_relative_error "
        "must be > 0"}});
}

TEST_F(AdaptiveTraceBadInputTest, SizesOutOfRangeAreRefused) {
  v1::AdaptiveTraceSpec budget;
  budget.set_max_hvps(2);
  v1::AdaptiveTraceSpec huge_budget;
  huge_budget.set_max_hvps(100001);
  v1::AdaptiveTraceSpec no_sketch;
  no_sketch.set_initial_sketch_size(0);
  v1::AdaptiveTraceSpec sketch_over_budget;
  sketch_over_budget.set_max_hvps(30);
  sketch_over_budget.set_initial_sketch_size(29);
  v1::AdaptiveTraceSpec one_probe;
  one_probe.set_min_probes(1);
  v1::AdaptiveTraceSpec probes_over_budget;
  probes_over_budget.set_max_hvps(30);
  probes_over_budget.set_min_probes(31);
  ExpectRefused(
      {{budget, "adaptive_trace.max_hvps must be in [3, 100000], got 2"},
       {huge_budget, "adaptive_trace.max_hvps"},
       {no_sketch, "adaptive_trace.initial_sketch_size must be in [1, 998]"},
       {sketch_over_budget,
        "adaptive_trace.initial_sketch_size must be in [1, 28], got 29"},
       {one_probe, "adaptive_trace.min_probes must be in [2, 1000], got 1"},
       {probes_over_budget,
        "adaptive_trace.min_probes must be in [2, 30], got 31"}});

  // Within the ranges it runs, and the fake engine's result comes back.
  const std::string parent = CreateCheckpoint("r", 2);
  v1::MeasurementSpec good;
  good.set_shard_uri(kShard);
  good.mutable_adaptive_trace()->set_target_standard_error(0.5);
  v1::Measurement created;
  ASSERT_TRUE(CreateMeasurement(parent, good, &created).ok());
  const v1::Measurement done =
      WaitForState(created.name(), v1::Measurement::SUCCEEDED);
  EXPECT_EQ(done.adaptive_trace().method(), "hutch++");
  EXPECT_DOUBLE_EQ(
      done.effective_spec().adaptive_trace().target_relative_error(), 0);
}

// A value that its enum does not declare is refused naming the field, not
// read as the default; nothing is stored or run, and the server keeps
// measuring.
TEST_F(ServiceTest, UndeclaredEnumValuesAreInvalidArgumentAndNotStored) {
  const std::string parent = CreateCheckpoint("r", 1);
  std::vector<std::pair<v1::MeasurementSpec, std::string>> bad;
  v1::MeasurementSpec spec = SharpnessSpec();
  spec.set_loss(static_cast<v1::LossFunction>(99));
  bad.push_back({spec, "spec.loss 99 is not a value of LossFunction"});
  spec = SharpnessSpec();
  spec.set_precision(static_cast<v1::Precision>(99));
  bad.push_back({spec, "spec.precision 99 is not a value of Precision"});
  spec = SharpnessSpec();
  spec.set_operator_(static_cast<v1::Operator>(99));
  bad.push_back({spec, "spec.operator 99 is not a value of Operator"});
  spec.Clear();
  spec.set_shard_uri(kShard);
  spec.mutable_hessian_trace()->set_distribution(
      static_cast<v1::ProbeDistribution>(99));
  bad.push_back({spec,
                 "spec.hessian_trace.distribution 99 is not a value of "
                 "ProbeDistribution"});
  spec.Clear();
  spec.set_shard_uri(kShard);
  spec.mutable_plan()->mutable_spectral_density()->set_distribution(
      static_cast<v1::ProbeDistribution>(99));
  bad.push_back({spec, "spec.plan.spectral_density.distribution 99"});
  spec.Clear();
  spec.set_shard_uri(kShard);
  spec.mutable_loss_slice()->set_direction(
      static_cast<v1::LossSliceSpec::Direction>(99));
  bad.push_back(
      {spec,
       "spec.loss_slice.direction 99 is not a value of LossSliceSpec.Direction "
       "(DIRECTION_UNSPECIFIED = 0, TOP_EIGENVECTOR = 1, RANDOM = 2)"});
  for (const auto& [bad_spec, message] : bad) {
    SCOPED_TRACE(message);
    v1::Measurement m;
    grpc::Status status = CreateMeasurement(parent, bad_spec, &m);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(status.error_message(), HasSubstr(message));
  }
  EXPECT_EQ(ListAll(parent).measurements_size(), 0);
  EXPECT_EQ(control_->started(), 0);

  v1::CreateCheckpointRequest checkpoint;
  checkpoint.set_parent("runs/r");
  checkpoint.mutable_checkpoint()->set_step(2);
  checkpoint.mutable_checkpoint()->set_format(
      static_cast<v1::CheckpointFormat>(99));
  checkpoint.mutable_checkpoint()->set_digest(
      Upload(testing::SafetensorsNote("weights")));
  grpc::ClientContext context;
  v1::Checkpoint created;
  grpc::Status status = stub_->CreateCheckpoint(&context, checkpoint, &created);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(
      status.error_message(),
      HasSubstr("checkpoint.format 99 is not a value of CheckpointFormat"));
  v1::GetCheckpointRequest get;
  get.set_name("runs/r/checkpoints/2");
  grpc::ClientContext get_context;
  EXPECT_EQ(stub_->GetCheckpoint(&get_context, get, &created).error_code(),
            grpc::StatusCode::NOT_FOUND);

  v1::Measurement m;
  ASSERT_TRUE(CreateMeasurement(parent, SharpnessSpec(), &m).ok());
  EXPECT_EQ(WaitForState(m.name(), v1::Measurement::SUCCEEDED)
                .sharpness()
                .sharpness(),
            10.0);
}

// request_id is a key of the store's index: one over kMaxRequestIdBytes is
// refused before anything is stored; one at the bound is taken and
// deduplicates as any other.
TEST_F(ServiceTest, RequestIdOverTheBoundIsInvalidArgument) {
  const std::string parent = CreateCheckpoint("r", 1);
  v1::Measurement m;
  for (const size_t size : {kMaxRequestIdBytes + 1, size_t{1} << 20}) {
    SCOPED_TRACE(size);
    grpc::Status status =
        CreateMeasurement(parent, SharpnessSpec(), &m, std::string(size, 'x'));
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(status.error_message(),
                HasSubstr(absl::StrCat("request_id has ", size,
                                       " bytes, more than 256")));
  }
  EXPECT_EQ(ListAll(parent).measurements_size(), 0);

  const std::string longest(kMaxRequestIdBytes, 'x');
  v1::Measurement first;
  ASSERT_TRUE(CreateMeasurement(parent, SharpnessSpec(), &first, longest).ok());
  v1::Measurement again;
  ASSERT_TRUE(CreateMeasurement(parent, SharpnessSpec(), &again, longest).ok());
  EXPECT_EQ(again.name(), first.name());
  EXPECT_EQ(ListAll(parent).measurements_size(), 1);
}

// A checkpoint whose first bytes do not match its format, given or the run's
// default, is refused at create, naming checkpoint.format and what the bytes
// are; nothing is stored and the server keeps measuring.
TEST_F(ServiceTest, CheckpointWhoseBytesDoNotMatchItsFormatIsRefused) {
  const std::string parent = CreateCheckpoint("zoo", 1);
  v1::CreateRunRequest archive_run;
  archive_run.set_run_id("archive");
  archive_run.mutable_run()->mutable_model()->set_archive_digest(
      Upload(std::string("PK\x03\x04 an archive", 15)));
  grpc::ClientContext run_context;
  v1::Run run;
  ASSERT_TRUE(stub_->CreateRun(&run_context, archive_run, &run).ok());

  const std::string zip("PK\x03\x04\x14\x00\x00\x00", 8);
  std::string too_long = testing::SafetensorsNote("x");
  too_long[0] = '\x7f';  // a header length beyond the file
  struct Case {
    std::string run_id;
    v1::CheckpointFormat format;
    std::string bytes;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"zoo", v1::CHECKPOINT_FORMAT_UNSPECIFIED, zip,
       "checkpoint.format is CHECKPOINT_FORMAT_SAFETENSORS (the default for "
       "this run) but the content is a zip archive"},
      {"archive", v1::CHECKPOINT_FORMAT_UNSPECIFIED,
       testing::SafetensorsNote("a state dict"),
       "checkpoint.format is CHECKPOINT_FORMAT_TORCHSCRIPT (the default for "
       "this run) but the content is a safetensors file (an 8-byte header "
       "length, then '{'); set checkpoint.format to "
       "CHECKPOINT_FORMAT_SAFETENSORS"},
      {"archive", v1::CHECKPOINT_FORMAT_SAFETENSORS, "weights as text",
       "checkpoint.format is CHECKPOINT_FORMAT_SAFETENSORS but the content is "
       "neither a zip archive"},
      {"archive", v1::CHECKPOINT_FORMAT_TORCHSCRIPT, "weights as text",
       "its first bytes are \"weights a\""},
      {"zoo", v1::CHECKPOINT_FORMAT_SAFETENSORS, too_long,
       "checkpoint.format is CHECKPOINT_FORMAT_SAFETENSORS but the content is "
       "neither"},
      {"zoo", v1::CHECKPOINT_FORMAT_SAFETENSORS, "",
       "but the content is empty"},
      // An enum value this server does not know (a newer client's).
      {"archive", static_cast<v1::CheckpointFormat>(7), zip,
       "checkpoint.format 7 is not a value of CheckpointFormat"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.message);
    v1::CreateCheckpointRequest request;
    request.set_parent("runs/" + c.run_id);
    request.mutable_checkpoint()->set_step(7);
    request.mutable_checkpoint()->set_format(c.format);
    request.mutable_checkpoint()->set_digest(Upload(c.bytes));
    grpc::ClientContext context;
    v1::Checkpoint checkpoint;
    grpc::Status status =
        stub_->CreateCheckpoint(&context, request, &checkpoint);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(status.error_message(), HasSubstr(c.message));
    v1::GetCheckpointRequest get;
    get.set_name("runs/" + c.run_id + "/checkpoints/7");
    grpc::ClientContext get_context;
    EXPECT_EQ(stub_->GetCheckpoint(&get_context, get, &checkpoint).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }

  // The default is recorded on the stored checkpoint; the server still
  // measures.
  const std::string state_dict =
      AddCheckpoint("archive", 2, testing::SafetensorsNote("weights"),
                    v1::CHECKPOINT_FORMAT_SAFETENSORS);
  v1::GetCheckpointRequest get;
  get.set_name(parent);
  grpc::ClientContext get_context;
  v1::Checkpoint stored;
  ASSERT_TRUE(stub_->GetCheckpoint(&get_context, get, &stored).ok());
  EXPECT_EQ(stored.format(), v1::CHECKPOINT_FORMAT_SAFETENSORS);
  v1::Measurement m;
  ASSERT_TRUE(CreateMeasurement(state_dict, SharpnessSpec(), &m).ok());
  EXPECT_EQ(WaitForState(m.name(), v1::Measurement::SUCCEEDED)
                .sharpness()
                .sharpness(),
            10.0);
}

// An exact Hessian over the server's caps is refused at CreateMeasurement,
// alone or in a plan, with a message that names the remedies: a parameter
// block (spec.block), the spectrum without the matrix, the server flags.
TEST_F(ServiceTest, ExactHessianOverTheCapNamesTheRemediesAtCreate) {
  limits_.exact_hessian_max_parameters = 20;  // the 3-4-1 MLP has 21
  limits_.exact_hessian_max_matrix_parameters = 4;
  RestartServer();
  const std::string parent = CreateCheckpoint("r", 1);
  v1::MeasurementSpec single;
  single.set_shard_uri(kShard);
  single.mutable_exact_hessian();
  v1::MeasurementSpec plan;
  plan.set_shard_uri(kShard);
  plan.mutable_plan()->mutable_exact_hessian();
  plan.mutable_plan()->mutable_hessian_trace();
  v1::MeasurementSpec matrix;
  matrix.set_shard_uri(kShard);
  matrix.mutable_exact_hessian()->set_return_matrix(true);
  matrix.mutable_block()->add_prefixes("fc1.");  // 5 parameters
  const std::vector<std::pair<v1::MeasurementSpec, std::vector<std::string>>>
      cases = {
          {single,
           {"21 parameters exceeds the server's cap of 20", "spec.block",
            "--exact_hessian_max_parameters"}},
          {plan,
           {"21 parameters", "spec.block", "--exact_hessian_max_parameters"}},
          {matrix,
           {"matrix of 5 parameters exceeds the server's cap of 4",
            "return_matrix false", "spec.block",
            "--exact_hessian_max_matrix_parameters"}},
      };
  for (const auto& [spec, mentions] : cases) {
    SCOPED_TRACE(mentions[0]);
    v1::Measurement m;
    grpc::Status status = CreateMeasurement(parent, spec, &m);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    for (const std::string& mention : mentions) {
      EXPECT_THAT(status.error_message(), HasSubstr(mention));
    }
  }
  EXPECT_EQ(ListAll(parent).measurements_size(), 0);
  EXPECT_EQ(control_->started(), 0);
  v1::Measurement m;
  ASSERT_TRUE(CreateMeasurement(parent, SharpnessSpec(), &m).ok());
  WaitForState(m.name(), v1::Measurement::SUCCEEDED);
}

// Shards outside the data roots are PERMISSION_DENIED; malformed paths (with
// "..", relative, unknown scheme) are INVALID_ARGUMENT.
TEST_F(ServiceTest, ShardsOutsideTheDataRootsAreRefused) {
  const std::string parent = CreateCheckpoint("r", 1);
  const std::string outside_dir = testing::MakeTempDir();
  std::ofstream(outside_dir + "/shard.safetensors") << "x";
  std::ofstream(data_root_ + "/shard.safetensors") << "x";
  v1::Measurement m;
  v1::MeasurementSpec spec = SharpnessSpec();

  spec.set_shard_uri("file://" + outside_dir + "/shard.safetensors");
  EXPECT_EQ(CreateMeasurement(parent, spec, &m).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  spec.set_shard_uri("file://" + data_root_ + "/../" +
                     std::filesystem::path(outside_dir).filename().string() +
                     "/shard.safetensors");
  EXPECT_EQ(CreateMeasurement(parent, spec, &m).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  spec.set_shard_uri("file://relative/shard.safetensors");
  EXPECT_EQ(CreateMeasurement(parent, spec, &m).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  spec.set_shard_uri("http://example.com/shard");
  EXPECT_EQ(CreateMeasurement(parent, spec, &m).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  spec.set_shard_uri("blob://" + Sha256("not uploaded"));
  EXPECT_EQ(CreateMeasurement(parent, spec, &m).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);

  spec.set_shard_uri("file://" + data_root_ + "/shard.safetensors?limit=4");
  EXPECT_TRUE(CreateMeasurement(parent, spec, &m).ok());
  spec.set_shard_uri("blob://" + Upload("an uploaded shard") + "?limit=4");
  grpc::Status blob = CreateMeasurement(parent, spec, &m);
  EXPECT_TRUE(blob.ok()) << blob.error_message();
}


}  // namespace
}  // namespace curvd::server
