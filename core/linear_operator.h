// A symmetric linear operator on flat vectors on a device (a Hessian, given by
// Hessian-vector products), and seeded random probe vectors shared by the
// iterative methods. Internal to core (includes torch).
#ifndef CURVD_CORE_LINEAR_OPERATOR_H_
#define CURVD_CORE_LINEAR_OPERATOR_H_

#include <ATen/core/Generator.h>
#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <future>
#include <vector>

#include "absl/status/statusor.h"
#include "core/measurement.h"

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

// A CPU generator seeded with `seed`. Probes are drawn on the CPU in float64
// and then moved, so a seed gives the same probes on every device and in every
// dtype.
at::Generator SeededGenerator(uint64_t seed);

// A random vector of `size` elements with `options`: independent N(0, 1)
// entries (kGaussian) or +-1 with equal probability (kRademacher).
torch::Tensor RandomProbe(int64_t size, ProbeDistribution distribution,
                          at::Generator& generator,
                          const torch::TensorOptions& options);

// `count` probes as the rows of a [count, size] tensor with `options`, the same
// vectors, in order, as `count` calls of RandomProbe; moved to the device in
// one copy.
torch::Tensor RandomProbes(int64_t count, int64_t size,
                           ProbeDistribution distribution,
                           at::Generator& generator,
                           const torch::TensorOptions& options);

// The probes of RandomProbes(seed), block after block, with the drawing of the
// next block done on a helper thread while the caller's device works on the
// current one: on the CPU a probe of millions of entries takes milliseconds to
// draw, as long as a Hessian-vector product on a GPU. Same vectors, in the same
// order, as RandomProbe with SeededGenerator(seed). Thread-compatible; the
// destructor waits for a draw in flight.
class ProbeStream {
 public:
  ProbeStream(int64_t size, ProbeDistribution distribution, uint64_t seed,
              const torch::TensorOptions& options);
  ~ProbeStream();

  // The next `count` probes, [count, size] with the stream's options, and
  // starts drawing ahead so that the `next_count` after them are ready (0:
  // none). Any count may follow any other: rows drawn ahead are kept.
  torch::Tensor Next(int count, int next_count);

 private:
  // Draws `count` probes on the CPU in their raw form (int8 signs or float64
  // normals), pinned when they go to a GPU so that the copy does not wait for
  // the device.
  torch::Tensor DrawOnHost(int count);

  const int64_t size_;
  const ProbeDistribution distribution_;
  const torch::TensorOptions options_;
  at::Generator generator_;
  torch::Tensor leftover_;  // raw rows drawn, not yet handed out (host)
  std::future<torch::Tensor> pending_;
};

}  // namespace curvd::core

#endif  // CURVD_CORE_LINEAR_OPERATOR_H_
