// The llc and llc_calibration kinds at the server's edge, on the fake engine:
// the bad input CreateMeasurement refuses naming the field, the n_beta the
// effective spec states once the run resolved it, and "use the run's latest
// calibration".
#include <cmath>
#include <initializer_list>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/spec_conversion.h"
#include "service_fixture.h"

namespace curvd::server {
namespace {

using ::testing::HasSubstr;

v1::MeasurementSpec LlcSpec() {
  v1::MeasurementSpec spec;
  spec.set_shard_uri(kShard);
  spec.mutable_llc();
  return spec;
}

v1::MeasurementSpec CalibrationSpec(std::initializer_list<double> step_sizes) {
  v1::MeasurementSpec spec;
  spec.set_shard_uri(kShard);
  for (double eps : step_sizes) {
    spec.mutable_llc_calibration()->add_step_sizes(eps);
  }
  spec.mutable_llc_calibration()->add_localizations(10);
  spec.mutable_llc_calibration()->add_localizations(100);
  return spec;
}

// ToCoreRequest's error for `spec`: InvalidArgument naming `field`.
void ExpectInvalid(const v1::MeasurementSpec& spec, const std::string& field) {
  SCOPED_TRACE(spec.ShortDebugString());
  const absl::Status status = ToCoreRequest(spec).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(field));
}

TEST(LlcSpecTest, BadInputIsInvalidArgumentNamingTheField) {
  v1::MeasurementSpec spec = LlcSpec();
  spec.mutable_llc()->set_step_size(0);
  ExpectInvalid(spec, "llc.step_size");
  spec.mutable_llc()->set_step_size(-1e-4);
  ExpectInvalid(spec, "llc.step_size");
  spec = LlcSpec();
  spec.mutable_llc()->set_draws(0);
  ExpectInvalid(spec, "llc.draws");
  spec = LlcSpec();
  spec.mutable_llc()->set_chains(65);
  ExpectInvalid(spec, "llc.chains");
  spec = LlcSpec();
  spec.mutable_llc()->set_n_beta(0);
  ExpectInvalid(spec, "llc.n_beta");
  spec = LlcSpec();
  spec.mutable_llc()->set_n_beta_convention(
      static_cast<v1::LlcSpec::NBetaConvention>(9));
  ExpectInvalid(spec, "llc.n_beta_convention");
  spec = LlcSpec();
  spec.mutable_llc()->set_sampler(static_cast<v1::LlcSpec::Sampler>(17));
  ExpectInvalid(spec, "llc.sampler");
  spec = LlcSpec();
  spec.mutable_llc()->set_on_divergence(
      static_cast<v1::LlcSpec::OnDivergence>(5));
  ExpectInvalid(spec, "llc.on_divergence");
  spec = LlcSpec();
  spec.mutable_llc()->set_trace_cap(1);
  ExpectInvalid(spec, "llc.trace_cap");

  // A grid of 5 x 5 x 3 = 75 cells is over the cap of 64.
  v1::MeasurementSpec grid = CalibrationSpec({1e-6, 1e-5, 1e-4, 1e-3, 1e-2});
  grid.mutable_llc_calibration()->clear_localizations();
  for (double gamma : {1, 3, 10, 30, 100}) {
    grid.mutable_llc_calibration()->add_localizations(gamma);
  }
  for (double n_beta : {1, 2, 3}) {
    grid.mutable_llc_calibration()->add_n_betas(n_beta);
  }
  ExpectInvalid(grid, "llc_calibration.step_sizes");
  grid.mutable_llc_calibration()->clear_n_betas();
  EXPECT_TRUE(ToCoreRequest(grid).ok());  // 25 cells
  grid.mutable_llc_calibration()->add_step_sizes(0);
  ExpectInvalid(grid, "llc_calibration.step_sizes[5]");
  v1::MeasurementSpec base = CalibrationSpec({1e-5, 1e-4});
  base.mutable_llc_calibration()->mutable_base()->set_chains(0);
  ExpectInvalid(base, "llc_calibration.base.chains");
  base.mutable_llc_calibration()->mutable_base()->clear_chains();
  base.mutable_llc_calibration()->mutable_base()->set_use_latest_calibration(
      true);
  ExpectInvalid(base, "llc_calibration.base.use_latest_calibration");
}

TEST_F(ServiceTest, LlcBadInputIsRefusedNamingTheField) {
  const std::string parent = CreateCheckpoint("r", 1);
  v1::MeasurementSpec spec = LlcSpec();
  spec.mutable_llc()->set_step_size(0);
  v1::Measurement m;
  const grpc::Status status = CreateMeasurement(parent, spec, &m);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("llc.step_size"));
  // The server keeps serving.
  ASSERT_TRUE(CreateMeasurement(parent, LlcSpec(), &m).ok());
  WaitForState(m.name(), v1::Measurement::SUCCEEDED);
}

// The effective spec states the convention when created and the value it
// gave once the run resolved it; the result carries the same value.
TEST_F(ServiceTest, LlcEffectiveSpecStatesTheNBetaUsed) {
  const std::string parent = CreateCheckpoint("r", 1);
  v1::MeasurementSpec spec = LlcSpec();
  spec.mutable_llc()->set_chains(3);
  v1::Measurement m;
  ASSERT_TRUE(CreateMeasurement(parent, spec, &m).ok());
  EXPECT_EQ(m.effective_spec().llc().n_beta_convention(), v1::LlcSpec::DATASET);
  EXPECT_FALSE(m.effective_spec().llc().has_n_beta());
  EXPECT_EQ(m.effective_spec().llc().step_size(), core::LlcOptions().step_size);
  const v1::Measurement done = WaitForState(m.name(), v1::Measurement::SUCCEEDED);
  const double n = static_cast<double>(testing::kFakeSamples);
  EXPECT_DOUBLE_EQ(done.llc().n_beta(), n / std::log(n));
  EXPECT_EQ(done.llc().chains_size(), 3);
  EXPECT_EQ(done.effective_spec().llc().n_beta_convention(),
            v1::LlcSpec::DATASET);
  EXPECT_DOUBLE_EQ(done.effective_spec().llc().n_beta(), done.llc().n_beta());
  EXPECT_EQ(done.effective_spec().llc().chains(), 3);
}

TEST_F(ServiceTest, UseLatestCalibrationTakesTheRecommendedCell) {
  const std::string first = CreateCheckpoint("r", 1);
  v1::MeasurementSpec llc = LlcSpec();
  llc.mutable_llc()->set_use_latest_calibration(true);
  v1::Measurement m;
  grpc::Status none = CreateMeasurement(first, llc, &m);
  EXPECT_EQ(none.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(none.error_message(),
              HasSubstr("runs/r has no SUCCEEDED llc_calibration"));

  v1::Measurement calibration;
  ASSERT_TRUE(
      CreateMeasurement(first, CalibrationSpec({1e-5, 1e-4}), &calibration)
          .ok());
  WaitForState(calibration.name(), v1::Measurement::SUCCEEDED);
  // A later one, on another checkpoint of the run, is the latest.
  const std::string second =
      AddCheckpoint("r", 2, testing::SafetensorsNote("weights of step 2"));
  v1::Measurement latest;
  ASSERT_TRUE(
      CreateMeasurement(second, CalibrationSpec({2e-5, 3e-5, 4e-5}), &latest)
          .ok());
  const v1::Measurement calibrated =
      WaitForState(latest.name(), v1::Measurement::SUCCEEDED);
  const v1::LlcCalibrationCell& cell = calibrated.llc_calibration().cells(
      calibrated.llc_calibration().recommended());

  ASSERT_TRUE(CreateMeasurement(first, llc, &m).ok());
  const v1::LlcSpec& used = m.effective_spec().llc();
  EXPECT_TRUE(used.use_latest_calibration());
  EXPECT_EQ(used.calibration(), latest.name());
  EXPECT_EQ(used.step_size(), 4e-5);
  EXPECT_EQ(used.step_size(), cell.step_size());
  EXPECT_EQ(used.localization(), 10);
  EXPECT_EQ(used.n_beta(), cell.n_beta());
  EXPECT_EQ(used.n_beta_convention(), v1::LlcSpec::GIVEN);
  // The worker runs the values fixed at creation.
  const v1::Measurement done = WaitForState(m.name(), v1::Measurement::SUCCEEDED);
  EXPECT_EQ(done.llc().n_beta(), cell.n_beta());
  EXPECT_EQ(done.effective_spec().llc().calibration(), latest.name());

  // A value the calibration gives may not be given too.
  v1::MeasurementSpec both = llc;
  both.mutable_llc()->set_localization(5);
  grpc::Status conflict = CreateMeasurement(first, both, &m);
  EXPECT_EQ(conflict.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(conflict.error_message(), HasSubstr("llc.localization"));

  // A latest calibration without a recommended cell (one step size: no
  // plateau) is FAILED_PRECONDITION, naming it.
  v1::Measurement flat;
  ASSERT_TRUE(CreateMeasurement(second, CalibrationSpec({1e-4}), &flat).ok());
  WaitForState(flat.name(), v1::Measurement::SUCCEEDED);
  grpc::Status no_cell = CreateMeasurement(first, llc, &m);
  EXPECT_EQ(no_cell.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(no_cell.error_message(), HasSubstr(flat.name()));
  EXPECT_THAT(no_cell.error_message(), HasSubstr("recommends no cell"));
}

}  // namespace
}  // namespace curvd::server
