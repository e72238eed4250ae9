// One probe's Hutchinson term and the squared norm of its product, read
// together, shared by Hutch++ and the adaptive trace. Internal to core
// (includes torch).
#ifndef CURVD_CORE_ESTIMATORS_TERM_AND_NORM_H_
#define CURVD_CORE_ESTIMATORS_TERM_AND_NORM_H_

#include <torch/torch.h>

#include <utility>

namespace curvd::core {

// (v^T A v, |A v|^2) in double for a probe v and its product av, read from
// the device with one copy.
inline std::pair<double, double> TermAndNormSquared(const torch::Tensor& v,
                                                    const torch::Tensor& av) {
  const torch::Tensor both =
      torch::stack({v.dot(av), av.dot(av)}).to(torch::kCPU, torch::kFloat64);
  return {both[0].item<double>(), both[1].item<double>()};
}

}  // namespace curvd::core

#endif  // CURVD_CORE_ESTIMATORS_TERM_AND_NORM_H_
