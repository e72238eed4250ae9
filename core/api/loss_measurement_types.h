// Options and results of the measurements of the loss itself rather than of a
// curvature operator alone: the second-order expansion of one noisy step and
// the loss along a line. Plain structs, no torch.
#ifndef CURVD_CORE_API_LOSS_MEASUREMENT_TYPES_H_
#define CURVD_CORE_API_LOSS_MEASUREMENT_TYPES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "core/api/method_types.h"

namespace curvd::core {

// The second-order expansion of the loss change after one SGD-like step of
// size rho with gradient noise (the grokking "seed" of the issue):
//   -rho ||g||^2 + rho^2/2 g^T H g + rho^2 sigma^2 / (2 N_s) tr(H^3),
// sigma^2 = 1 / (h0 * ess). All four numbers must be > 0.
struct LossExpansionOptions {
  double rho = 0;
  double h0 = 0;
  double ess = 0;
  double num_steps = 0;      // N_s
  TraceOptions trace_cubed;  // how tr(H^3) is estimated
};

struct LossExpansionResult {
  double gradient_norm_squared = 0;      // ||g||^2
  double gradient_curvature = 0;         // g^T H g
  TraceResult trace_cubed;               // tr(H^3) with its standard error
  double sigma_squared = 0;              // 1 / (h0 * ess)
  double first_order_term = 0;           // -rho ||g||^2
  double second_order_term = 0;          // rho^2 / 2 g^T H g
  double noise_term = 0;                 // rho^2 sigma^2 / (2 N_s) tr(H^3)
  double noise_term_standard_error = 0;  // from tr(H^3)'s
  double total = 0;                      // the three terms' sum
  double total_standard_error = 0;       // = noise_term_standard_error
};

enum class SliceDirection {
  kTopEigenvector,  // the unit top eigenvector of the operator (Lanczos)
  kRandom,          // a Gaussian direction scaled to unit norm
};

// The loss at w + t v for `points` values of t evenly spaced on [t_min,
// t_max] (one point: t_min), v a unit vector in the block's coordinates (zero
// outside the block).
struct LossSliceOptions {
  SliceDirection direction = SliceDirection::kTopEigenvector;
  int points = 41;
  double t_min = -1;
  double t_max = 1;
  LanczosOptions lanczos;  // for kTopEigenvector (top_k 1 is enough)
  uint64_t seed = 0;       // for kRandom
};

struct LossSliceResult {
  std::vector<double> t;
  std::vector<double> loss;
  // How v was chosen, with its numbers ("top eigenvector of the Hessian,
  // lambda = 12.3, residual 1e-7" / "random Gaussian, unit norm, seed 3").
  std::string direction;
  double eigenvalue = 0;     // with kTopEigenvector
  double residual_norm = 0;  // ||H v - lambda v||, with kTopEigenvector
  double direction_curvature =
      0;  // v^T H v (the slice's second derivative at 0)
};

}  // namespace curvd::core

#endif  // CURVD_CORE_API_LOSS_MEASUREMENT_TYPES_H_
