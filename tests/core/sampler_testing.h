// What the samplers' tests share: the minimally singular quadratic of
// ../shared/VALIDATION.md as a chain evaluator, the sampler's options, and
// the mean over independent chains with its standard error.
#ifndef CURVD_TESTS_CORE_SAMPLER_TESTING_H_
#define CURVD_TESTS_CORE_SAMPLER_TESTING_H_

#include <torch/torch.h>

#include <cmath>
#include <cstdint>

#include "core/api/llc_types.h"
#include "core/objective/chain_objective.h"

namespace curvd::core::testing {

// L(w) = sum_{i < rank} w_i^2 at every row of the chains, w* = 0, with its
// exact gradient. Counts its calls.
struct Quadratic {
  int64_t rank = 0;
  mutable int calls = 0;

  ChainEvaluation operator()(const torch::Tensor& chains) const {
    ++calls;
    const torch::Tensor constrained =
        (torch::arange(chains.size(1), chains.options()) < rank)
            .to(chains.scalar_type());
    return {(chains.square() * constrained).sum(1).to(torch::kFloat64),
            2 * chains * constrained};
  }
};

// n_beta E[L] under exp(-U) for the quadratic: each of the `rank`
// constrained coordinates is N(0, 1 / a), a = 2 n_beta + gamma + precision.
inline double StationaryLlc(double n_beta, const LlcOptions& o, int rank) {
  return n_beta * rank / (2 * n_beta + o.localization + o.prior_precision);
}

inline LlcOptions SamplerOptions(LlcSampler sampler, double step_size,
                                 double localization,
                                 double prior_precision = 0) {
  LlcOptions options;
  options.sampler = sampler;
  options.step_size = step_size;
  options.localization = localization;
  options.prior_precision = prior_precision;
  return options;
}

// The mean of a per-chain statistic [C] and its standard error over the
// (independent) chains.
struct ChainMean {
  double mean = 0;
  double standard_error = 0;
};

inline ChainMean MeanOverChains(const torch::Tensor& per_chain) {
  const torch::Tensor host = per_chain.to(torch::kCPU, torch::kFloat64);
  return {host.mean().item<double>(),
          host.std().item<double>() / std::sqrt(double(host.numel()))};
}

}  // namespace curvd::core::testing

#endif  // CURVD_TESTS_CORE_SAMPLER_TESTING_H_
