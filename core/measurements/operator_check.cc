#include "core/measurements/operator_check.h"

#include <torch/torch.h>

#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "core/linalg/lanczos_kernel.h"

namespace curvd::core {

double FixedOperatorTolerance(const torch::TensorOptions& options) {
  return std::sqrt(UnitRoundoff(options));
}

absl::StatusOr<double> CheckOperatorIsFixed(const LinearOperator& op,
                                            int64_t size,
                                            const torch::TensorOptions& options,
                                            uint64_t seed) {
  at::Generator generator = SeededGenerator(seed);
  const torch::Tensor v =
      RandomProbe(size, ProbeDistribution::kGaussian, generator, options);
  CURVD_ASSIGN_OR_RETURN(const torch::Tensor first, op(v));
  CURVD_ASSIGN_OR_RETURN(const torch::Tensor second, op(v));
  // Both norms in float64, read at once.
  const torch::Tensor first64 = first.to(torch::kFloat64);
  const torch::Tensor norms =
      torch::stack({first64.norm(), (first64 - second.to(torch::kFloat64)).norm()})
          .cpu();
  const double norm = norms[0].item<double>();
  const double difference = norms[1].item<double>();
  if (!std::isfinite(norm) || !std::isfinite(difference)) {
    return absl::InvalidArgumentError(
        "a product of the operator with a Gaussian vector is not finite");
  }
  const double relative = norm > 0 ? difference / norm : difference;
  const double tolerance = FixedOperatorTolerance(options);
  if (!(relative <= tolerance)) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "the operator is not a fixed matrix: two products with the same "
        "vector differ by %.3g relative (tolerance %.2g, sqrt of the dtype's "
        "epsilon), so no measurement of it means anything. The likely cause "
        "is randomness in the model's forward pass that curvd does not fix: "
        "curvd seeds torch's default generator of the device before every "
        "micro-batch (MeasurementSpec.forward_seed), so dropout and torch.rand "
        "are fixed, but a generator of the model's own (torch.Generator, "
        "numpy, Python's random) is not. Draw from the default generator, or "
        "measure in eval mode",
        relative, tolerance));
  }
  return relative;
}

}  // namespace curvd::core
