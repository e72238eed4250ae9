#include "core/measurements/gop_hessian_overlap.h"

#include <torch/torch.h>

#include <algorithm>
#include <vector>

#include "common/status_macros.h"
#include "core/linalg/lanczos.h"
#include "core/linalg/subspace_overlap.h"
#include "core/objective/linear_operator.h"

namespace curvd::core {

absl::StatusOr<GopHessianOverlap> MeasureGopHessianOverlap(
    Objective& objective, int k, uint64_t seed,
    const torch::Tensor& gop_vectors, const Progress& progress) {
  LanczosOptions lanczos;
  lanczos.top_k = k;
  lanczos.seed = seed;
  // Always the Hessian: gop ignores the request's operator (ADR 0013).
  const LinearOperator hessian = [&objective](const torch::Tensor& v) {
    return objective.Hvp(v);
  };
  std::vector<torch::Tensor> ritz_vectors;
  CURVD_ASSIGN_OR_RETURN(
      const SharpnessResult run,
      Lanczos(hessian, objective.num_parameters(), objective.vector_options(),
              lanczos, progress, &ritz_vectors));
  GopHessianOverlap result;
  result.k = k;
  result.gop_dimension = gop_vectors.size(0);
  result.hessian_dimension = static_cast<int64_t>(ritz_vectors.size());
  result.hessian_eigenpairs = run.top;
  result.lanczos_iterations = run.iterations;
  result.lanczos_converged = run.converged;
  const torch::Tensor hessian_vectors =
      ritz_vectors.empty()
          ? torch::zeros({0, objective.num_parameters()}, gop_vectors.options())
          : torch::stack(ritz_vectors).to(torch::kFloat64);
  const SubspaceOverlap overlap =
      ComputeSubspaceOverlap(gop_vectors, hessian_vectors);
  result.overlap = overlap.overlap;
  result.cosines = overlap.cosines;
  result.random_baseline =
      static_cast<double>(
          std::max(result.gop_dimension, result.hessian_dimension)) /
      static_cast<double>(objective.num_parameters());
  return result;
}

}  // namespace curvd::core
