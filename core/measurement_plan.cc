#include "core/measurement_plan.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/exact_hessian.h"
#include "core/hutchinson.h"
#include "core/hutchpp.h"
#include "core/lanczos.h"
#include "core/linear_operator.h"
#include "core/loss_expansion.h"
#include "core/loss_slice.h"
#include "core/power_iteration.h"
#include "core/slq.h"
#include "core/status_macros.h"
#include "core/trace_cubed.h"

namespace curvd::core {
namespace {

// Hutchinson applies at most this many probes per block, and a block's probes
// and products stay within about kProbeBlockBytes.
constexpr int kMaxProbeBlock = 16;
constexpr int64_t kProbeBlockBytes = int64_t{1} << 30;

// Producers of what is shared run before their users; the loss slice, whose
// LossAlong frees the retained graphs, runs last.
constexpr MeasurementKind kRunOrder[] = {
    MeasurementKind::kSharpness,    MeasurementKind::kSpectralDensity,
    MeasurementKind::kHessianTrace, MeasurementKind::kHutchpp,
    MeasurementKind::kTraceCubed,   MeasurementKind::kLossExpansion,
    MeasurementKind::kExactHessian, MeasurementKind::kPowerIteration,
    MeasurementKind::kLossSlice,
};

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

// Runs the methods of one plan in turn and keeps what they share.
class PlanRunner {
 public:
  PlanRunner(Objective& objective, const MeasurementRequest& request,
             const std::vector<MeasurementKind>& kinds,
             MeasurementResult* result)
      : objective_(objective),
        request_(request),
        kinds_(kinds),
        result_(result),
        size_(objective.num_parameters()),
        options_(objective.vector_options()) {
    if (request.op == CurvatureOperator::kGgn) {
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

  // Runs `kind`, filling its field of the result.
  absl::Status Run(MeasurementKind kind, const Progress& progress) {
    const int64_t hvps_before = objective_.hvps();
    switch (kind) {
      case MeasurementKind::kSharpness: {
        const bool slice_wants_vector =
            Wants(MeasurementKind::kLossSlice) &&
            request_.loss_slice.direction == SliceDirection::kTopEigenvector;
        CURVD_ASSIGN_OR_RETURN(
            result_->sharpness,
            Lanczos(op_, size_, options_, request_.lanczos, progress,
                    slice_wants_vector ? &top_eigenvectors_ : nullptr));
        sharpness_hvps_ = objective_.hvps() - hvps_before;
        break;
      }
      case MeasurementKind::kHessianTrace: {
        const std::vector<double> known = SharedStartTerms(request_.trace, 1);
        CURVD_ASSIGN_OR_RETURN(
            result_->trace,
            BlockHutchinson(block_op_, size_, options_, request_.trace,
                            progress, ProbeBlock(objective_), known));
        ShareStartVectors("hessian_trace", "z^T H z", known.size(),
                          result_->trace.probes, 1);
        break;
      }
      case MeasurementKind::kSpectralDensity: {
        CURVD_ASSIGN_OR_RETURN(
            result_->density,
            StochasticLanczosQuadrature(op_, size_, options_, request_.density,
                                        progress));
        density_ran_ = true;
        break;
      }
      case MeasurementKind::kHutchpp: {
        CURVD_ASSIGN_OR_RETURN(
            result_->hutchpp,
            HutchPlusPlus(op_, size_, options_, request_.hutchpp, progress));
        break;
      }
      case MeasurementKind::kTraceCubed: {
        CURVD_ASSIGN_OR_RETURN(
            result_->trace_cubed,
            EstimateTraceCubed(request_.trace_cubed, "trace_h3", progress));
        trace_cubed_hvps_ = objective_.hvps() - hvps_before;
        break;
      }
      case MeasurementKind::kLossExpansion: {
        const TraceOptions& wanted = request_.loss_expansion.trace_cubed;
        TraceResult trace_cubed;
        if (Wants(MeasurementKind::kTraceCubed) &&
            SameTraceOptions(wanted, request_.trace_cubed)) {
          trace_cubed = result_->trace_cubed;
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
            result_->loss_expansion,
            MeasureLossExpansion(objective_, op_, request_.loss_expansion,
                                 trace_cubed));
        break;
      }
      case MeasurementKind::kExactHessian: {
        CURVD_ASSIGN_OR_RETURN(result_->exact_hessian,
                               ExactHessian(op_, size_, options_,
                                            request_.exact_hessian, progress));
        break;
      }
      case MeasurementKind::kPowerIteration: {
        CURVD_ASSIGN_OR_RETURN(
            result_->power_iteration,
            PowerIteration(op_, size_, options_, request_.power_iteration,
                           progress));
        break;
      }
      case MeasurementKind::kLossSlice:
        return RunLossSlice(progress);
      case MeasurementKind::kPlan:
        return absl::InvalidArgumentError("a plan cannot contain a plan");
    }
    return absl::OkStatus();
  }

  bool Wants(MeasurementKind kind) const {
    return std::find(kinds_.begin(), kinds_.end(), kind) != kinds_.end();
  }

 private:
  // The terms z^T A^power z of the SLQ start vectors, when an estimator with
  // `trace` options draws the same probes first: SLQ ran with Rademacher
  // probes (where the quadrature gives the terms of z itself, ||z||^2 = P),
  // and the estimator has the same distribution and seed. Empty otherwise.
  std::vector<double> SharedStartTerms(const TraceOptions& trace,
                                       int power) const {
    const SlqOptions& slq = request_.density;
    if (!density_ran_ || slq.distribution != ProbeDistribution::kRademacher ||
        trace.distribution != slq.distribution || trace.seed != slq.seed) {
      return {};
    }
    return StartVectorTerms(result_->density, power);
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
        who, used, static_cast<int>(result_->density.runs.size()), what,
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

  absl::Status RunLossSlice(const Progress& progress) {
    const LossSliceOptions& slice = request_.loss_slice;
    SliceDirectionVector direction;
    double slice_begin = 0;  // of progress: the share before is Lanczos'
    if (slice.direction == SliceDirection::kRandom) {
      direction = RandomDirection(size_, options_, slice.seed);
    } else if (!top_eigenvectors_.empty()) {
      direction = TopEigenvectorDirection(
          top_eigenvectors_[0], result_->sharpness.top[0],
          OperatorName(request_.op), "the sharpness Lanczos run");
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
                                          OperatorName(request_.op),
                                          "a Lanczos run of the loss slice");
    }
    CURVD_ASSIGN_OR_RETURN(
        result_->loss_slice,
        SliceLoss(objective_, op_, slice, std::move(direction),
                  Narrowed(progress, slice_begin, 1, "")));
    return absl::OkStatus();
  }

  Objective& objective_;
  const MeasurementRequest& request_;
  const std::vector<MeasurementKind>& kinds_;
  MeasurementResult* result_;
  const int64_t size_;
  const torch::TensorOptions options_;
  LinearOperator op_;
  BlockOperator block_op_;
  bool density_ran_ = false;
  int64_t sharpness_hvps_ = 0;
  int64_t trace_cubed_hvps_ = 0;
  // Of the sharpness run, when the loss slice wants its direction.
  std::vector<torch::Tensor> top_eigenvectors_;
};

}  // namespace

absl::Status RunMeasurementPlan(Objective& objective,
                                const MeasurementRequest& request,
                                const Progress& progress,
                                MeasurementResult* result) {
  const std::vector<MeasurementKind> kinds =
      request.kind == MeasurementKind::kPlan
          ? request.plan
          : std::vector<MeasurementKind>{request.kind};
  CURVD_RETURN_IF_ERROR(ValidateRequest(request));
  PlanRunner runner(objective, request, kinds, result);
  const double count = static_cast<double>(kinds.size());
  int index = 0;
  for (MeasurementKind kind : kRunOrder) {
    if (!runner.Wants(kind)) continue;
    CURVD_RETURN_IF_ERROR(runner.Run(
        kind, Narrowed(progress, index / count, (index + 1) / count,
                       count > 1 ? absl::StrCat(MeasurementKindName(kind), ": ") : "")));
    ++index;
  }
  if (kinds.size() > 1) {
    result->shared.push_back(
        objective.retain_graphs()
            ? absl::StrFormat(
                  "the %d methods shared one objective and its retained "
                  "micro-batch graphs, each built once for the whole plan",
                  index)
            : absl::StrFormat(
                  "the %d methods shared one objective (its micro-batch "
                  "graphs were not retained: each product rebuilt them)",
                  index));
  }
  return absl::OkStatus();
}

}  // namespace curvd::core
