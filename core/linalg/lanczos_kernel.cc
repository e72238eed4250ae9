#include "core/linalg/lanczos_kernel.h"

#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace curvd::core {
namespace {

thread_local int64_t host_reads_on_this_thread = 0;

// Scalars computed on the device, copied to the host in one transfer (one wait
// for the device), in float64.
template <size_t N>
std::array<double, N> ReadToHost(const std::array<torch::Tensor, N>& scalars,
                                 int64_t* reads) {
  const torch::Tensor host =
      torch::stack(scalars).to(torch::kCPU, torch::kFloat64).contiguous();
  ++*reads;
  ++host_reads_on_this_thread;
  std::array<double, N> values;
  std::copy_n(host.data_ptr<double>(), N, values.begin());
  return values;
}

}  // namespace

double UnitRoundoff(const torch::TensorOptions& options) {
  return options.dtype() == torch::kFloat64
             ? std::numeric_limits<double>::epsilon()
             : static_cast<double>(std::numeric_limits<float>::epsilon());
}

int64_t LanczosHostReadsOnThisThread() { return host_reads_on_this_thread; }

LanczosKernel::LanczosKernel(int64_t max_steps, int64_t size,
                             const torch::TensorOptions& options,
                             int64_t initial_rows, std::string name)
    : max_steps_(max_steps),
      eps_(UnitRoundoff(options)),
      name_(std::move(name)),
      rows_(torch::empty(
          {std::clamp<int64_t>(initial_rows, 1, max_steps), size}, options)),
      coefficients_(torch::empty({max_steps}, options)),
      residual_(torch::empty({size}, options)) {}

void LanczosKernel::Append(const torch::Tensor& w, const torch::Tensor& norm) {
  if (used_ == rows_.size(0)) {
    const int64_t grown = std::min(2 * rows_.size(0), max_steps_);
    rows_ =
        torch::cat({rows_, torch::empty({grown - rows_.size(0), rows_.size(1)},
                                        rows_.options())});
  }
  rows_[used_++].copy_(w).div_(norm);
}

const torch::Tensor& LanczosKernel::Orthogonalise(const torch::Tensor& w) {
  // Classical Gram-Schmidt twice, each pass two matrix-vector products into
  // the reused buffers: once is not enough in floating point (Kahan and
  // Parlett's "twice is enough").
  const torch::Tensor q = basis();
  torch::Tensor c = coefficients_.narrow(0, 0, used_);
  torch::mv_out(c, q, w);
  torch::addmv_out(residual_, w, q.t(), c, /*beta=*/1, /*alpha=*/-1);
  torch::mv_out(c, q, residual_);
  residual_.addmv_(q.t(), c, /*beta=*/1, /*alpha=*/-1);
  return residual_;
}

absl::StatusOr<LanczosTridiagonal> LanczosKernel::Run(
    const LinearOperator& op, const torch::Tensor& start,
    const LanczosHooks& hooks) {
  const int64_t size = rows_.size(1);
  used_ = 0;
  Append(start, start.norm());
  LanczosTridiagonal t;
  for (int64_t step = 0; step < max_steps_; ++step) {
    if (hooks.before_step) CURVD_RETURN_IF_ERROR(hooks.before_step(step));
    const torch::Tensor q = rows_[step];
    CURVD_ASSIGN_OR_RETURN(const torch::Tensor product, op(q));
    const torch::Tensor alpha_on_device = q.dot(product);
    const torch::Tensor& r = Orthogonalise(product);
    const torch::Tensor beta_on_device = r.norm();
    const auto [alpha, beta] =
        ReadToHost<2>({alpha_on_device, beta_on_device}, &t.host_reads);
    if (!std::isfinite(alpha) || !std::isfinite(beta)) {
      return absl::InvalidArgumentError(
          absl::StrCat("the operator product at ", name_, " step ", step,
                       " is not finite (alpha = q^T A q = ", alpha, ")"));
    }
    t.alphas.push_back(alpha);
    CURVD_ASSIGN_OR_RETURN(const LanczosNext next,
                           hooks.after_step({step, beta, &t.alphas, &t.betas}));
    if (next == LanczosNext::kStop || step + 1 == max_steps_ ||
        step + 1 == size) {
      break;
    }
    if (next == LanczosNext::kExtend) {
      t.betas.push_back(beta);
      Append(r, beta_on_device);
      continue;
    }
    const torch::Tensor fresh = hooks.fresh_vector();
    const torch::Tensor& restart = Orthogonalise(fresh);
    const torch::Tensor restart_norm = restart.norm();
    const auto [norm, fresh_norm] =
        ReadToHost<2>({restart_norm, fresh.norm()}, &t.host_reads);
    // Nothing of a random vector left but rounding noise: the basis already
    // spans the space.
    if (!(norm > std::sqrt(eps_) * fresh_norm)) break;
    t.betas.push_back(0.0);
    Append(restart, restart_norm);
  }
  return t;
}

}  // namespace curvd::core
