#include "core/api/measurement.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <variant>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "core/api/option_limits.h"

namespace curvd::core {
namespace {

// Every message names the field as the proto spells it, under `prefix` (e.g.
// "plan.spectral_density.").
absl::Status OutOfRange(const std::string& field, const std::string& rule) {
  return absl::InvalidArgumentError(absl::StrCat(field, " ", rule));
}

absl::Status CheckIntRange(const std::string& field, int64_t value, int64_t low,
                           int64_t high) {
  if (value >= low && value <= high) return absl::OkStatus();
  return OutOfRange(
      field, absl::StrCat("must be in [", low, ", ", high, "], got ", value));
}

// (0, 1), the range of every relative tolerance.
absl::Status CheckOpenUnit(const std::string& field, double value) {
  if (value > 0 && value < 1) return absl::OkStatus();
  return OutOfRange(field, absl::StrCat("must be in (0, 1), got ", value));
}

absl::Status CheckPositiveFinite(const std::string& field, double value) {
  if (value > 0 && std::isfinite(value)) return absl::OkStatus();
  return OutOfRange(field, absl::StrCat("must be finite and > 0, got ", value));
}

// `field` is "sharpness" or "loss_slice.lanczos"; `check_top_k` is false for
// the loss slice, which ignores top_k.
absl::Status ValidateLanczos(const LanczosOptions& o, const std::string& field,
                             bool check_top_k) {
  if (check_top_k) {
    if (absl::Status s =
            CheckIntRange(field + ".top_k", o.top_k, 1, limits::kMaxEigenpairs);
        !s.ok()) {
      return s;
    }
    if (absl::Status s = CheckIntRange(field + ".bottom_k", o.bottom_k, 0,
                                       limits::kMaxEigenpairs);
        !s.ok()) {
      return s;
    }
  }
  if (absl::Status s =
          CheckIntRange(field + ".max_iterations", o.max_iterations, 1,
                        limits::kMaxLanczosIterations);
      !s.ok()) {
    return s;
  }
  return CheckOpenUnit(field + ".relative_tolerance", o.relative_tolerance);
}

absl::Status ValidateTrace(const TraceOptions& o, const std::string& field) {
  if (o.min_probes < limits::kMinProbes || o.min_probes > limits::kMaxProbes) {
    return OutOfRange(
        field + ".min_probes",
        absl::StrCat(
            "must be in [", limits::kMinProbes, ", ", limits::kMaxProbes,
            "] (a standard error needs two probes), got ", o.min_probes));
  }
  if (o.max_probes < o.min_probes || o.max_probes > limits::kMaxProbes) {
    return OutOfRange(
        field + ".max_probes",
        absl::StrCat("must be in [min_probes=", o.min_probes, ", ",
                     limits::kMaxProbes, "], got ", o.max_probes));
  }
  if (!(o.target_relative_error >= 0 && o.target_relative_error < 1)) {
    return OutOfRange(
        field + ".target_relative_error",
        absl::StrCat("must be in [0, 1), got ", o.target_relative_error));
  }
  return absl::OkStatus();
}

absl::Status ValidateDensity(const SlqOptions& o, const std::string& field) {
  if (absl::Status s =
          CheckIntRange(field + ".runs", o.runs, 1, limits::kMaxSlqRuns);
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          CheckIntRange(field + ".steps", o.steps, 1, limits::kMaxSlqSteps);
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          CheckIntRange(field + ".grid_points", o.grid_points,
                        limits::kMinGridPoints, limits::kMaxGridPoints);
      !s.ok()) {
    return s;
  }
  if (!(o.sigma >= 0 && std::isfinite(o.sigma))) {
    return OutOfRange(field + ".sigma",
                      absl::StrCat("must be finite and >= 0, got ", o.sigma));
  }
  if (absl::Status s =
          CheckOpenUnit(field + ".sigma_fraction", o.sigma_fraction);
      !s.ok()) {
    return s;
  }
  if (o.log_threshold.has_value()) {
    if (absl::Status s =
            CheckPositiveFinite(field + ".log_threshold", *o.log_threshold);
        !s.ok()) {
      return s;
    }
  }
  const bool automatic_grid = o.grid_min == 0 && o.grid_max == 0;
  if (!automatic_grid &&
      !(std::isfinite(o.grid_min) && std::isfinite(o.grid_max) &&
        o.grid_min < o.grid_max)) {
    return OutOfRange(
        field + ".grid_min",
        absl::StrCat("must be finite and below grid_max (or both 0 "
                     "for an automatic grid), got [",
                     o.grid_min, ", ", o.grid_max, "]"));
  }
  return absl::OkStatus();
}

// FIELD.max_hvps of a sketched trace (Hutch++, the adaptive trace): the
// proto's bounds.
absl::Status CheckHvpBudget(const std::string& field, int max_hvps) {
  return CheckIntRange(field + ".max_hvps", max_hvps, limits::kMinHutchppHvps,
                       limits::kMaxHutchppHvps);
}

// As hutchpp.cc checks them, with the proto's bounds on top.
absl::Status ValidateHutchpp(const HutchppOptions& o,
                             const std::string& field) {
  if (absl::Status s = CheckHvpBudget(field, o.max_hvps); !s.ok()) return s;
  // Each sketch column costs two HVPs and at least one residual probe must fit.
  if (o.sketch_size < 0 ||
      2 * static_cast<int64_t>(o.sketch_size) >= o.max_hvps) {
    return OutOfRange(
        field + ".sketch_size",
        absl::StrCat("must be >= 0 with 2 * sketch_size < max_hvps=",
                     o.max_hvps, ", got ", o.sketch_size));
  }
  if (!(o.target_relative_error >= 0 && o.target_relative_error < 1)) {
    return OutOfRange(
        field + ".target_relative_error",
        absl::StrCat("must be in [0, 1), got ", o.target_relative_error));
  }
  return CheckIntRange(field + ".min_residual_probes", o.min_residual_probes,
                       limits::kMinProbes, o.max_hvps);
}

// As adaptive_trace.cc checks them, with the proto's bounds on top.
absl::Status ValidateAdaptiveTrace(const AdaptiveTraceOptions& o,
                                   const std::string& field) {
  if (absl::Status s = CheckHvpBudget(field, o.max_hvps); !s.ok()) return s;
  // The first sketch costs two HVPs a column, and a probe must follow it.
  if (absl::Status s = CheckIntRange(field + ".initial_sketch_size",
                                     o.initial_sketch_size, 1, o.max_hvps - 2);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckIntRange(field + ".min_probes", o.min_probes,
                                     limits::kMinProbes, o.max_hvps);
      !s.ok()) {
    return s;
  }
  if (!(o.target_standard_error >= 0 &&
        std::isfinite(o.target_standard_error))) {
    return OutOfRange(
        field + ".target_standard_error",
        absl::StrCat("must be finite and >= 0, got ", o.target_standard_error));
  }
  if (!(o.target_relative_error >= 0 && o.target_relative_error < 1)) {
    return OutOfRange(
        field + ".target_relative_error",
        absl::StrCat("must be in [0, 1), got ", o.target_relative_error));
  }
  if (o.target_standard_error == 0 && o.target_relative_error == 0) {
    return OutOfRange(field + ".target_standard_error",
                      "or target_relative_error must be > 0: the trace runs "
                      "to a standard error");
  }
  return absl::OkStatus();
}

absl::Status ValidateLossExpansion(const LossExpansionOptions& o,
                                   const std::string& field) {
  for (const auto& [name, value] :
       {std::pair<const char*, double>{"rho", o.rho},
        {"h0", o.h0},
        {"ess", o.ess},
        {"num_steps", o.num_steps}}) {
    if (absl::Status s =
            CheckPositiveFinite(absl::StrCat(field, ".", name), value);
        !s.ok()) {
      return s;
    }
  }
  return ValidateTrace(o.trace_cubed, field + ".trace_h3");
}

absl::Status ValidateExactHessian(const ExactHessianOptions& o,
                                  const std::string& field) {
  if (o.max_parameters < 1) {
    return OutOfRange(field + ".max_parameters",
                      absl::StrCat("(the server's cap) must be >= 1, got ",
                                   o.max_parameters));
  }
  if (o.max_matrix_parameters < 1) {
    return OutOfRange(field + ".max_matrix_parameters",
                      absl::StrCat("(the server's cap) must be >= 1, got ",
                                   o.max_matrix_parameters));
  }
  if (o.block_size < 1) {
    return OutOfRange(field + ".block_size",
                      absl::StrCat("must be >= 1, got ", o.block_size));
  }
  return absl::OkStatus();
}

absl::Status ValidatePowerIteration(const PowerIterationOptions& o,
                                    const std::string& field) {
  if (absl::Status s =
          CheckIntRange(field + ".top_k", o.top_k, 1, limits::kMaxEigenpairs);
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          CheckIntRange(field + ".max_iterations", o.max_iterations, 1,
                        limits::kMaxPowerIterations);
      !s.ok()) {
    return s;
  }
  return CheckOpenUnit(field + ".relative_tolerance", o.relative_tolerance);
}

absl::Status ValidateLossSlice(const LossSliceOptions& o,
                               const std::string& field) {
  if (absl::Status s = CheckIntRange(field + ".points", o.points, 1,
                                     limits::kMaxSlicePoints);
      !s.ok()) {
    return s;
  }
  if (!std::isfinite(o.t_min) || !std::isfinite(o.t_max) ||
      (o.points > 1 && !(o.t_min < o.t_max))) {
    return OutOfRange(
        field + ".t_min",
        absl::StrCat("must be finite and below t_max unless points "
                     "is 1, got [",
                     o.t_min, ", ", o.t_max, "] with ", o.points, " points"));
  }
  if (o.direction == SliceDirection::kTopEigenvector) {
    return ValidateLanczos(o.lanczos, field + ".lanczos",
                           /*check_top_k=*/false);
  }
  return absl::OkStatus();
}

absl::Status CheckNonNegativeFinite(const std::string& field, double value) {
  if (value >= 0 && std::isfinite(value)) return absl::OkStatus();
  return OutOfRange(field,
                    absl::StrCat("must be finite and >= 0, got ", value));
}

// Each value of the axis `field` passes `check`; `required` axes must not be
// empty.
absl::Status ValidateAxis(const std::vector<double>& axis,
                          const std::string& field, bool required,
                          absl::Status (*check)(const std::string&, double)) {
  if (required && axis.empty()) {
    return OutOfRange(field, "must not be empty");
  }
  for (size_t i = 0; i < axis.size(); ++i) {
    CURVD_RETURN_IF_ERROR(check(absl::StrCat(field, "[", i, "]"), axis[i]));
  }
  return absl::OkStatus();
}

absl::Status ValidateLlcCalibration(const LlcCalibrationOptions& o,
                                    const std::string& field) {
  CURVD_RETURN_IF_ERROR(ValidateLlcOptions(o.base, field + ".base"));
  CURVD_RETURN_IF_ERROR(ValidateAxis(o.step_sizes, field + ".step_sizes",
                                     /*required=*/true, CheckPositiveFinite));
  CURVD_RETURN_IF_ERROR(ValidateAxis(o.localizations, field + ".localizations",
                                     /*required=*/true,
                                     CheckNonNegativeFinite));
  CURVD_RETURN_IF_ERROR(ValidateAxis(o.n_betas, field + ".n_betas",
                                     /*required=*/false, CheckPositiveFinite));
  const int64_t cells = static_cast<int64_t>(o.step_sizes.size()) *
                        static_cast<int64_t>(o.localizations.size()) *
                        std::max<int64_t>(1, o.n_betas.size());
  if (cells > limits::kMaxLlcCalibrationCells) {
    return OutOfRange(
        field + ".step_sizes",
        absl::StrCat("x localizations x n_betas must be at most ",
                     limits::kMaxLlcCalibrationCells, " cells, got ", cells,
                     " (", o.step_sizes.size(), " x ", o.localizations.size(),
                     " x ", std::max<size_t>(1, o.n_betas.size()), ")"));
  }
  return absl::OkStatus();
}

// One overload per kind: a kind without one does not compile (ValidateRequest
// visits every Method).
absl::Status Validate(const SharpnessMethod& m, const std::string& field) {
  return ValidateLanczos(m.options, field, /*check_top_k=*/true);
}
absl::Status Validate(const SpectralDensityMethod& m,
                      const std::string& field) {
  return ValidateDensity(m.options, field);
}
absl::Status Validate(const HessianTraceMethod& m, const std::string& field) {
  return ValidateTrace(m.options, field);
}
absl::Status Validate(const HutchppMethod& m, const std::string& field) {
  return ValidateHutchpp(m.options, field);
}
absl::Status Validate(const AdaptiveTraceMethod& m, const std::string& field) {
  return ValidateAdaptiveTrace(m.options, field);
}
absl::Status Validate(const TraceCubedMethod& m, const std::string& field) {
  return ValidateTrace(m.options, field);
}
absl::Status Validate(const LossExpansionMethod& m, const std::string& field) {
  return ValidateLossExpansion(m.options, field);
}
absl::Status Validate(const ExactHessianMethod& m, const std::string& field) {
  return ValidateExactHessian(m.options, field);
}
absl::Status Validate(const PowerIterationMethod& m, const std::string& field) {
  return ValidatePowerIteration(m.options, field);
}
absl::Status Validate(const LossSliceMethod& m, const std::string& field) {
  return ValidateLossSlice(m.options, field);
}
absl::Status Validate(const GopMethod& m, const std::string& field) {
  return ValidateGopFields(m.options, field);
}
absl::Status Validate(const LlcMethod& m, const std::string& field) {
  return ValidateLlcOptions(m.options, field);
}
absl::Status Validate(const LlcCalibrationMethod& m, const std::string& field) {
  return ValidateLlcCalibration(m.options, field);
}

absl::Status ValidateMethods(const std::vector<Method>& methods,
                             const std::string& methods_field) {
  const std::string owner =
      methods_field.empty() ? "the request" : methods_field;
  if (methods.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        owner,
        " must set at least one measurement (sharpness, hessian_trace, "
        "spectral_density, ...)"));
  }
  const std::string prefix =
      methods_field.empty() ? "" : absl::StrCat(methods_field, ".");
  std::set<size_t> seen;
  for (const Method& method : methods) {
    if (!seen.insert(method.index()).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          owner, " names ", MethodName(method), " more than once"));
    }
    CURVD_RETURN_IF_ERROR(std::visit(
        [&prefix](const auto& m) {
          return Validate(m, absl::StrCat(prefix, m.kName));
        },
        method));
  }
  return absl::OkStatus();
}

absl::Status ValidateBlock(const ParameterBlock& block) {
  for (size_t i = 0; i < block.names.size(); ++i) {
    if (block.names[i].empty()) {
      return OutOfRange(absl::StrCat("block.names[", i, "]"),
                        "must not be empty");
    }
  }
  for (size_t i = 0; i < block.prefixes.size(); ++i) {
    // An empty prefix would select every parameter, which is no block.
    if (block.prefixes[i].empty()) {
      return OutOfRange(absl::StrCat("block.prefixes[", i, "]"),
                        "must not be empty");
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateLlcOptions(const LlcOptions& o, const std::string& field) {
  CURVD_RETURN_IF_ERROR(CheckPositiveFinite(field + ".step_size", o.step_size));
  CURVD_RETURN_IF_ERROR(
      CheckNonNegativeFinite(field + ".localization", o.localization));
  CURVD_RETURN_IF_ERROR(
      CheckNonNegativeFinite(field + ".prior_precision", o.prior_precision));
  if (o.n_beta_convention == NBetaConvention::kGiven) {
    CURVD_RETURN_IF_ERROR(CheckPositiveFinite(field + ".n_beta", o.n_beta));
  }
  CURVD_RETURN_IF_ERROR(
      CheckIntRange(field + ".chains", o.chains, 1, limits::kMaxLlcChains));
  CURVD_RETURN_IF_ERROR(
      CheckIntRange(field + ".draws", o.draws, 1, limits::kMaxLlcDraws));
  CURVD_RETURN_IF_ERROR(
      CheckIntRange(field + ".burn_in", o.burn_in, 0, limits::kMaxLlcBurnIn));
  CURVD_RETURN_IF_ERROR(CheckIntRange(field + ".steps_between_draws",
                                      o.steps_between_draws, 1,
                                      limits::kMaxLlcStepsBetweenDraws));
  if (o.batch_size < 1) {
    return OutOfRange(field + ".batch_size",
                      absl::StrCat("must be >= 1, got ", o.batch_size));
  }
  CURVD_RETURN_IF_ERROR(
      CheckIntRange(field + ".full_loss_every", o.full_loss_every, 0, o.draws));
  if (!(o.divergence_factor > 1 && std::isfinite(o.divergence_factor))) {
    return OutOfRange(
        field + ".divergence_factor",
        absl::StrCat("must be finite and > 1, got ", o.divergence_factor));
  }
  CURVD_RETURN_IF_ERROR(
      CheckOpenUnit(field + ".rmsprop_alpha", o.rmsprop_alpha));
  CURVD_RETURN_IF_ERROR(
      CheckPositiveFinite(field + ".rmsprop_epsilon", o.rmsprop_epsilon));
  CURVD_RETURN_IF_ERROR(
      CheckPositiveFinite(field + ".sgnht_diffusion", o.sgnht_diffusion));
  return CheckIntRange(field + ".trace_cap", o.trace_cap,
                       limits::kMinLlcTraceCap, limits::kMaxLlcTraceCap);
}

bool ParameterBlock::Selects(const std::string& name) const {
  if (names.empty() && prefixes.empty()) return true;
  return std::find(names.begin(), names.end(), name) != names.end() ||
         std::any_of(prefixes.begin(), prefixes.end(),
                     [&name](const std::string& prefix) {
                       return absl::StartsWith(name, prefix);
                     });
}

const char* MethodName(const Method& method) {
  return std::visit([](const auto& m) -> const char* { return m.kName; },
                    method);
}

const Method* FirstUnsplitMethod(const std::vector<Method>& methods) {
  if (ChainSplitMethod(methods) != nullptr) return nullptr;
  for (const Method& method : methods) {
    if (std::holds_alternative<GopMethod>(method) ||
        std::holds_alternative<LlcMethod>(method) ||
        std::holds_alternative<LlcCalibrationMethod>(method)) {
      return &method;
    }
  }
  return nullptr;
}

const LlcMethod* ChainSplitMethod(const std::vector<Method>& methods) {
  if (methods.size() != 1) return nullptr;
  return std::get_if<LlcMethod>(&methods[0]);
}

absl::Status ValidateGopFields(const GopOptions& o, const std::string& field) {
  switch (o.variant) {
    case GopVariant::kEmpiricalFisher:
    case GopVariant::kGradientCovariance:
    case GopVariant::kMeanGradient:
      break;
    default:
      return OutOfRange(field + ".variant",
                        absl::StrCat("is not a known variant, got ",
                                     static_cast<int>(o.variant)));
  }
  switch (o.path) {
    case GopPath::kAuto:
    case GopPath::kGeneric:
      break;
    case GopPath::kFast:
      if (o.variant == GopVariant::kMeanGradient) {
        return absl::InvalidArgumentError(absl::StrCat(
            field,
            ".path = fast does not apply to the mean-gradient variant, which "
            "forms no Gram matrix (its closed form runs on any model): use "
            "auto or generic"));
      }
      break;
    default:
      return OutOfRange(
          field + ".path",
          absl::StrCat("is not a known path, got ", static_cast<int>(o.path)));
  }
  if (o.num_samples < 0) {
    return OutOfRange(field + ".num_samples",
                      absl::StrCat("must be >= 0 (0 = the whole shard), got ",
                                   o.num_samples));
  }
  if (o.top_k < 0) {
    return OutOfRange(field + ".top_k",
                      absl::StrCat("must be >= 0, got ", o.top_k));
  }
  if (o.rank_rtol.has_value()) {
    CURVD_RETURN_IF_ERROR(CheckOpenUnit(field + ".rank_rtol", *o.rank_rtol));
  }
  CURVD_RETURN_IF_ERROR(CheckIntRange(field + ".hessian_overlap_k",
                                      o.hessian_overlap_k, 0,
                                      limits::kMaxEigenpairs));
  for (const auto& [name, value] :
       {std::pair<const char*, int64_t>{"max_samples", o.max_samples},
        {"max_gram_floats", o.max_gram_floats},
        {"max_gradient_floats", o.max_gradient_floats},
        {"max_eigenvector_floats", o.max_eigenvector_floats}}) {
    if (value < 1) {
      return OutOfRange(
          absl::StrCat(field, ".", name),
          absl::StrCat("(the server's cap) must be >= 1, got ", value));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckExactHessianSize(int64_t size,
                                   const ExactHessianOptions& caps) {
  if (size > caps.max_parameters) {
    return absl::InvalidArgumentError(absl::StrCat(
        "an exact Hessian of ", size,
        " parameters exceeds the server's cap of ", caps.max_parameters,
        " (--exact_hessian_max_parameters): restrict the operator to a "
        "parameter block with spec.block (names or prefixes of at most ",
        caps.max_parameters,
        " parameters in all), or start the server with a larger "
        "--exact_hessian_max_parameters"));
  }
  if (caps.return_matrix && size > caps.max_matrix_parameters) {
    return absl::InvalidArgumentError(absl::StrCat(
        "returning the Hessian matrix of ", size,
        " parameters exceeds the server's cap of ", caps.max_matrix_parameters,
        " (--exact_hessian_max_matrix_parameters): ask for the spectrum only "
        "(exact_hessian.return_matrix false), restrict the operator with "
        "spec.block, or start the server with a larger "
        "--exact_hessian_max_matrix_parameters"));
  }
  return absl::OkStatus();
}

absl::Status ValidateRequest(const MeasurementRequest& request,
                             const std::string& methods_field) {
  if (request.objective.micro_batch_size < 0) {
    return OutOfRange(
        "micro_batch_size",
        absl::StrCat("must be >= 0, got ", request.objective.micro_batch_size));
  }
  CURVD_RETURN_IF_ERROR(ValidateBlock(request.block));
  return ValidateMethods(request.methods, methods_field);
}

}  // namespace curvd::core
