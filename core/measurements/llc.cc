#include "core/measurements/llc.h"

namespace curvd::core {

// Placeholder while the chains, samplers and diagnostics are built in
// parallel (issue 12); replaced in the same session.
absl::StatusOr<LlcResult> MeasureLlc(Objective&, const LlcOptions&,
                                     const Progress&) {
  return absl::UnimplementedError("the llc kind is being built (issue 12)");
}

}  // namespace curvd::core
