// A symmetric linear operator on flat vectors on a device (a Hessian, given by
// Hessian-vector products), and seeded random probe vectors shared by the
// iterative methods. Internal to core (includes torch).
#ifndef CURVD_CORE_OBJECTIVE_LINEAR_OPERATOR_H_
#define CURVD_CORE_OBJECTIVE_LINEAR_OPERATOR_H_

#include <ATen/core/Generator.h>
#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "core/api/measurement.h"

namespace curvd::core {

// y = A x for a symmetric A; x and y have the operator's size, device and
// dtype. An error status (a non-finite product, say) ends the method using it.
// May throw torch errors, which propagate to the engine boundary.
using LinearOperator =
    std::function<absl::StatusOr<torch::Tensor>(const torch::Tensor&)>;

// Y = A X for a block X [k, size] of k vectors as rows, Y [k, size], with the
// same contract as LinearOperator otherwise. An implementation may share work
// between the vectors of a block (the objective builds each micro-batch's
// graph once for all of them), so a block of k costs less than k products.
using BlockOperator =
    std::function<absl::StatusOr<torch::Tensor>(const torch::Tensor&)>;

// A CPU generator seeded with `seed`: the source of the probes' keys (below)
// and of test data.
at::Generator SeededGenerator(uint64_t seed);

// A generator of `device` (CPU or CUDA) of its own, seeded with `seed`: a
// copy of the device's default generator, so that drawing from it leaves the
// default (which seeds the forward passes, objective.h) untouched. Same seed,
// same device: the same stream.
at::Generator DeviceGenerator(const torch::Device& device, uint64_t seed);

// A random vector of `size` elements with `options`: +-1 with equal
// probability (kRademacher) or independent N(0, 1) entries (kGaussian). Only
// one 64-bit key per probe is drawn from `generator` (on the CPU); the entries
// are expanded from it on the probe's own device by a counter-based generator,
// splitmix64 (Steele, Lea and Flood 2014): word w of a probe is
// Mix(key + (w + 1) * 0x9E3779B97F4A7C15). Rademacher entry 64 w + b is bit b
// of word w; Gaussian entries 2p and 2p + 1 are the Box-Muller pair of words
// 2p and 2p + 1 taken as 53-bit uniforms, computed in float64 and then
// rounded to the dtype. So a seed gives the same probes on every device, in
// every dtype (Rademacher bit for bit; Gaussian to float64 rounding of log,
// sqrt, cos and sin), and nothing but the key crosses from the host: on a GPU a
// probe costs a few elementwise kernels instead of milliseconds of host work.
torch::Tensor RandomProbe(int64_t size, ProbeDistribution distribution,
                          at::Generator& generator,
                          const torch::TensorOptions& options);

// `count` probes as the rows of a [count, size] tensor with `options`: the same
// vectors, in order, as `count` calls of RandomProbe, made in one pass.
torch::Tensor RandomProbes(int64_t count, int64_t size,
                           ProbeDistribution distribution,
                           at::Generator& generator,
                           const torch::TensorOptions& options);

// Advances `generator` past `count` probes, as RandomProbes(count, ...)
// would, without making them (one key each): a method that knows the first
// probes' results already continues the same stream after them.
void SkipProbes(int64_t count, at::Generator& generator);

// The first `count` 64-bit words of the counter-based stream of `key` (see
// RandomProbe) as an int64 tensor [count] on `device`, the bits of the uint64
// words. Exposed for its known-answer test.
torch::Tensor SplitMix64Words(uint64_t key, int64_t count,
                              const torch::Device& device);

}  // namespace curvd::core

#endif  // CURVD_CORE_OBJECTIVE_LINEAR_OPERATOR_H_
