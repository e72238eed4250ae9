#include "core/linalg/subspace_overlap.h"

#include <torch/torch.h>

#include <algorithm>
#include <limits>

namespace curvd::core {

SubspaceOverlap ComputeSubspaceOverlap(const torch::Tensor& u,
                                       const torch::Tensor& v) {
  SubspaceOverlap result;
  const int64_t smaller = std::min(u.size(0), v.size(0));
  if (smaller == 0) {
    result.overlap = std::numeric_limits<double>::quiet_NaN();
    return result;
  }
  // The Frobenius norm from the singular values, so both come from one
  // product: sum sigma^2 = ||U^T V||_F^2.
  const torch::Tensor sigma =
      torch::linalg_svdvals(u.to(torch::kFloat64).mm(v.to(torch::kFloat64).t()))
          .to(torch::kCPU)
          .contiguous();
  const double* data = sigma.data_ptr<double>();
  double squares = 0;
  for (int64_t j = 0; j < smaller; ++j) {
    result.cosines.push_back(data[j]);
    squares += data[j] * data[j];
  }
  result.overlap = squares / static_cast<double>(smaller);
  return result;
}

}  // namespace curvd::core
