#include "client/measurement_format.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace curvd::client {
namespace {

using ::testing::HasSubstr;
namespace v1 = ::curvd::v1;

v1::Measurement Sharpness() {
  v1::Measurement m;
  m.set_name("runs/r/checkpoints/200/measurements/m1");
  m.mutable_spec()->mutable_sharpness()->set_top_k(2);
  m.set_state(v1::Measurement::SUCCEEDED);
  m.mutable_sharpness()->set_sharpness(12.5);
  auto* top0 = m.mutable_sharpness()->add_top();
  top0->set_value(12.5);
  top0->set_converged(true);
  m.mutable_sharpness()->add_top()->set_value(0.1);
  m.mutable_sharpness()->set_iterations(17);
  m.mutable_diagnostics()->set_loss(0.25);
  m.mutable_diagnostics()->set_num_samples(1024);
  m.mutable_diagnostics()->set_num_parameters(50890);
  m.mutable_diagnostics()->set_hvps(17);
  m.mutable_diagnostics()->set_device("cpu");
  m.mutable_diagnostics()->mutable_compute_duration()->set_seconds(2);
  m.mutable_diagnostics()->mutable_compute_duration()->set_nanos(500000000);
  return m;
}

v1::Measurement FailedTrace() {
  v1::Measurement m;
  m.set_name("runs/r/checkpoints/7/measurements/m2");
  m.mutable_spec()->mutable_hessian_trace();
  m.set_state(v1::Measurement::FAILED);
  m.set_error_code(3);
  m.set_error_message("shard \"x\" has 5 inputs, model wants 4, sorry");
  return m;
}

TEST(StepFromNameTest, ReadsTheCheckpointSegment) {
  EXPECT_EQ(StepFromName("runs/r/checkpoints/42/measurements/x"), 42);
  EXPECT_EQ(StepFromName("runs/r/checkpoints/3"), 3);
  EXPECT_EQ(StepFromName("runs/r"), -1);
  EXPECT_EQ(StepFromName("runs/r/checkpoints/-"), -1);
}

TEST(MeasurementsToCsvTest, HeaderAndRowsWithQuoting) {
  const std::string csv = MeasurementsToCsv({Sharpness(), FailedTrace()});
  std::vector<std::string> lines = absl::StrSplit(csv, '\n');
  ASSERT_EQ(lines.size(), 4u);  // header, two rows, the empty tail
  EXPECT_EQ(lines[0],
            "name,step,kind,state,value,standard_error,top_eigenvalues,"
            "iterations,probes,loss,num_samples,num_parameters,hvps,device,"
            "compute_seconds,error_message");
  EXPECT_EQ(lines[1],
            "runs/r/checkpoints/200/measurements/m1,200,sharpness,SUCCEEDED,"
            "12.5,,12.5;0.10000000000000001,17,,0.25,1024,50890,17,cpu,2.5,");
  // The message has commas and quotes: one quoted field, quotes doubled.
  EXPECT_EQ(
      lines[2],
      "runs/r/checkpoints/7/measurements/m2,7,hessian_trace,FAILED,,,,,,,,"
      ",,,,\"shard \"\"x\"\" has 5 inputs, model wants 4, sorry\"");
  EXPECT_EQ(lines[3], "");
}

TEST(MeasurementsToJsonTest, IsTheProtoMappingAndRoundTrips) {
  auto json = MeasurementsToJson({Sharpness(), FailedTrace()});
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_THAT(*json, HasSubstr("\"state\": \"SUCCEEDED\""));
  EXPECT_THAT(*json, HasSubstr("\"sharpness\": 12.5"));
  EXPECT_THAT(*json, HasSubstr("\"numParameters\": \"50890\""));
  EXPECT_THAT(*json, HasSubstr("\"computeDuration\": \"2.500s\""));
  v1::ListMeasurementsResponse parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(*json, &parsed).ok());
  ASSERT_EQ(parsed.measurements_size(), 2);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(
      parsed.measurements(0), Sharpness()));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(
      parsed.measurements(1), FailedTrace()));
}

TEST(MeasurementsToTableTest, ShowsValuesAndErrors) {
  const std::string table = MeasurementsToTable({Sharpness(), FailedTrace()});
  std::vector<std::string> lines =
      absl::StrSplit(table, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_THAT(lines[0], HasSubstr("STEP"));
  EXPECT_THAT(lines[1], HasSubstr("12.5"));
  EXPECT_THAT(lines[1], HasSubstr("top 12.5 0.1"));
  EXPECT_THAT(lines[2], HasSubstr("FAILED"));
  EXPECT_THAT(lines[2], HasSubstr("model wants 4"));
  // Columns line up: KIND starts at the same offset in every line.
  EXPECT_EQ(lines[0].find("KIND"), lines[1].find("sharpness"));
  EXPECT_EQ(lines[0].find("KIND"), lines[2].find("hessian_trace"));
}

TEST(MeasurementSummaryTest, SaysWhatAPersonWantsToSee) {
  EXPECT_EQ(MeasurementSummary(Sharpness()), "sharpness 12.5 (top 12.5 0.1)");
  v1::Measurement trace;
  trace.mutable_spec()->mutable_hessian_trace();
  trace.set_state(v1::Measurement::SUCCEEDED);
  trace.mutable_hessian_trace()->set_trace(300);
  trace.mutable_hessian_trace()->set_standard_error(4.5);
  EXPECT_EQ(MeasurementSummary(trace), "trace 300 ± 4.5");
  EXPECT_THAT(MeasurementSummary(FailedTrace()),
              HasSubstr("hessian_trace FAILED: shard"));
}

TEST(RunsToTableTest, ListsModelAndCount) {
  v1::Run run;
  run.set_name("runs/fmnist");
  run.mutable_model()->mutable_zoo()->set_architecture("mlp");
  run.mutable_model()->mutable_zoo()->add_layer_widths(784);
  run.mutable_model()->mutable_zoo()->add_layer_widths(10);
  run.set_checkpoint_count(4);
  const std::string table = RunsToTable({run});
  EXPECT_THAT(table, HasSubstr("runs/fmnist"));
  EXPECT_THAT(table, HasSubstr("mlp:784,10:tanh"));
  EXPECT_THAT(table, HasSubstr("  4"));
}

}  // namespace
}  // namespace curvd::client
