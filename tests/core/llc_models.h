// Models whose local learning coefficient singular learning theory knows
// (../shared/VALIDATION.md), for llc_theory_test. Each evaluates several
// parameter sets in one pass (Model::SupportsChains), so that MeasureLlc runs
// its chains batched as it does for the zoo MLP.
#ifndef CURVD_TESTS_CORE_LLC_MODELS_H_
#define CURVD_TESTS_CORE_LLC_MODELS_H_

#include <torch/torch.h>

#include <cmath>
#include <vector>

#include "tests/core/toy_models.h"

namespace curvd::core::testing {

// N inputs in R^k with (1/N) X^T X = I_k exactly: sqrt(N) times the
// orthonormal columns of a seeded Gaussian [N, k] (N >= k), a fixed random
// rotation. Models linear in x then have Hessians with no sampling spread.
inline torch::Tensor WhitenedInputs(int64_t n, int64_t k, uint64_t seed) {
  const torch::Tensor q = std::get<0>(torch::linalg_qr(SeededRandn({n, k}, seed)));
  return q * std::sqrt(static_cast<double>(n));
}

// f(x; w) = x . w[0:r] with w of d entries: the loss depends on r of the d
// directions. With whitened inputs and targets f(x; w*), MSE's L(w) - L(w*)
// = ||w[0:r] - w*[0:r]||^2 and H = 2 I_r (+ 0 on the other d - r): the
// minimally singular model of VALIDATION.md, lambda = r / 2.
class MinimallySingularModel : public ToyModel {
 public:
  MinimallySingularModel(int64_t d, int64_t r, uint64_t seed) : r_(r) {
    parameters_ = {SeededRandn({d}, seed)};
  }
  torch::Tensor Forward(const torch::Tensor& x) override {
    return x.mv(parameters_[0].narrow(0, 0, r_)).unsqueeze(1);
  }
  bool SupportsChains() const override { return true; }
  torch::Tensor ForwardChains(const std::vector<torch::Tensor>& w,
                              const torch::Tensor& x) override {
    return torch::bmm(x, w[0].narrow(1, 0, r_).unsqueeze(2));  // [C, B, 1]
  }

 private:
  int64_t r_;
};

// f(x; w) = x prod_i w_i^{p_i}, one scalar input and output, w* = 0.
class MonomialModel : public ToyModel {
 public:
  explicit MonomialModel(std::vector<int64_t> powers)
      : powers_(torch::tensor(powers, torch::kFloat64)) {
    parameters_ = {torch::zeros({static_cast<int64_t>(powers.size())},
                                torch::kFloat64)};
  }
  torch::Tensor Forward(const torch::Tensor& x) override {
    return x * torch::pow(parameters_[0], Powers()).prod();
  }
  bool SupportsChains() const override { return true; }
  torch::Tensor ForwardChains(const std::vector<torch::Tensor>& w,
                              const torch::Tensor& x) override {
    // x [C, B, 1] times [C] per chain.
    return x * torch::pow(w[0], Powers()).prod(1).view({-1, 1, 1});
  }

 private:
  torch::Tensor Powers() const {
    return powers_.to(parameters_[0].options());
  }
  torch::Tensor powers_;
};

// f(x) = x W_1^T W_2^T ... W_L^T with W_l [H_l, H_{l-1}]: a deep linear
// network without biases, widths H_0 (input) .. H_L (output). Its parameters
// start at `scale` times seeded Gaussians (0: every weight 0).
class DeepLinearNetwork : public ToyModel {
 public:
  DeepLinearNetwork(const std::vector<int64_t>& widths, double scale,
                    uint64_t seed) {
    for (size_t l = 0; l + 1 < widths.size(); ++l) {
      parameters_.push_back(SeededRandn({widths[l + 1], widths[l]}, seed + l) *
                            scale);
    }
  }
  torch::Tensor Forward(const torch::Tensor& x) override {
    torch::Tensor h = x;
    for (const torch::Tensor& w : parameters_) h = h.mm(w.t());
    return h;
  }
  bool SupportsChains() const override { return true; }
  torch::Tensor ForwardChains(const std::vector<torch::Tensor>& w,
                              const torch::Tensor& x) override {
    torch::Tensor h = x;
    for (const torch::Tensor& layer : w) h = torch::bmm(h, layer.transpose(1, 2));
    return h;
  }
};

}  // namespace curvd::core::testing

#endif  // CURVD_TESTS_CORE_LLC_MODELS_H_
