// The bounded "latest value of active runs" family: values replaced by newer
// checkpoints only, at most max_runs runs (the least recently updated
// evicted), idle runs dropped.
#include "server/run_latest_values.h"

#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"

namespace curvd::server {
namespace {

using ::testing::Optional;

const absl::Time kStart = absl::FromUnixSeconds(1'700'000'000);

// The value of the series of `family` with exactly `labels`, if there is one.
std::optional<double> Series(const prometheus::Registry& registry,
                             const std::string& family,
                             const prometheus::Labels& labels) {
  for (const prometheus::MetricFamily& f : registry.Collect()) {
    if (f.name != family) continue;
    for (const prometheus::ClientMetric& metric : f.metric) {
      prometheus::Labels have;
      for (const auto& label : metric.label) have[label.name] = label.value;
      if (have == labels) return metric.gauge.value;
    }
  }
  return std::nullopt;
}

std::optional<double> Value(const prometheus::Registry& registry,
                            const std::string& run, const std::string& kind,
                            const std::string& quantity) {
  return Series(registry, "curvd_run_latest_value",
                {{"run", run}, {"kind", kind}, {"quantity", quantity}});
}

std::optional<double> Step(const prometheus::Registry& registry,
                           const std::string& run, const std::string& kind) {
  return Series(registry, "curvd_run_latest_step",
                {{"run", run}, {"kind", kind}});
}

v1::Measurement Succeeded(const std::string& run, int64_t step) {
  v1::Measurement m;
  m.set_name(absl::StrCat("runs/", run, "/checkpoints/", step,
                          "/measurements/m", step));
  m.set_state(v1::Measurement::SUCCEEDED);
  return m;
}

v1::Measurement Sharpness(const std::string& run, int64_t step, double value) {
  v1::Measurement m = Succeeded(run, step);
  m.mutable_sharpness()->set_sharpness(value);
  return m;
}

TEST(RunLatestValuesTest, ShowsEachDoubleOfTheResultWithItsStep) {
  prometheus::Registry registry;
  RunLatestValues latest(registry, RunLatestLimits());
  v1::Measurement m = Succeeded("r", 40);
  m.mutable_llc()->set_llc_mean(12.5);
  m.mutable_llc()->set_llc_standard_error(0.5);
  m.mutable_llc()->set_steps(200);  // an integer: a count, not a quantity
  latest.Record(m, kStart);
  EXPECT_THAT(Value(registry, "r", "llc", "llc_mean"), Optional(12.5));
  EXPECT_THAT(Value(registry, "r", "llc", "llc_standard_error"), Optional(0.5));
  EXPECT_EQ(Value(registry, "r", "llc", "steps"), std::nullopt);
  EXPECT_EQ(Value(registry, "r", "llc", "r_hat"), std::nullopt);  // unset
  EXPECT_THAT(Step(registry, "r", "llc"), Optional(40.0));
}

TEST(RunLatestValuesTest, APlansMembersAreShownUnderTheirOwnKinds) {
  prometheus::Registry registry;
  RunLatestValues latest(registry, RunLatestLimits());
  v1::Measurement m = Succeeded("r", 3);
  m.mutable_plan()->mutable_sharpness()->set_sharpness(7);
  m.mutable_plan()->mutable_hessian_trace()->set_trace(90);
  latest.Record(m, kStart);
  EXPECT_THAT(Value(registry, "r", "sharpness", "sharpness"), Optional(7.0));
  EXPECT_THAT(Value(registry, "r", "hessian_trace", "trace"), Optional(90.0));
  EXPECT_THAT(Step(registry, "r", "hessian_trace"), Optional(3.0));
}

TEST(RunLatestValuesTest, ANewerCheckpointReplacesTheValuesAnOlderOneDoesNot) {
  prometheus::Registry registry;
  RunLatestValues latest(registry, RunLatestLimits());
  v1::Measurement first = Succeeded("r", 10);
  first.mutable_llc()->set_llc_mean(3);
  first.mutable_llc()->set_r_hat(1.01);
  latest.Record(first, kStart);
  v1::Measurement newer = Succeeded("r", 20);
  newer.mutable_llc()->set_llc_mean(4);  // and no r_hat
  latest.Record(newer, kStart + absl::Seconds(1));
  EXPECT_THAT(Value(registry, "r", "llc", "llc_mean"), Optional(4.0));
  EXPECT_EQ(Value(registry, "r", "llc", "r_hat"), std::nullopt);
  EXPECT_THAT(Step(registry, "r", "llc"), Optional(20.0));

  v1::Measurement backfilled = Succeeded("r", 5);
  backfilled.mutable_llc()->set_llc_mean(1);
  latest.Record(backfilled, kStart + absl::Seconds(2));
  EXPECT_THAT(Value(registry, "r", "llc", "llc_mean"), Optional(4.0));
  EXPECT_THAT(Step(registry, "r", "llc"), Optional(20.0));
}

TEST(RunLatestValuesTest, MeasurementsThatDidNotSucceedChangeNothing) {
  prometheus::Registry registry;
  RunLatestValues latest(registry, RunLatestLimits());
  v1::Measurement failed = Sharpness("r", 1, 2);
  failed.set_state(v1::Measurement::FAILED);
  latest.Record(failed, kStart);
  EXPECT_EQ(latest.runs(), 0u);
  EXPECT_EQ(Value(registry, "r", "sharpness", "sharpness"), std::nullopt);
}

TEST(RunLatestValuesTest, HoldsAtMostMaxRunsEvictingTheLeastRecentlyUpdated) {
  prometheus::Registry registry;
  RunLatestValues latest(registry, {/*max_runs=*/2, absl::Hours(1)});
  latest.Record(Sharpness("a", 1, 1), kStart);
  latest.Record(Sharpness("b", 1, 2), kStart + absl::Seconds(1));
  latest.Record(Sharpness("a", 2, 3), kStart + absl::Seconds(2));  // a again
  latest.Record(Sharpness("c", 1, 4), kStart + absl::Seconds(3));
  EXPECT_EQ(latest.runs(), 2u);
  EXPECT_EQ(Value(registry, "b", "sharpness", "sharpness"), std::nullopt);
  EXPECT_EQ(Step(registry, "b", "sharpness"), std::nullopt);
  EXPECT_THAT(Value(registry, "a", "sharpness", "sharpness"), Optional(3.0));
  EXPECT_THAT(Value(registry, "c", "sharpness", "sharpness"), Optional(4.0));
}

TEST(RunLatestValuesTest, DropsRunsIdleLongerThanTheLimit) {
  prometheus::Registry registry;
  RunLatestValues latest(registry, {/*max_runs=*/10, absl::Minutes(10)});
  latest.Record(Sharpness("idle", 1, 1), kStart);
  latest.Record(Sharpness("busy", 1, 2), kStart + absl::Minutes(8));
  latest.DropIdle(kStart + absl::Minutes(10));
  EXPECT_EQ(latest.runs(), 2u);  // exactly the limit is not yet idle
  latest.DropIdle(kStart + absl::Minutes(11));
  EXPECT_EQ(latest.runs(), 1u);
  EXPECT_EQ(Value(registry, "idle", "sharpness", "sharpness"), std::nullopt);
  EXPECT_EQ(Step(registry, "idle", "sharpness"), std::nullopt);
  EXPECT_THAT(Value(registry, "busy", "sharpness", "sharpness"), Optional(2.0));
}

TEST(RunLatestValuesTest, ZeroMaxRunsShowsNone) {
  prometheus::Registry registry;
  RunLatestValues latest(registry, {/*max_runs=*/0, absl::Hours(1)});
  latest.Record(Sharpness("r", 1, 1), kStart);
  EXPECT_EQ(latest.runs(), 0u);
}

}  // namespace
}  // namespace curvd::server
