// The proto's comments cite core's defaults and bounds (the option structs and
// core/api/option_limits.h), not copies that can drift: each documented number
// is read here from core and looked for in the comment of its field in
// resources.proto.
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "core/api/measurement.h"
#include "core/api/option_limits.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/kind_table.h"
#include "tests/documented_numbers.h"

namespace curvd::server {
namespace {

namespace limits = ::curvd::core::limits;
using ::curvd::testing::Default;
using ::curvd::testing::Number;
using ::curvd::testing::Percent;
using ::curvd::testing::Range;
using ::testing::HasSubstr;

std::string ProtoText() {
  std::ifstream in(std::string(CURVD_PROTO_DIR) + "/resources.proto");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The comment lines right above `field = N;` in `message` (and a comment on
// that line), joined; empty when the field is not found.
std::string FieldComment(const std::string& proto, const std::string& message,
                         const std::string& field) {
  const size_t begin = proto.find("message " + message + " {");
  if (begin == std::string::npos) return "";
  const size_t end = proto.find("\n}", begin);
  std::istringstream body(proto.substr(begin, end - begin));
  const std::regex declaration("\\b" + field + " = [0-9]+;");
  std::string comment;
  for (std::string line; std::getline(body, line);) {
    const size_t slash = line.find("//");
    const std::string code = line.substr(0, slash);
    if (std::regex_search(code, declaration)) {
      if (slash != std::string::npos) {
        absl::StrAppend(&comment, line.substr(slash + 2));
      }
      return comment;
    }
    const bool comment_only =
        slash != std::string::npos &&
        code.find_first_not_of(' ') == std::string::npos;
    // The comment's words, its lines joined without their "//".
    comment = comment_only
                  ? absl::StrCat(comment, absl::StripAsciiWhitespace(
                                              line.substr(slash + 2)),
                                 " ")
                  : "";
  }
  return "";
}

struct Documented {
  std::string message;
  std::string field;
  std::vector<std::string> mentions;
};

TEST(DocumentedDefaultsTest, ProtoCommentsCiteCoresDefaultsAndBounds) {
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
  const auto axis = [](const std::vector<double>& values) {
    std::vector<std::string> numbers;
    for (double x : values) numbers.push_back(Number(x));
    return absl::StrCat("default ", absl::StrJoin(numbers, ", "));
  };
  const RequestLimits caps;
  const core::ObjectiveOptions objective;
  const std::vector<Documented> documented = {
      {"MeasurementSpec", "forward_seed",
       {Default(static_cast<double>(objective.forward_seed)), "sqrt(eps)",
        "failed_precondition"}},
      {"SharpnessSpec", "top_k",
       {Range(1, limits::kMaxEigenpairs), Default(lanczos.top_k)}},
      {"SharpnessSpec",
       "bottom_k",
       {Range(0, limits::kMaxEigenpairs), Default(lanczos.bottom_k)}},
      {"SharpnessSpec",
       "max_iterations",
       {Default(lanczos.max_iterations),
        absl::StrCat("at most ", limits::kMaxLanczosIterations)}},
      {"SharpnessSpec",
       "relative_tolerance",
       {Default(lanczos.relative_tolerance)}},
      {"HessianTraceSpec",
       "min_probes",
       {Default(trace.min_probes),
        Range(limits::kMinProbes, limits::kMaxProbes)}},
      {"HessianTraceSpec", "max_probes", {Default(trace.max_probes)}},
      {"HessianTraceSpec",
       "target_relative_error",
       {Default(trace.target_relative_error)}},
      {"SpectralDensitySpec",
       "runs",
       {Default(slq.runs), Range(1, limits::kMaxSlqRuns)}},
      {"SpectralDensitySpec",
       "steps",
       {Default(slq.steps), Range(1, limits::kMaxSlqSteps)}},
      {"SpectralDensitySpec",
       "grid_points",
       {Default(slq.grid_points),
        Range(limits::kMinGridPoints, limits::kMaxGridPoints)}},
      {"SpectralDensitySpec", "sigma_fraction",
       {Default(slq.sigma_fraction)}},
      {"SpectralDensitySpec", "log_threshold",
       {"unset (the default): the relative rule alone",
        "sqrt(eps) * max |ritz value|"}},
      {"SpectralDensityResult", "rank_lower",
       {absl::StrCat("within a factor ", Number(core::kSlqRankCutFactor),
                     " of t")}},
      {"SpectralDensityResult", "rank_unreliable",
       {absl::StrCat("max(1, ", Percent(core::kSlqRankTolerance),
                     " of the estimate)")}},
      {"HutchppSpec", "max_hvps",
       {Default(hutchpp.max_hvps),
        Range(limits::kMinHutchppHvps, limits::kMaxHutchppHvps)}},
      {"HutchppSpec",
       "target_relative_error",
       {Default(hutchpp.target_relative_error)}},
      {"HutchppSpec",
       "min_residual_probes",
       {Default(hutchpp.min_residual_probes),
        absl::StrCat("at least ", limits::kMinProbes)}},
      {"AdaptiveTraceSpec", "max_hvps",
       {Default(adaptive.max_hvps),
        Range(limits::kMinHutchppHvps, limits::kMaxHutchppHvps),
        "initial_sketch_size + 2"}},
      {"AdaptiveTraceSpec", "target_standard_error",
       {Default(adaptive.target_standard_error), "finite and >= 0"}},
      {"AdaptiveTraceSpec", "target_relative_error",
       {Default(adaptive.target_relative_error), "target_standard_error > 0",
        "relative target is off", "effective_spec", "invalid_argument"}},
      {"AdaptiveTraceSpec", "initial_sketch_size",
       {Default(adaptive.initial_sketch_size), "1..max_hvps - 2"}},
      {"AdaptiveTraceSpec", "min_probes",
       {Default(adaptive.min_probes),
        absl::StrCat(limits::kMinProbes, "..max_hvps")}},
      {"ExactHessianSpec",
       "return_matrix",
       {Default(caps.exact_hessian_max_matrix_parameters)}},
      // The defaults that are not numbers: what ToCoreRequest and
      // CreateCheckpoint apply to an unset loss and format.
      {"MeasurementSpec",
       "loss",
       {"unset: cross-entropy, recorded in measurement.effective_spec"}},
      {"Checkpoint",
       "format",
       {"unset: safetensors for a zoo run, torchscript for an archive run",
        "invalid_argument naming checkpoint.format"}},
      {"PowerIterationSpec",
       "top_k",
       {Default(power.top_k), Range(1, limits::kMaxEigenpairs)}},
      {"PowerIterationSpec",
       "max_iterations",
       {Default(power.max_iterations), Range(1, limits::kMaxPowerIterations)}},
      {"PowerIterationSpec",
       "relative_tolerance",
       {Default(power.relative_tolerance)}},
      {"LossSliceSpec",
       "points",
       {Default(slice.points), Range(1, limits::kMaxSlicePoints)}},
      {"LlcSpec", "step_size", {Default(llc.step_size)}},
      {"LlcSpec", "localization", {Default(llc.localization)}},
      {"LlcSpec", "prior_precision", {Default(llc.prior_precision)}},
      {"LlcSpec", "n_beta_convention", {"unset: dataset"}},
      {"LlcSpec", "chains",
       {Default(llc.chains), Range(1, limits::kMaxLlcChains)}},
      {"LlcSpec", "draws",
       {Default(llc.draws), Range(1, limits::kMaxLlcDraws)}},
      {"LlcSpec", "burn_in",
       {Default(llc.burn_in), Range(0, limits::kMaxLlcBurnIn)}},
      {"LlcSpec", "steps_between_draws",
       {Default(llc.steps_between_draws),
        Range(1, limits::kMaxLlcStepsBetweenDraws)}},
      {"LlcSpec", "batch_size", {Default(static_cast<double>(llc.batch_size))}},
      {"LlcSpec", "full_loss_every", {Default(llc.full_loss_every)}},
      {"LlcSpec", "divergence_factor",
       {Default(llc.divergence_factor),
        absl::StrCat("max(l(w*), ", Number(core::kLlcDivergenceFloor), ")")}},
      {"LlcSpec", "rmsprop_alpha", {Default(llc.rmsprop_alpha)}},
      {"LlcSpec", "rmsprop_epsilon", {Default(llc.rmsprop_epsilon)}},
      {"LlcSpec", "sgnht_diffusion", {Default(llc.sgnht_diffusion)}},
      {"LlcSpec", "trace_cap",
       {Default(llc.trace_cap),
        Range(limits::kMinLlcTraceCap, limits::kMaxLlcTraceCap)}},
      {"LlcCalibrationSpec", "base",
       {absl::StrCat("draws ", Default(calibration.base.draws)),
        absl::StrCat("burn_in ", Default(calibration.base.burn_in))}},
      {"LlcCalibrationSpec", "step_sizes", {axis(calibration.step_sizes)}},
      {"LlcCalibrationSpec", "localizations",
       {axis(calibration.localizations)}},
      {"LlcCalibrationSpec", "n_betas",
       {absl::StrCat("at most ", limits::kMaxLlcCalibrationCells, " cells")}},
      {"LlcResult", "warnings",
       {absl::StrCat("r-hat above ", Number(core::kLlcMaxRHat))}},
      {"GopSpec", "variant", {"unset: empirical_fisher"}},
      {"GopSpec",
       "num_samples",
       {Default(static_cast<double>(gop.num_samples)),
        absl::StrCat("at most ", gop.max_samples)}},
      {"GopSpec", "top_k", {Default(gop.top_k)}},
      {"GopSpec",
       "eigenvectors",
       {"at most the server's --gop_max_eigenvector_floats"}},
      {"GopSpec", "rank_rtol", {"n * eps_float64", "range (0, 1)"}},
      {"GopSpec", "path", {"unset: path_auto"}},
      {"GopSpec",
       "hessian_overlap_k",
       {Default(gop.hessian_overlap_k), Range(1, limits::kMaxEigenpairs),
        Number(lanczos.relative_tolerance),
        absl::StrCat(lanczos.max_iterations, " steps")}},
      {"LossSliceSpec",
       "t_min",
       {absl::StrCat("[", Number(slice.t_min), ", ", Number(slice.t_max),
                     "]")}},
  };
  const std::string proto = ProtoText();
  ASSERT_FALSE(proto.empty()) << CURVD_PROTO_DIR;
  for (const Documented& d : documented) {
    const std::string comment = FieldComment(proto, d.message, d.field);
    ASSERT_FALSE(comment.empty()) << d.message << "." << d.field;
    for (const std::string& mention : d.mentions) {
      EXPECT_THAT(absl::AsciiStrToLower(comment), HasSubstr(mention))
          << d.message << "." << d.field;
    }
  }
}

}  // namespace
}  // namespace curvd::server
