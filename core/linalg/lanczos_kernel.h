// The one Lanczos tridiagonalisation of core: sharpness (lanczos.h), the loss
// slice's eigenvector (through Lanczos) and every SLQ run (slq.h) drive it,
// each with its own stopping and breakdown rules in hooks. Internal to core
// (includes torch).
#ifndef CURVD_CORE_LINALG_LANCZOS_KERNEL_H_
#define CURVD_CORE_LINALG_LANCZOS_KERNEL_H_

#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/objective/linear_operator.h"

namespace curvd::core {

// The unit roundoff of `options`' dtype: float64's for float64, float32's
// otherwise (float32 is the narrowest dtype the engine computes in).
double UnitRoundoff(const torch::TensorOptions& options);

// What the caller's hook decides after a step.
enum class LanczosNext {
  kExtend,   // append r / beta to the basis and take the next step
  kRestart,  // beta is a breakdown: go on from a fresh vector orthogonal to
             // the basis, coupled to it by 0 (stops when nothing is left)
  kStop,     // the tridiagonal matrix is final
};

// Step j of a run: T_j's diagonal so far (alphas, this step's last), its
// couplings (betas, one fewer), and beta = ||r_j||, r_j = A q_j minus its
// projection on the basis, the coupling the next step would get.
struct LanczosStep {
  int64_t index = 0;  // 0-based: the run has taken index + 1 products
  double beta = 0;
  const std::vector<double>* alphas = nullptr;
  const std::vector<double>* betas = nullptr;
};

struct LanczosHooks {
  // Called before the product of each step, with its 0-based index: the place
  // for cancellation and progress; an error ends the run with it. May be empty.
  std::function<absl::Status(int64_t step)> before_step;
  // Called after every step; decides how the run goes on, and an error ends
  // the run with it. Required. Whatever it returns, the run ends after
  // max_steps steps or once the basis spans the whole space.
  std::function<absl::StatusOr<LanczosNext>(const LanczosStep& step)>
      after_step;
  // A random vector of the operator's size and options for kRestart. Required
  // only when after_step may return kRestart.
  std::function<torch::Tensor()> fresh_vector;
};

// The tridiagonal matrix of a run: alphas on the diagonal, betas off it (one
// fewer; 0 where the run restarted after a breakdown).
struct LanczosTridiagonal {
  std::vector<double> alphas;
  std::vector<double> betas;
  // Copies from the device to the host the run made: one per step (alpha and
  // beta together) and one per restart (two norms together), nothing else.
  int64_t host_reads = 0;
};

// The Lanczos recurrence with full reorthogonalisation on vectors of `size`
// elements with `options`, for up to `max_steps` (>= 1) steps per run. The
// basis is one matrix of orthonormal rows allocated with `initial_rows` rows
// (at least 1), doubled when full up to max_steps rows, so that a caller that
// rarely needs many steps of a large model does not hold memory it will not
// use; the reorthogonalisation reuses its buffers. Thread-compatible.
class LanczosKernel {
 public:
  // `name` ("Lanczos", "SLQ Lanczos") heads the kernel's error messages.
  LanczosKernel(int64_t max_steps, int64_t size,
                const torch::TensorOptions& options, int64_t initial_rows,
                std::string name);

  // Runs Lanczos on `op` from `start` (non-zero; normalised on the device, not
  // read), replacing any previous run's basis. Step j multiplies the newest
  // basis vector q_j by `op`, takes alpha = q_j^T A q_j, orthogonalises A q_j
  // against every basis vector by classical Gram-Schmidt twice ("twice is
  // enough") and reads alpha and beta to the host in one copy: the step's only
  // wait for the device. Hooks as LanczosHooks says. InvalidArgument, naming
  // the step, if alpha or beta is not finite (a NaN or Inf anywhere in the
  // product makes alpha NaN or Inf); errors of `op` and of the hooks as they
  // are.
  absl::StatusOr<LanczosTridiagonal> Run(const LinearOperator& op,
                                         const torch::Tensor& start,
                                         const LanczosHooks& hooks);

  // The basis vectors of the last run, [alphas.size(), size]; valid until the
  // next Run.
  torch::Tensor basis() const { return rows_.narrow(0, 0, used_); }

 private:
  // Appends `w` / `norm` to the basis.
  void Append(const torch::Tensor& w, const torch::Tensor& norm);
  // w minus its projection on the basis; a buffer valid until the next call.
  const torch::Tensor& Orthogonalise(const torch::Tensor& w);

  const int64_t max_steps_;
  const double eps_;
  const std::string name_;
  torch::Tensor rows_;
  torch::Tensor coefficients_;
  torch::Tensor residual_;
  int64_t used_ = 0;
};

// The host reads of every LanczosKernel run on the calling thread so far: a
// test hook, so that tests can hold public methods (Lanczos, SLQ) to one read
// per step. Thread-safe.
int64_t LanczosHostReadsOnThisThread();

}  // namespace curvd::core

#endif  // CURVD_CORE_LINALG_LANCZOS_KERNEL_H_
