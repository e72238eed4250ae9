// Zoo model specs as curvctl writes them ("mlp:784,128,10:tanh"), and the
// starting weights of a zoo MLP, so that a run can be measured at
// initialisation without a trainer or torch on the client.
#ifndef CURVD_CLIENT_ZOO_WEIGHTS_H_
#define CURVD_CLIENT_ZOO_WEIGHTS_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "curvd/v1/resources.pb.h"

namespace curvd::client {

// Parses "ARCH:W0,W1,...,WN[:ACTIVATION]" (activation default "tanh").
// InvalidArgument for another architecture than "mlp", fewer than two widths, a
// width outside [1, 1<<20], or an activation other than tanh, relu, gelu.
absl::StatusOr<curvd::v1::ZooModel> ParseZooSpec(const std::string& text);

// A safetensors state dict ("fc{i}.weight" [out, in] and "fc{i}.bias" [out],
// float32) drawn as torch.nn.Linear initialises itself: uniform on
// ±1/sqrt(fan_in), deterministic for a given `seed`. `model` must have passed
// ParseZooSpec's checks.
absl::StatusOr<std::string> InitialZooWeights(const curvd::v1::ZooModel& model,
                                              uint64_t seed);

}  // namespace curvd::client

#endif  // CURVD_CLIENT_ZOO_WEIGHTS_H_
