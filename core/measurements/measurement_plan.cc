#include "core/measurements/measurement_plan.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "core/estimators/adaptive_trace.h"
#include "core/estimators/hutchinson.h"
#include "core/estimators/hutchpp.h"
#include "core/estimators/power_iteration.h"
#include "core/estimators/slq.h"
#include "core/estimators/trace_cubed.h"
#include "core/linalg/lanczos.h"
#include "core/measurements/exact_hessian.h"
#include "core/measurements/gop.h"
#include "core/measurements/llc.h"
#include "core/measurements/llc_calibration.h"
#include "core/measurements/loss_expansion.h"
#include "core/measurements/loss_slice.h"
#include "core/measurements/operator_check.h"
#include "core/objective/linear_operator.h"

namespace curvd::core {
namespace {

// Hutchinson applies at most this many probes per block, and a block's probes
// and products stay within about kProbeBlockBytes.
constexpr int kMaxProbeBlock = 16;
constexpr int64_t kProbeBlockBytes = int64_t{1} << 30;

std::string OperatorName(CurvatureOperator op) {
  return op == CurvatureOperator::kGgn ? "the GGN" : "the Hessian";
}

// Probes per Hutchinson block for `objective`.
int ProbeBlock(const Objective& objective) {
  const int64_t vector_bytes =
      objective.num_parameters() *
      static_cast<int64_t>(objective.vector_options().dtype().itemsize());
  // Probes, products and their elementwise product: three vectors a probe.
  return static_cast<int>(std::clamp<int64_t>(
      kProbeBlockBytes / (3 * vector_bytes), 1, kMaxProbeBlock));
}

bool SameTraceOptions(const TraceOptions& a, const TraceOptions& b) {
  return a.distribution == b.distribution && a.min_probes == b.min_probes &&
         a.max_probes == b.max_probes &&
         a.target_relative_error == b.target_relative_error && a.seed == b.seed;
}

// `progress` narrowed to [begin, end] of its range, messages after `prefix`.
Progress Narrowed(const Progress& progress, double begin, double end,
                  std::string prefix) {
  Progress narrowed;
  narrowed.cancelled = progress.cancelled;
  if (progress.report) {
    narrowed.report = [report = progress.report, begin, end,
                       prefix = std::move(prefix)](double fraction,
                                                   const std::string& message) {
      report(begin + (end - begin) * fraction, absl::StrCat(prefix, message));
    };
  }
  return narrowed;
}

// z^T A^power z for the start vector z of each SLQ run, from its quadrature:
// with Rademacher z (||z||^2 = P) and v = z / ||z||, that is P * sum_j
// tau_j^2 theta_j^power, exact to rounding for power <= 2 steps - 1 and for an
// invariant run (slq.h). The terms end before the first run where it is not.
std::vector<double> StartVectorTerms(const SlqResult& slq, int power) {
  std::vector<double> terms;
  for (const SlqRun& run : slq.runs) {
    if (power > 2 * run.steps - 1 && !run.invariant) break;
    double sum = 0;
    for (size_t j = 0; j < run.nodes.size(); ++j) {
      sum += run.weights[j] * std::pow(run.nodes[j], power);
    }
    terms.push_back(static_cast<double>(slq.num_parameters) * sum);
  }
  return terms;
}

// Runs the methods of one plan in turn, in Method's order, and keeps what
// they share. Each kind has one Run overload: a kind without one does not
// compile.
class PlanRunner {
 public:
  PlanRunner(Objective& objective, std::vector<Objective*> chain_helpers,
             CurvatureOperator op, MeasurementResult* result)
      : objective_(objective),
        chain_helpers_(std::move(chain_helpers)),
        op_kind_(op),
        result_(result),
        size_(objective.num_parameters()),
        options_(objective.vector_options()) {
    if (op == CurvatureOperator::kGgn) {
      op_ = [&objective](const torch::Tensor& v) { return objective.Ggnvp(v); };
      block_op_ = [&objective](const torch::Tensor& v) {
        return objective.Ggnvps(v);
      };
    } else {
      op_ = [&objective](const torch::Tensor& v) { return objective.Hvp(v); };
      block_op_ = [&objective](const torch::Tensor& v) {
        return objective.Hvps(v);
      };
    }
  }

  // Runs `method`, filling its result.
  absl::Status Run(Method& method, const Progress& progress) {
    return std::visit([&](auto& m) { return Run(m, progress); }, method);
  }

  // CheckOperatorIsFixed on the plan's operator.
  absl::StatusOr<double> CheckOperatorIsFixed(uint64_t seed) const {
    return core::CheckOperatorIsFixed(op_, size_, options_, seed);
  }

 private:
  absl::Status Run(SharpnessMethod& m, const Progress& progress) {
    const int64_t hvps_before = objective_.hvps();
    const LossSliceMethod* slice = result_->Find<LossSliceMethod>();
    const bool slice_wants_vector =
        slice != nullptr &&
        slice->options.direction == SliceDirection::kTopEigenvector;
    CURVD_ASSIGN_OR_RETURN(
        m.result, Lanczos(op_, size_, options_, m.options, progress,
                          slice_wants_vector ? &top_eigenvectors_ : nullptr));
    sharpness_hvps_ = objective_.hvps() - hvps_before;
    return absl::OkStatus();
  }

  absl::Status Run(SpectralDensityMethod& m, const Progress& progress) {
    CURVD_ASSIGN_OR_RETURN(
        m.result,
        StochasticLanczosQuadrature(op_, size_, options_, m.options, progress));
    density_ = &m;
    return absl::OkStatus();
  }

  absl::Status Run(HessianTraceMethod& m, const Progress& progress) {
    const std::vector<double> known = SharedStartTerms(m.options, 1);
    CURVD_ASSIGN_OR_RETURN(
        m.result, BlockHutchinson(block_op_, size_, options_, m.options,
                                  progress, ProbeBlock(objective_), known));
    ShareStartVectors(m.kName, "z^T H z", known.size(), m.result.probes, 1);
    return absl::OkStatus();
  }

  absl::Status Run(HutchppMethod& m, const Progress& progress) {
    CURVD_ASSIGN_OR_RETURN(
        m.result, HutchPlusPlus(op_, size_, options_, m.options, progress));
    return absl::OkStatus();
  }

  // Shares nothing: its probes follow its own decision.
  absl::Status Run(AdaptiveTraceMethod& m, const Progress& progress) {
    CURVD_ASSIGN_OR_RETURN(
        m.result, AdaptiveTrace(op_, size_, options_, m.options, progress));
    return absl::OkStatus();
  }

  absl::Status Run(TraceCubedMethod& m, const Progress& progress) {
    const int64_t hvps_before = objective_.hvps();
    CURVD_ASSIGN_OR_RETURN(m.result,
                           EstimateTraceCubed(m.options, m.kName, progress));
    trace_cubed_ = &m;
    trace_cubed_hvps_ = objective_.hvps() - hvps_before;
    return absl::OkStatus();
  }

  absl::Status Run(LossExpansionMethod& m, const Progress& progress) {
    const TraceOptions& wanted = m.options.trace_cubed;
    TraceResult trace_cubed;
    if (trace_cubed_ != nullptr &&
        SameTraceOptions(wanted, trace_cubed_->options)) {
      trace_cubed = trace_cubed_->result;
      result_->shared.push_back(absl::StrFormat(
          "loss_expansion took tr(H^3) from trace_h3 (the same options): "
          "%d HVPs saved",
          trace_cubed_hvps_));
    } else {
      CURVD_ASSIGN_OR_RETURN(
          trace_cubed,
          EstimateTraceCubed(wanted, "loss_expansion's tr(H^3)", progress));
    }
    CURVD_ASSIGN_OR_RETURN(
        m.result,
        MeasureLossExpansion(objective_, op_, m.options, trace_cubed));
    return absl::OkStatus();
  }

  absl::Status Run(ExactHessianMethod& m, const Progress& progress) {
    CURVD_ASSIGN_OR_RETURN(
        m.result, ExactHessian(op_, size_, options_, m.options, progress));
    return absl::OkStatus();
  }

  absl::Status Run(PowerIterationMethod& m, const Progress& progress) {
    CURVD_ASSIGN_OR_RETURN(
        m.result, PowerIteration(op_, size_, options_, m.options, progress));
    return absl::OkStatus();
  }

  absl::Status Run(LossSliceMethod& m, const Progress& progress) {
    const LossSliceOptions& slice = m.options;
    const SharpnessMethod* sharpness = result_->Find<SharpnessMethod>();
    SliceDirectionVector direction;
    double slice_begin = 0;  // of progress: the share before is Lanczos'
    if (slice.direction == SliceDirection::kRandom) {
      direction = RandomDirection(size_, options_, slice.seed);
    } else if (!top_eigenvectors_.empty() && sharpness != nullptr) {
      direction = TopEigenvectorDirection(
          top_eigenvectors_[0], sharpness->result.top[0],
          OperatorName(op_kind_), "the sharpness Lanczos run");
      result_->shared.push_back(absl::StrFormat(
          "loss_slice took its direction, the top eigenvector, from the "
          "sharpness Lanczos run: one Lanczos run instead of two (that run "
          "took %d HVPs)",
          sharpness_hvps_));
    } else {
      // Only the top pair is needed.
      LanczosOptions lanczos = slice.lanczos;
      lanczos.top_k = 1;
      lanczos.bottom_k = 0;
      slice_begin = 0.9;
      std::vector<torch::Tensor> vectors;
      CURVD_ASSIGN_OR_RETURN(
          SharpnessResult top,
          Lanczos(op_, size_, options_, lanczos,
                  Narrowed(progress, 0, slice_begin, "Lanczos: "), &vectors));
      if (vectors.empty() || top.top.empty()) {
        return absl::InternalError("Lanczos returned no top eigenvector");
      }
      direction = TopEigenvectorDirection(vectors[0], top.top[0],
                                          OperatorName(op_kind_),
                                          "a Lanczos run of the loss slice");
    }
    CURVD_ASSIGN_OR_RETURN(
        m.result, SliceLoss(objective_, op_, slice, std::move(direction),
                            Narrowed(progress, slice_begin, 1, "")));
    return absl::OkStatus();
  }

  // gop differentiates one sample at a time, without the operator, and
  // shares nothing; it runs after every user of the operator and with the
  // retained graphs freed, whose activations would sit beside its per-sample
  // gradients and Gram matrices (retain_graphs() is restored).
  absl::Status Run(GopMethod& m, const Progress& progress) {
    CURVD_ASSIGN_OR_RETURN(m.result, WithoutRetainedGraphs([&] {
                             return MeasureGop(objective_, m.options, progress);
                           }));
    return absl::OkStatus();
  }

  // The LLC kinds move the parameters, which retained graphs do not allow:
  // they free them (the chains build their own; retain_graphs() is restored,
  // as LossAlong leaves it), share nothing and come last. The n_beta used is
  // written into the options, so that the result states it beside its
  // convention.
  absl::Status Run(LlcMethod& m, const Progress& progress) {
    CURVD_ASSIGN_OR_RETURN(m.result,
                           WithoutRetainedGraphs([&] {
                             std::vector<Objective*> objectives = {&objective_};
                             objectives.insert(objectives.end(),
                                               chain_helpers_.begin(),
                                               chain_helpers_.end());
                             return MeasureLlc(objectives, m.options, progress);
                           }));
    m.options.n_beta = m.result.n_beta;
    return absl::OkStatus();
  }

  absl::Status Run(LlcCalibrationMethod& m, const Progress& progress) {
    CURVD_ASSIGN_OR_RETURN(m.result, WithoutRetainedGraphs([&] {
                             return MeasureLlcCalibration(objective_, m.options,
                                                          progress);
                           }));
    return absl::OkStatus();
  }

  // Calls `measure` with the objective's retained graphs freed, then restores
  // retain_graphs().
  template <typename F>
  std::invoke_result_t<F> WithoutRetainedGraphs(F measure) {
    const bool retain = objective_.retain_graphs();
    objective_.set_retain_graphs(false);
    auto result = measure();
    objective_.set_retain_graphs(retain);
    return result;
  }

  // The terms z^T A^power z of the SLQ start vectors, when an estimator with
  // `trace` options draws the same probes first: SLQ ran with Rademacher
  // probes (where the quadrature gives the terms of z itself, ||z||^2 = P),
  // and the estimator has the same distribution and seed. Empty otherwise.
  std::vector<double> SharedStartTerms(const TraceOptions& trace,
                                       int power) const {
    if (density_ == nullptr) return {};
    const SlqOptions& slq = density_->options;
    if (slq.distribution != ProbeDistribution::kRademacher ||
        trace.distribution != slq.distribution || trace.seed != slq.seed) {
      return {};
    }
    return StartVectorTerms(density_->result, power);
  }

  // Says in `shared` that `who` took `available` start-vector terms ("what")
  // of which the first min(available, probes) were used, each saving
  // `products_per_probe` products.
  void ShareStartVectors(const std::string& who, const std::string& what,
                         size_t available, int probes, int products_per_probe) {
    const int used = std::min(static_cast<int>(available), probes);
    if (used == 0) return;
    result_->shared.push_back(absl::StrFormat(
        "%s reused %d of the %d spectral_density start vectors as its first "
        "probes (%s from the Lanczos quadrature): %d HVPs saved",
        who, used, static_cast<int>(density_->result.runs.size()), what,
        used * products_per_probe));
  }

  absl::StatusOr<TraceResult> EstimateTraceCubed(const TraceOptions& trace,
                                                 const std::string& who,
                                                 const Progress& progress) {
    const std::vector<double> known = SharedStartTerms(trace, 3);
    CURVD_ASSIGN_OR_RETURN(
        TraceResult result,
        TraceCubed(op_, size_, options_, trace, progress, known));
    ShareStartVectors(who, "z^T H^3 z", known.size(), result.probes, 2);
    return result;
  }

  Objective& objective_;
  std::vector<Objective*> chain_helpers_;  // the llc kind's other devices
  const CurvatureOperator op_kind_;
  MeasurementResult* result_;
  const int64_t size_;
  const torch::TensorOptions options_;
  LinearOperator op_;
  BlockOperator block_op_;
  // What later methods share, set once the producer ran (pointers into
  // result_->methods, which does not change size while the plan runs).
  const SpectralDensityMethod* density_ = nullptr;
  const TraceCubedMethod* trace_cubed_ = nullptr;
  int64_t sharpness_hvps_ = 0;
  int64_t trace_cubed_hvps_ = 0;
  // Of the sharpness run, when the loss slice wants its direction.
  std::vector<torch::Tensor> top_eigenvectors_;
};

}  // namespace

absl::Status RunMeasurementPlan(Objective& objective,
                                const MeasurementRequest& request,
                                const Progress& progress,
                                MeasurementResult* result,
                                const std::vector<Objective*>& chain_helpers) {
  CURVD_RETURN_IF_ERROR(ValidateRequest(request));
  result->methods = request.methods;
  std::stable_sort(
      result->methods.begin(), result->methods.end(),
      [](const Method& a, const Method& b) { return a.index() < b.index(); });
  PlanRunner runner(objective, chain_helpers, request.op, result);
  if (request.objective.train_mode) {
    // Graphs rebuilt for both products, as a product without retained graphs
    // rebuilds them: a mask drawn anew at each build shows.
    const bool retain = objective.retain_graphs();
    objective.set_retain_graphs(false);
    absl::StatusOr<double> difference =
        runner.CheckOperatorIsFixed(objective.forward_seed());
    objective.set_retain_graphs(retain);
    if (!difference.ok()) return difference.status();
    result->operator_check_difference = *difference;
  }
  const size_t count = result->methods.size();
  for (size_t i = 0; i < count; ++i) {
    Method& method = result->methods[i];
    CURVD_RETURN_IF_ERROR(runner.Run(
        method,
        Narrowed(progress, static_cast<double>(i) / count,
                 static_cast<double>(i + 1) / count,
                 count > 1 ? absl::StrCat(MethodName(method), ": ") : "")));
  }
  if (count > 1) {
    result->shared.push_back(
        objective.retain_graphs()
            ? absl::StrFormat(
                  "the %d methods shared one objective and its retained "
                  "micro-batch graphs, each built once for the whole plan",
                  count)
            : absl::StrFormat(
                  "the %d methods shared one objective (its micro-batch "
                  "graphs were not retained: each product rebuilt them)",
                  count));
  }
  return absl::OkStatus();
}

}  // namespace curvd::core
