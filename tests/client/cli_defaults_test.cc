// curvctl's help cites core's defaults and bounds (the option structs and
// core/api option_limits.h) rather than copies that can drift: each number is
// read here from core and looked for in the help of its `measure` flag.
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "client/curvctl_commands.h"
#include "core/api/measurement.h"
#include "core/api/option_limits.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/documented_numbers.h"

namespace curvd::client {
namespace {

namespace limits = ::curvd::core::limits;
using ::curvd::testing::Number;
using ::curvd::testing::Percent;
using ::curvd::testing::Range;
using ::testing::HasSubstr;

// The help of `measure`'s flag `name`; empty when there is no such flag.
std::string MeasureHelp(const std::string& name) {
  for (const CommandDef& command : CurvctlCommands()) {
    if (command.name != "measure") continue;
    for (const FlagDef& flag : command.flags) {
      if (flag.name == name) return flag.help;
    }
  }
  return "";
}

TEST(CliDefaultsTest, MeasureHelpCitesCoresDefaultsAndBounds) {
  const core::LanczosOptions lanczos;
  const core::TraceOptions trace;
  const core::SlqOptions slq;
  const core::HutchppOptions hutchpp;
  const core::AdaptiveTraceOptions adaptive;
  const core::PowerIterationOptions power;
  const core::LossSliceOptions slice;
  const core::LlcOptions llc;
  const core::LlcCalibrationOptions calibration;
  const core::GopOptions gop;
  const auto list = [](const std::vector<double>& axis) {
    std::vector<std::string> numbers;
    for (double x : axis) numbers.push_back(Number(x));
    return absl::StrJoin(numbers, ",");
  };
  const std::vector<std::pair<std::string, std::vector<std::string>>> cited = {
      {"top_k", {Range(1, limits::kMaxEigenpairs)}},
      {"bottom_k", {Range(0, limits::kMaxEigenpairs)}},
      {"max_iterations",
       {absl::StrCat("(", lanczos.max_iterations, "; ", power.max_iterations,
                     ")")}},
      {"tolerance", {Number(lanczos.relative_tolerance)}},
      {"probes",
       {Range(trace.min_probes, trace.max_probes),
        Percent(trace.target_relative_error)}},
      {"runs", {Range(1, limits::kMaxSlqRuns), absl::StrCat("default ", slq.runs)}},
      {"steps",
       {Range(1, limits::kMaxSlqSteps), absl::StrCat("default ", slq.steps)}},
      {"grid_points",
       {Range(limits::kMinGridPoints, limits::kMaxGridPoints),
        absl::StrCat("default ", slq.grid_points)}},
      {"sigma", {Percent(slq.sigma_fraction)}},
      {"max_hvps",
       {absl::StrCat(">= ", limits::kMinHutchppHvps),
        absl::StrCat("default ", hutchpp.max_hvps),
        absl::StrCat(adaptive.max_hvps, " for adaptive_trace")}},
      {"target_relative_error",
       {absl::StrCat("default ", Number(adaptive.target_relative_error)),
        "0 when --target_standard_error is given"}},
      {"target_standard_error",
       {absl::StrCat(Number(adaptive.target_standard_error), " = off"),
        "the relative target is off"}},
      {"initial_sketch_size",
       {absl::StrCat("default ", adaptive.initial_sketch_size)}},
      {"min_probes",
       {absl::StrCat(">= ", limits::kMinProbes),
        absl::StrCat("default ", adaptive.min_probes)}},
      {"points",
       {Range(1, limits::kMaxSlicePoints),
        absl::StrCat("default ", slice.points)}},
      {"t_min",
       {absl::StrCat("[", Number(slice.t_min), ", ", Number(slice.t_max),
                     "]")}},
      {"llc_step_size", {absl::StrCat("default ", Number(llc.step_size))}},
      {"llc_localization",
       {absl::StrCat("default ", Number(llc.localization))}},
      {"llc_chains",
       {Range(1, limits::kMaxLlcChains),
        absl::StrCat("default ", llc.chains)}},
      {"llc_draws",
       {Range(1, limits::kMaxLlcDraws), absl::StrCat("default ", llc.draws),
        absl::StrCat(calibration.base.draws, " for a calibration")}},
      {"llc_burn_in",
       {Range(0, limits::kMaxLlcBurnIn), absl::StrCat("default ", llc.burn_in),
        absl::StrCat(calibration.base.burn_in, " for a calibration")}},
      {"llc_steps_between_draws",
       {Range(1, limits::kMaxLlcStepsBetweenDraws),
        absl::StrCat("default ", llc.steps_between_draws)}},
      {"llc_batch_size", {absl::StrCat("default ", llc.batch_size)}},
      {"llc_divergence_factor",
       {absl::StrCat("default ", Number(llc.divergence_factor)),
        Number(core::kLlcDivergenceFloor)}},
      {"llc_rmsprop_alpha",
       {absl::StrCat("default ", Number(llc.rmsprop_alpha))}},
      {"llc_rmsprop_epsilon",
       {absl::StrCat("default ", Number(llc.rmsprop_epsilon))}},
      {"llc_sgnht_diffusion",
       {absl::StrCat("default ", Number(llc.sgnht_diffusion))}},
      {"llc_trace_cap",
       {Range(limits::kMinLlcTraceCap, limits::kMaxLlcTraceCap),
        absl::StrCat("default ", llc.trace_cap)}},
      {"llc_step_sizes", {list(calibration.step_sizes)}},
      {"llc_localizations", {list(calibration.localizations)}},
      {"llc_n_betas",
       {absl::StrCat("at most ", limits::kMaxLlcCalibrationCells,
                     " cells")}},
      {"gop_samples",
       {absl::StrCat("default ", gop.num_samples),
        absl::StrCat("at most ", gop.max_samples)}},
      {"gop_top_k", {absl::StrCat("default ", gop.top_k)}},
      {"gop_rank_rtol", {"N * eps_float64"}},
      {"gop_path", {"auto", "generic", "fast"}},
      {"gop_hessian_overlap",
       {Range(1, limits::kMaxEigenpairs),
        absl::StrCat("default ", gop.hessian_overlap_k)}},
  };
  for (const auto& [flag, mentions] : cited) {
    const std::string help = MeasureHelp(flag);
    ASSERT_FALSE(help.empty()) << "--" << flag;
    for (const std::string& mention : mentions) {
      EXPECT_THAT(help, HasSubstr(mention)) << "--" << flag;
    }
  }
}

}  // namespace
}  // namespace curvd::client
