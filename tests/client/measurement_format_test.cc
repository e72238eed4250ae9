#include "client/measurement_format.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace curvd::client {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
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

// The fields of a CSV line without quoted commas.
std::vector<std::string> Fields(const std::string& line) {
  return absl::StrSplit(line, ',');
}

// The value of `column` in the row, by the header's names.
std::string Column(const std::string& csv, int row, const std::string& column) {
  std::vector<std::string> lines = absl::StrSplit(csv, '\n');
  const std::vector<std::string> header = Fields(lines[0]);
  const std::vector<std::string> fields = Fields(lines[row]);
  for (size_t i = 0; i < header.size() && i < fields.size(); ++i) {
    if (header[i] == column) return fields[i];
  }
  ADD_FAILURE() << "no column " << column;
  return "";
}

// A succeeded measurement of each issue-5 kind and a plan of three.
std::vector<v1::Measurement> NewKinds() {
  std::vector<v1::Measurement> ms(8);
  for (size_t i = 0; i < ms.size(); ++i) {
    ms[i].set_name("runs/r/checkpoints/5/measurements/n" + std::to_string(i));
    ms[i].set_state(v1::Measurement::SUCCEEDED);
    ms[i].mutable_diagnostics()->set_device("cpu");
  }
  ms[0].mutable_spec()->mutable_spectral_density();
  auto* density = ms[0].mutable_spectral_density();
  density->add_runs();
  density->add_grid(0);
  density->set_sigma(0.25);
  auto* x = density->add_estimates();
  x->set_function("x");
  x->set_trace(96);
  x->set_standard_error(3);
  auto* rank = density->add_estimates();
  rank->set_function("1{|x|>t}");
  rank->set_trace(40);
  ms[1].mutable_spec()->mutable_hutchpp();
  ms[1].mutable_hutchpp()->set_trace(95);
  ms[1].mutable_hutchpp()->set_standard_error(0.5);
  ms[1].mutable_hutchpp()->set_sketch_size(100);
  ms[1].mutable_hutchpp()->set_sketch_frobenius_fraction(0.125);
  ms[1].mutable_hutchpp()->set_hutchinson_standard_error_same_hvps(2.5);
  ms[2].mutable_spec()->mutable_trace_h3();
  ms[2].mutable_trace_h3()->set_trace(7000);
  ms[2].mutable_trace_h3()->set_standard_error(70);
  ms[2].mutable_trace_h3()->set_probes(30);
  ms[3].mutable_spec()->mutable_loss_expansion();
  auto* e = ms[3].mutable_loss_expansion();
  e->set_first_order_term(-0.5);
  e->set_second_order_term(0.25);
  e->set_noise_term(0.125);
  e->set_noise_term_standard_error(0.01);
  e->set_total(-0.125);
  e->set_total_standard_error(0.01);
  ms[4].mutable_spec()->mutable_exact_hessian();
  auto* exact = ms[4].mutable_exact_hessian();
  for (double v : {-1.0, 0.0, 10.0}) exact->add_eigenvalues(v);
  exact->set_rank(2);
  exact->set_positive(1);
  exact->set_negative(1);
  exact->set_condition_number(10);
  exact->set_rank_clear_cut(false);
  exact->set_rank_gap_decades(0.125);
  exact->set_rank_at_tenth_tolerance(3);
  exact->set_rank_at_tenfold_tolerance(1);
  ms[5].mutable_spec()->mutable_power_iteration();
  ms[5].mutable_power_iteration()->add_pairs()->set_value(10);
  ms[5].mutable_power_iteration()->add_pairs()->set_value(-4);
  ms[5].mutable_power_iteration()->set_converged(true);
  ms[6].mutable_spec()->mutable_loss_slice();
  auto* slice = ms[6].mutable_loss_slice();
  for (double t : {-1.0, 0.0, 1.0}) slice->add_t(t);
  for (double l : {1.5, 0.5, 1.25}) slice->add_loss(l);
  slice->set_direction("top eigenvector");
  slice->set_eigenvalue(10);
  slice->set_direction_curvature(9.5);
  ms[7].mutable_spec()->mutable_plan()->mutable_hessian_trace();
  ms[7].mutable_diagnostics()->set_operator_(v1::OPERATOR_GGN);
  ms[7].mutable_plan()->mutable_hessian_trace()->set_trace(42);
  ms[7].mutable_plan()->mutable_hessian_trace()->set_standard_error(0.5);
  ms[7].mutable_plan()->mutable_trace_h3()->set_trace(900);
  ms[7].mutable_plan()->mutable_exact_hessian()->set_rank(3);
  ms[7].mutable_plan()->mutable_exact_hessian()->add_eigenvalues(2);
  return ms;
}

TEST(MeasurementsToCsvTest, EachKindFillsItsScalarColumns) {
  const std::string csv = MeasurementsToCsv(NewKinds());
  std::vector<std::string> lines = absl::StrSplit(csv, '\n');
  ASSERT_EQ(lines.size(), 10u);
  for (int row = 1; row <= 8; ++row) {
    EXPECT_EQ(Fields(lines[row]).size(), Fields(lines[0]).size()) << row;
  }
  EXPECT_EQ(Column(csv, 1, "kind"), "spectral_density");
  EXPECT_EQ(Column(csv, 1, "value"), "96");
  EXPECT_EQ(Column(csv, 1, "density_trace_standard_error"), "3");
  EXPECT_EQ(Column(csv, 1, "density_rank"), "40");
  EXPECT_EQ(Column(csv, 1, "density_sigma"), "0.25");
  EXPECT_EQ(Column(csv, 2, "hutchpp_trace"), "95");
  EXPECT_EQ(Column(csv, 2, "sketch_frobenius_fraction"), "0.125");
  EXPECT_EQ(Column(csv, 2, "hutchinson_standard_error_same_hvps"), "2.5");
  EXPECT_EQ(Column(csv, 2, "standard_error"), "0.5");
  EXPECT_EQ(Column(csv, 3, "trace_h3"), "7000");
  EXPECT_EQ(Column(csv, 3, "trace_h3_standard_error"), "70");
  EXPECT_EQ(Column(csv, 4, "noise_term"), "0.125");
  EXPECT_EQ(Column(csv, 4, "total"), "-0.125");
  EXPECT_EQ(Column(csv, 4, "value"), "-0.125");
  EXPECT_EQ(Column(csv, 5, "rank"), "2");
  EXPECT_EQ(Column(csv, 5, "max_eigenvalue"), "10");
  EXPECT_EQ(Column(csv, 5, "min_eigenvalue"), "-1");
  EXPECT_EQ(Column(csv, 5, "condition_number"), "10");
  EXPECT_EQ(Column(csv, 5, "rank_clear_cut"), "false");
  EXPECT_EQ(Column(csv, 5, "rank_gap_decades"), "0.125");
  // A result stored before the cut was judged leaves both empty.
  EXPECT_EQ(Column(csv, 8, "rank_clear_cut"), "");
  EXPECT_EQ(Column(csv, 6, "power_eigenvalues"), "10;-4");
  EXPECT_EQ(Column(csv, 7, "slice_curvature"), "9.5");
  EXPECT_EQ(Column(csv, 7, "slice_eigenvalue"), "10");
  // A plan: no headline, each result in its kind's columns.
  EXPECT_EQ(Column(csv, 8, "kind"), "plan");
  EXPECT_EQ(Column(csv, 8, "value"), "");
  EXPECT_EQ(Column(csv, 8, "operator"), "ggn");
  EXPECT_EQ(Column(csv, 8, "trace"), "42");
  EXPECT_EQ(Column(csv, 8, "trace_standard_error"), "0.5");
  EXPECT_EQ(Column(csv, 8, "trace_h3"), "900");
  EXPECT_EQ(Column(csv, 8, "rank"), "3");
  EXPECT_EQ(Column(csv, 8, "max_eigenvalue"), "2");
  EXPECT_EQ(Column(csv, 8, "sharpness"), "");
}

// A spectral density whose rank estimate has systematic bounds.
v1::Measurement DensityWithRank(bool unreliable) {
  v1::Measurement m;
  m.set_name("runs/r/checkpoints/5/measurements/d");
  m.set_state(v1::Measurement::SUCCEEDED);
  m.mutable_spec()->mutable_spectral_density();
  auto* density = m.mutable_spectral_density();
  auto* rank = density->add_estimates();
  rank->set_function("1{|x|>t}");
  rank->set_trace(unreliable ? 2000 : 101.5);
  rank->set_standard_error(4.5);
  density->set_threshold_rule("t = sqrt(eps) * max |Ritz value| = ...");
  density->set_rank_lower(unreliable ? 98 : 101);
  density->set_rank_upper(unreliable ? 2000 : 102);
  density->set_rank_unreliable(unreliable);
  return m;
}

TEST(MeasurementsToCsvTest, DensityRankShowsItsBoundsOrNoNumber) {
  const std::string csv =
      MeasurementsToCsv({DensityWithRank(false), DensityWithRank(true)});
  EXPECT_EQ(Column(csv, 1, "density_rank"), "101.5");
  EXPECT_EQ(Column(csv, 1, "density_rank_standard_error"), "4.5");
  EXPECT_EQ(Column(csv, 1, "density_rank_lower"), "101");
  EXPECT_EQ(Column(csv, 1, "density_rank_upper"), "102");
  EXPECT_EQ(Column(csv, 1, "density_rank_unreliable"), "false");
  // Unreliable: no number stands for the rank, only its bounds.
  EXPECT_EQ(Column(csv, 2, "density_rank"), "");
  EXPECT_EQ(Column(csv, 2, "density_rank_lower"), "98");
  EXPECT_EQ(Column(csv, 2, "density_rank_upper"), "2000");
  EXPECT_EQ(Column(csv, 2, "density_rank_unreliable"), "true");
  EXPECT_THAT(MeasurementSummary(DensityWithRank(false)),
              HasSubstr("rank ~101.5 ± 4.5 (systematic 101..102)"));
  EXPECT_THAT(MeasurementSummary(DensityWithRank(true)),
              HasSubstr("rank UNRELIABLE: anywhere in 98..2000"));
}

TEST(MeasurementsToTableTest, ShowsEachKindAndAPlansResults) {
  const std::string table = MeasurementsToTable(NewKinds());
  std::vector<std::string> lines =
      absl::StrSplit(table, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 1u + 8u + 3u);  // header, 8 rows, 3 plan results
  EXPECT_THAT(lines[1], HasSubstr("± 3 (tr(H); 1 runs, 1 grid points"));
  EXPECT_THAT(lines[1], HasSubstr("rank ~40"));
  EXPECT_THAT(lines[2], HasSubstr("95"));
  EXPECT_THAT(lines[2], HasSubstr("sketch 100"));
  EXPECT_THAT(lines[3], HasSubstr("7000"));
  EXPECT_THAT(lines[4], HasSubstr("-0.125"));
  EXPECT_THAT(lines[4], HasSubstr("noise 0.125"));
  EXPECT_THAT(lines[5], HasSubstr("rank 2 of 3 (1 positive, 1 negative)"));
  EXPECT_THAT(lines[5],
              HasSubstr("NOT clear-cut (gap 0.125 decades, rank 3..1 over a "
                        "decade of tolerance either side)"));
  EXPECT_THAT(lines[6], HasSubstr("top 10 -4"));
  EXPECT_THAT(lines[7], HasSubstr("3 points on [-1, 1], loss 0.5..1.5"));
  EXPECT_THAT(lines[8], HasSubstr("plan"));
  EXPECT_THAT(lines[9], HasSubstr("  hessian_trace"));
  EXPECT_THAT(lines[9], HasSubstr("42"));
  EXPECT_THAT(lines[10], HasSubstr("  trace_h3"));
  EXPECT_THAT(lines[11], HasSubstr("  exact_hessian"));
}

TEST(MeasurementSummaryTest, NamesEachKindAndEachResultOfAPlan) {
  const std::vector<v1::Measurement> ms = NewKinds();
  EXPECT_EQ(MeasurementSummary(ms[2]), "trace_h3 7000 ± 70 (30 probes)");
  EXPECT_EQ(MeasurementSummary(ms[5]), "power_iteration 10 (top 10 -4)");
  EXPECT_THAT(MeasurementSummary(ms[7]),
              StartsWith("plan: hessian_trace 42 ± 0.5 (0 probes); trace_h3 "
                         "900"));
}

// An adaptive trace reads like Hutch++'s, with the method it chose; its
// decision is a note under the table.
TEST(MeasurementSummaryTest, AdaptiveTraceSaysWhichMethodRan) {
  v1::Measurement m;
  m.set_name("runs/r/checkpoints/5/measurements/a");
  m.set_state(v1::Measurement::SUCCEEDED);
  m.mutable_spec()->mutable_adaptive_trace();
  auto* a = m.mutable_adaptive_trace();
  a->set_trace(120);
  a->set_standard_error(1.5);
  a->set_method("hutch++");
  a->set_decision("predicted remaining products: hutchinson 400");
  a->set_sketch_size(16);
  a->set_probes(20);
  a->set_hvps(52);
  a->set_stop_reason("target_standard_error");
  a->set_sketch_frobenius_fraction(0.75);
  EXPECT_EQ(MeasurementSummary(m),
            "adaptive_trace 120 ± 1.5 (hutch++: sketch 16 + 20 probes, 52 "
            "HVPs; sketch holds 75% of |H|_F^2; stop target_standard_error)");
  const std::string csv = MeasurementsToCsv({m});
  EXPECT_EQ(Column(csv, 1, "value"), "120");
  EXPECT_EQ(Column(csv, 1, "standard_error"), "1.5");
  EXPECT_EQ(Column(csv, 1, "adaptive_trace"), "120");
  EXPECT_EQ(Column(csv, 1, "adaptive_trace_standard_error"), "1.5");
  EXPECT_EQ(Column(csv, 1, "adaptive_trace_method"), "hutch++");
  EXPECT_EQ(Column(csv, 1, "adaptive_trace_hvps"), "52");
  EXPECT_EQ(Column(csv, 1, "adaptive_trace_sketch_frobenius_fraction"), "0.75");
  EXPECT_EQ(Column(csv, 1, "probes"), "20");
  EXPECT_THAT(MeasurementsToTable({m}),
              HasSubstr("adaptive_trace chose hutch++: predicted remaining "
                        "products: hutchinson 400"));

  a->set_method("hutchinson");
  a->set_sketch_size(0);
  a->set_probes(44);
  EXPECT_THAT(MeasurementSummary(m),
              HasSubstr("(hutchinson: 44 probes, 52 HVPs;"));
}

TEST(MeasurementSummaryTest, ExactHessianRankSaysHowClearItsCutIs) {
  v1::Measurement m;
  m.mutable_spec()->mutable_exact_hessian();
  m.set_state(v1::Measurement::SUCCEEDED);
  auto* exact = m.mutable_exact_hessian();
  for (double v : {0.0, 2.0}) exact->add_eigenvalues(v);
  exact->set_rank(1);
  exact->set_positive(1);
  exact->set_condition_number(1);
  // Stored before the cut was judged: nothing said about it.
  EXPECT_EQ(MeasurementSummary(m),
            "exact_hessian 2 (min 0, rank 1 of 2 (1 positive, 0 negative), "
            "condition 1)");
  exact->set_rank_clear_cut(true);
  exact->set_rank_gap_decades(3.5);
  EXPECT_EQ(MeasurementSummary(m),
            "exact_hessian 2 (min 0, rank 1 of 2 (1 positive, 0 negative), "
            "clear (gap 3.5 decades), condition 1)");
}

TEST(MeasurementsToJsonTest, KeepsTheArrays) {
  auto json = MeasurementsToJson(NewKinds());
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_THAT(*json, HasSubstr("\"spectralDensity\""));
  EXPECT_THAT(*json, HasSubstr("\"eigenvalues\": ["));
  EXPECT_THAT(*json, HasSubstr("\"plan\": {"));
  EXPECT_THAT(*json, HasSubstr("\"traceH3\""));
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
  // The original columns first, so that older scripts keep working.
  EXPECT_THAT(lines[0],
              StartsWith("name,step,kind,state,value,standard_error,"
                         "top_eigenvalues,iterations,probes,loss,num_samples,"
                         "num_parameters,hvps,device,compute_seconds,"
                         "error_message,operator,sharpness,trace,"));
  EXPECT_THAT(lines[1],
              StartsWith("runs/r/checkpoints/200/measurements/m1,200,"
                         "sharpness,SUCCEEDED,12.5,,12.5;0.10000000000000001,"
                         "17,,0.25,1024,50890,17,cpu,2.5,,hessian,12.5,,"));
  // The message has commas and quotes: one quoted field, quotes doubled.
  EXPECT_THAT(
      lines[2],
      StartsWith("runs/r/checkpoints/7/measurements/m2,7,hessian_trace,FAILED,"
                 ",,,,,,,,,,,\"shard \"\"x\"\" has 5 inputs, model wants 4, "
                 "sorry\",,,"));
  EXPECT_EQ(Fields(lines[1]).size(), Fields(lines[0]).size());
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
  trace.mutable_hessian_trace()->set_probes(20);
  EXPECT_EQ(MeasurementSummary(trace), "hessian_trace 300 ± 4.5 (20 probes)");
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
  run.set_creator("trainer-a");
  const std::string table = RunsToTable({run});
  EXPECT_THAT(table, HasSubstr("runs/fmnist"));
  EXPECT_THAT(table, HasSubstr("mlp:784,10:tanh"));
  EXPECT_THAT(table, HasSubstr("  4"));
  EXPECT_THAT(table, HasSubstr("CREATOR"));
  EXPECT_THAT(table, HasSubstr("trainer-a"));
}

v1::Checkpoint CheckpointAt(int64_t step, double train_loss) {
  v1::Checkpoint checkpoint;
  checkpoint.set_name("runs/r/checkpoints/" + std::to_string(step));
  checkpoint.set_step(step);
  checkpoint.set_train_loss(train_loss);
  return checkpoint;
}

TEST(MeasurementsToCsvTest, LastColumnIsTheTrainersLossOfTheCheckpoint) {
  const std::string csv = MeasurementsToCsv({Sharpness(), FailedTrace()},
                                            {CheckpointAt(200, 0.75)});
  std::vector<std::string> lines = absl::StrSplit(csv, '\n');
  EXPECT_EQ(Fields(lines[0]).back(), "train_loss");
  EXPECT_EQ(Column(csv, 1, "train_loss"), "0.75");
  EXPECT_EQ(Column(csv, 2, "train_loss"), "");  // step 7 is not listed
  EXPECT_EQ(Fields(lines[1]).size(), Fields(lines[0]).size());
}

// A SUCCEEDED measurement `id` of checkpoint `step`, of no kind yet, created
// at `seconds`, with loss `loss` on `shard`.
v1::Measurement At(int64_t step, const std::string& id, int64_t seconds,
                   double loss, const std::string& shard = "builtin://a") {
  v1::Measurement m;
  m.set_name(absl::StrCat("runs/r/checkpoints/", step, "/measurements/", id));
  m.set_state(v1::Measurement::SUCCEEDED);
  m.mutable_spec()->set_shard_uri(shard);
  m.mutable_create_time()->set_seconds(seconds);
  m.mutable_diagnostics()->set_loss(loss);
  return m;
}

v1::Measurement SharpnessAt(int64_t step, const std::string& id,
                            int64_t seconds, double sharpness) {
  v1::Measurement m = At(step, id, seconds, 0.5);
  m.mutable_spec()->mutable_sharpness();
  m.mutable_sharpness()->set_sharpness(sharpness);
  return m;
}

TEST(MeasurementsToWideCsvTest, OneRowPerCheckpointOneColumnPerScalar) {
  std::vector<v1::Measurement> ms;
  // Step 5: the latest sharpness wins whatever the list order; a FAILED one
  // created later is left out.
  ms.push_back(SharpnessAt(5, "late", 30, 13));
  ms.push_back(SharpnessAt(5, "early", 10, 12));
  v1::Measurement failed = SharpnessAt(5, "failed", 40, 99);
  failed.set_state(v1::Measurement::FAILED);
  ms.push_back(failed);
  // A plan at step 5: its trace counts as a hessian_trace measurement, and
  // the loss is the latest measurement's.
  v1::Measurement plan = At(5, "plan", 20, 0.25);
  plan.mutable_spec()->mutable_plan();
  plan.mutable_plan()->mutable_hessian_trace()->set_trace(42);
  plan.mutable_plan()->mutable_hessian_trace()->set_standard_error(0.5);
  ms.push_back(plan);
  // A loss expansion fills trace_h3 only where no trace_h3 was measured.
  v1::Measurement expansion = At(5, "expansion", 50, 0.375);
  expansion.mutable_spec()->mutable_loss_expansion();
  expansion.mutable_loss_expansion()->set_total(-0.125);
  expansion.mutable_loss_expansion()->mutable_trace_h3()->set_trace(900);
  ms.push_back(expansion);
  v1::Measurement h3 = At(5, "h3", 5, 0.5);
  h3.mutable_spec()->mutable_trace_h3();
  h3.mutable_trace_h3()->set_trace(7000);
  ms.push_back(h3);
  // Step 3 on two shards: two rows, never mixed.
  ms.push_back(SharpnessAt(3, "train", 1, 2));
  v1::Measurement test_shard = At(3, "test", 2, 0.875, "builtin://b");
  test_shard.mutable_spec()->mutable_sharpness();
  test_shard.mutable_sharpness()->set_sharpness(3);
  ms.push_back(test_shard);

  const std::string csv = MeasurementsToWideCsv(
      ms,
      {CheckpointAt(3, 1.5), CheckpointAt(5, 1.25), CheckpointAt(9, 0.125)});
  std::vector<std::string> lines = absl::StrSplit(csv, '\n');
  ASSERT_EQ(lines.size(), 6u) << csv;  // header, 4 rows, the empty tail
  // Only the scalars measured, in the kind table's order.
  EXPECT_EQ(lines[0],
            "step,shard,operator,block,train_loss,loss,sharpness,trace,"
            "trace_standard_error,trace_h3,trace_h3_standard_error,"
            "first_order_term,second_order_term,noise_term,"
            "noise_term_standard_error,total,total_standard_error");
  EXPECT_EQ(Column(csv, 1, "step"), "3");
  EXPECT_EQ(Column(csv, 1, "shard"), "builtin://a");
  EXPECT_EQ(Column(csv, 1, "sharpness"), "2");
  EXPECT_EQ(Column(csv, 1, "train_loss"), "1.5");
  EXPECT_EQ(Column(csv, 2, "shard"), "builtin://b");
  EXPECT_EQ(Column(csv, 2, "sharpness"), "3");
  EXPECT_EQ(Column(csv, 2, "loss"), "0.875");
  EXPECT_EQ(Column(csv, 3, "step"), "5");
  EXPECT_EQ(Column(csv, 3, "operator"), "hessian");
  EXPECT_EQ(Column(csv, 3, "train_loss"), "1.25");
  EXPECT_EQ(Column(csv, 3, "loss"), "0.375");
  EXPECT_EQ(Column(csv, 3, "sharpness"), "13");
  EXPECT_EQ(Column(csv, 3, "trace"), "42");
  EXPECT_EQ(Column(csv, 3, "trace_standard_error"), "0.5");
  EXPECT_EQ(Column(csv, 3, "trace_h3"), "7000");
  EXPECT_EQ(Column(csv, 3, "total"), "-0.125");
  EXPECT_EQ(lines[4], "9,,,,0.125,,,,,,,,,,,,");
}

TEST(MeasurementsToWideCsvTest, OperatorsAndBlocksGetRowsOfTheirOwn) {
  v1::Measurement ggn = SharpnessAt(1, "ggn", 1, 4);
  ggn.mutable_diagnostics()->set_operator_(v1::OPERATOR_GGN);
  v1::Measurement block = SharpnessAt(1, "block", 2, 5);
  block.mutable_spec()->mutable_block()->add_names("fc1.bias");
  block.mutable_spec()->mutable_block()->add_prefixes("fc0.");
  const std::string csv =
      MeasurementsToWideCsv({SharpnessAt(1, "all", 0, 6), ggn, block}, {});
  std::vector<std::string> lines = absl::StrSplit(csv, '\n');
  ASSERT_EQ(lines.size(), 5u) << csv;
  EXPECT_EQ(lines[1], "1,builtin://a,ggn,,,0.5,4");
  EXPECT_EQ(lines[2], "1,builtin://a,hessian,,,0.5,6");
  EXPECT_EQ(lines[3], "1,builtin://a,hessian,fc1.bias;fc0.*,,0.5,5");
}

// An llc measurement of two chains with three stored points each (stride 2),
// whose effective spec states the settings, and a warning.
v1::Measurement Llc() {
  v1::Measurement m;
  m.set_name("runs/r/checkpoints/300/measurements/l1");
  m.mutable_spec()->mutable_llc();
  v1::LlcSpec* spec = m.mutable_effective_spec()->mutable_llc();
  spec->set_sampler(v1::LlcSpec::SGLD);
  spec->set_step_size(1e-4);
  spec->set_localization(100);
  spec->set_draws(6);
  m.set_state(v1::Measurement::SUCCEEDED);
  v1::LlcResult* r = m.mutable_llc();
  r->set_llc_mean(12.5);
  r->set_llc_standard_error(0.75);
  r->set_n_beta(3.5);
  r->set_trace_stride(2);
  r->set_r_hat(1.02);
  r->set_effective_sample_size(40);
  for (int c = 0; c < 2; ++c) {
    v1::LlcChain* chain = r->add_chains();
    for (int i = 0; i < 3; ++i) {
      chain->add_loss_trace(0.5 + c + 0.125 * i);
      chain->add_llc_running_mean(12 + c);
      chain->add_distance_trace(0.25 * i);
    }
  }
  r->set_chains_diverged(1);
  r->mutable_chains(1)->set_diverged(true);
  r->add_warnings("chain 1 diverged at step 40");
  return m;
}

// A per-layer gradient-covariance GOP of a two-layer model.
v1::Measurement Gop() {
  v1::Measurement m;
  m.set_name("runs/r/checkpoints/400/measurements/g1");
  m.mutable_spec()->mutable_gop()->set_per_layer(true);
  m.set_state(v1::Measurement::SUCCEEDED);
  v1::GopResult* r = m.mutable_gop();
  r->set_variant(v1::GopSpec::GRADIENT_COVARIANCE);
  r->set_num_samples(64);
  r->set_num_parameters(21);
  r->set_path("fast");
  const auto metrics = [](v1::GopMetrics* g, int64_t size, double trace) {
    g->set_size(size);
    g->set_trace(trace);
    g->set_spectral_norm(trace / 2);
    g->set_rank(3);
    g->set_effective_rank(2.5);
    g->add_top_eigenvalues(trace / 2);
    g->add_top_eigenvalues(trace / 4);
    g->set_rank_rule("lambda > 64 * eps_float64 * lambda_max");
  };
  metrics(r->mutable_metrics(), 21, 8);
  v1::GopLayer* fc0 = r->add_layers();
  fc0->set_name("fc0");
  fc0->set_size(16);
  fc0->set_trace_share(0.75);
  metrics(fc0->mutable_metrics(), 16, 6);
  v1::GopLayer* fc1 = r->add_layers();
  fc1->set_name("fc1");
  fc1->set_size(5);
  fc1->set_trace_share(0.25);
  metrics(fc1->mutable_metrics(), 5, 2);
  r->mutable_gradient_norms()->set_mean(2.5);
  for (double level : {0.0, 0.5, 1.0}) {
    r->mutable_gradient_norms()->add_quantile_levels(level);
    r->mutable_gradient_norms()->add_quantiles(1 + 2 * level);
  }
  r->set_signal_to_noise(0.125);
  return m;
}

TEST(GopFormatTest, TheTableHasTheModelAndEachLayerAndTheCsvItsMetrics) {
  const std::string table = MeasurementsToTable({Gop()});
  EXPECT_THAT(table, HasSubstr("g1 gop:"));
  std::vector<std::string> lines = absl::StrSplit(table, '\n');
  const auto line_of = [&lines](const std::string& start) -> std::string {
    for (const std::string& line : lines) {
      if (absl::StartsWith(absl::StripLeadingAsciiWhitespace(line), start)) {
        return line;
      }
    }
    return "";
  };
  EXPECT_THAT(line_of("block "), HasSubstr("trace"));
  EXPECT_THAT(line_of("(model) "), HasSubstr(" 21 "));
  EXPECT_THAT(line_of("(model) "), HasSubstr(" 8 "));
  EXPECT_THAT(line_of("fc0 "), HasSubstr(" 16 "));
  EXPECT_THAT(line_of("fc0 "), HasSubstr(" 0.75 "));
  EXPECT_THAT(line_of("fc1 "), HasSubstr(" 0.25 "));
  EXPECT_THAT(table, HasSubstr("top eigenvalues: 4 2"));
  EXPECT_THAT(table, HasSubstr("per-sample gradient norms: mean 2.5, q0 1, "
                               "q0.5 2, q1 3"));
  EXPECT_THAT(table, HasSubstr("signal-to-noise ||g-bar||^2 / tr(Sigma): "
                               "0.125"));
  // Without per_layer, no layer lines.
  v1::Measurement whole = Gop();
  whole.mutable_gop()->clear_layers();
  EXPECT_THAT(MeasurementsToTable({whole}), ::testing::Not(HasSubstr("fc0")));
  EXPECT_THAT(MeasurementSummary(Gop()),
              StartsWith("gop 8 (gradient_covariance, N 64, rank 3 of 21"));
  EXPECT_THAT(MeasurementSummary(Gop()), HasSubstr(", fast path"));
  const std::string csv = MeasurementsToCsv({Gop()});
  EXPECT_EQ(Column(csv, 1, "kind"), "gop");
  EXPECT_EQ(Column(csv, 1, "value"), "8");
  EXPECT_EQ(Column(csv, 1, "gop_trace"), "8");
  EXPECT_EQ(Column(csv, 1, "gop_rank"), "3");
  EXPECT_EQ(Column(csv, 1, "gop_effective_rank"), "2.5");
  EXPECT_EQ(Column(csv, 1, "gop_signal_to_noise"), "0.125");
  EXPECT_EQ(Column(csv, 1, "top_eigenvalues"), "4;2");
  absl::StatusOr<std::string> json = MeasurementsToJson({Gop()});
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_THAT(*json, HasSubstr("traceShare"));
  EXPECT_THAT(*json, HasSubstr("signalToNoise"));
}

TEST(GopFormatTest, TheHessianOverlapHasALineTwoCsvColumnsAndJson) {
  v1::Measurement m = Gop();
  EXPECT_EQ(Column(MeasurementsToCsv({m}), 1, "gop_hessian_overlap"), "");
  EXPECT_THAT(MeasurementsToTable({m}),
              ::testing::Not(HasSubstr("Hessian overlap")));
  v1::GopHessianOverlap* o = m.mutable_gop()->mutable_hessian_overlap();
  o->set_k(2);
  o->set_gop_dimension(2);
  o->set_hessian_dimension(2);
  o->set_overlap(0.5);
  o->set_random_baseline(0.125);
  o->add_cosines(1);
  o->add_cosines(0);
  o->add_hessian_eigenpairs()->set_value(6);
  o->add_hessian_eigenpairs()->set_value(2.5);
  o->set_lanczos_iterations(5);
  o->set_lanczos_converged(true);
  EXPECT_THAT(MeasurementsToTable({m}),
              HasSubstr("Hessian overlap (k 2: GOP 2 vs Hessian 2 "
                        "directions): 0.5 (random 0.125), cosines 1 0; "
                        "Hessian eigenvalues 6 2.5 (Lanczos 5 steps)"));
  const std::string csv = MeasurementsToCsv({m});
  EXPECT_EQ(Column(csv, 1, "gop_hessian_overlap"), "0.5");
  EXPECT_EQ(Column(csv, 1, "gop_hessian_overlap_random"), "0.125");
  absl::StatusOr<std::string> json = MeasurementsToJson({m});
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_THAT(*json, HasSubstr("hessianOverlap"));
}

TEST(LlcFormatTest, TheTableSaysLambdaHatWithItsSettingsDiagnosticsAndWarnings) {
  const std::string table = MeasurementsToTable({Llc()});
  EXPECT_THAT(table, HasSubstr("l1 llc:"));
  EXPECT_THAT(table,
              HasSubstr("  lambda_hat = 12.5 ± 0.75 (2 chains, 6 draws, sgld, "
                        "eps 0.0001, gamma 100, n_beta 3.5)\n"));
  EXPECT_THAT(table, HasSubstr("R-hat 1.02, ESS 40, 1 of 2 chains diverged"));
  EXPECT_THAT(table, HasSubstr("\n  WARNING: chain 1 diverged at step 40\n"));
  v1::Measurement quiet = Llc();
  quiet.mutable_llc()->clear_warnings();
  EXPECT_THAT(MeasurementsToTable({quiet}),
              ::testing::Not(HasSubstr("WARNING")));
  EXPECT_THAT(MeasurementSummary(Llc()), StartsWith("llc 12.5 ± 0.75 ("));
  const std::string csv = MeasurementsToCsv({Llc()});
  EXPECT_EQ(Column(csv, 1, "llc"), "12.5");
  EXPECT_EQ(Column(csv, 1, "llc_r_hat"), "1.02");
  EXPECT_EQ(Column(csv, 1, "llc_warnings"), "1");
}

TEST(LlcFormatTest, TracesCsvHasARowPerChainAndStoredDraw) {
  const std::string csv = LlcTracesToCsv({Llc(), Sharpness()});
  std::vector<std::string> lines =
      absl::StrSplit(csv, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 1u + 2 * 3);
  EXPECT_EQ(lines[0],
            "name,step,kind,cell,chain,draw,loss,llc_running_mean,distance,"
            "chain_diverged");
  EXPECT_EQ(lines[1],
            "runs/r/checkpoints/300/measurements/l1,300,llc,,0,0,0.5,12,0,"
            "false");
  // The stride turns the third stored point into draw 4.
  EXPECT_EQ(lines[6],
            "runs/r/checkpoints/300/measurements/l1,300,llc,,1,4,1.75,13,0.5,"
            "true");
}

TEST(LlcFormatTest, TheCalibrationGridMarksTheRecommendedCell) {
  v1::Measurement m;
  m.set_name("runs/r/checkpoints/300/measurements/c1");
  m.mutable_spec()->mutable_llc_calibration();
  m.set_state(v1::Measurement::SUCCEEDED);
  v1::LlcCalibrationResult* r = m.mutable_llc_calibration();
  for (double eps : {1e-5, 1e-4}) {
    v1::LlcCalibrationCell* cell = r->add_cells();
    cell->set_step_size(eps);
    cell->set_localization(100);
    cell->set_n_beta(3.5);
    cell->mutable_result()->set_llc_mean(eps == 1e-4 ? 9 : 8.5);
    cell->mutable_result()->add_chains();
    v1::LlcChain* traced = cell->mutable_result()->mutable_chains(0);
    traced->add_loss_trace(0.5);
  }
  r->mutable_cells(0)->set_rejection("a larger step size is on the plateau");
  r->set_recommended(1);
  r->set_reason("the largest step size on the plateau");
  const std::string table = MeasurementsToTable({m});
  std::vector<std::string> lines = absl::StrSplit(table, '\n');
  const auto line_of = [&lines](const std::string& text) {
    for (const std::string& line : lines) {
      if (line.find(text) != std::string::npos) return line;
    }
    return std::string();
  };
  EXPECT_THAT(line_of("8.5 ±"), StartsWith("    1e-05"));
  EXPECT_THAT(line_of("8.5 ±"), HasSubstr("a larger step size"));
  EXPECT_THAT(line_of("9 ±"), StartsWith("  * 0.0001"));
  EXPECT_THAT(table,
              HasSubstr("* recommended: the largest step size on the plateau"));
  EXPECT_THAT(table, HasSubstr("recommended eps 0.0001, gamma 100"));
  r->set_recommended(-1);
  EXPECT_THAT(MeasurementsToTable({m}), HasSubstr("WARNING: the largest"));
  // Each cell's traces, with the cell's index.
  EXPECT_THAT(LlcTracesToCsv({m}),
              HasSubstr("c1,300,llc_calibration,1,0,0,0.5,,,false"));
}

}  // namespace
}  // namespace curvd::client
