// What the engine is asked to measure and what it returns. Plain structs, no torch:
// the server translates them to and from the proto.
#ifndef CURVD_CORE_MEASUREMENT_H_
#define CURVD_CORE_MEASUREMENT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/method_types.h"
#include "core/spectral_measurement.h"

namespace curvd::core {

enum class MeasurementKind {
  kSharpness,        // Lanczos extreme eigenvalues: lanczos -> sharpness
  kHessianTrace,     // Hutchinson tr: trace -> trace
  kSpectralDensity,  // SLQ: density -> density
  kHutchpp,          // Hutch++ tr: hutchpp -> hutchpp
  kTraceCubed,       // Hutchinson tr(H^3): trace_cubed -> trace_cubed
  kLossExpansion,    // loss_expansion -> loss_expansion
  kExactHessian,     // exact_hessian -> exact_hessian
  kPowerIteration,   // power_iteration -> power_iteration
  kLossSlice,        // loss_slice -> loss_slice
  kPlan,             // several of the above on one operator: plan
};

// The curvature operator every spectral method of a request runs on.
enum class CurvatureOperator {
  kHessian,
  // The generalised Gauss-Newton matrix J^T H_out J: J the Jacobian of the
  // model's outputs with respect to the parameters, H_out the Hessian of the
  // loss with respect to the outputs. Equal to the Hessian for a model linear
  // in its parameters; positive semi-definite for a convex loss.
  kGgn,
};

// A block of the parameters: the operator becomes its restriction H_BB to
// them, and flat vectors have the block's size (its parameters in
// Model::Parameters() order, each flattened). A parameter is in the block when
// its name equals one of `names` or starts with one of `prefixes`. Both empty:
// every parameter.
struct ParameterBlock {
  std::vector<std::string> names;
  std::vector<std::string> prefixes;

  // Whether the parameter `name` is in the block: named exactly, or starting
  // with a prefix; every parameter is when both lists are empty.
  bool Selects(const std::string& name) const;
};

// The second-order expansion of the loss change after one SGD-like step of
// size rho with gradient noise (the grokking "seed" of the issue):
//   -rho ||g||^2 + rho^2/2 g^T H g + rho^2 sigma^2 / (2 N_s) tr(H^3),
// sigma^2 = 1 / (h0 * ess). All four numbers must be > 0.
struct LossExpansionOptions {
  double rho = 0;
  double h0 = 0;
  double ess = 0;
  double num_steps = 0;  // N_s
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
  double eigenvalue = 0;         // with kTopEigenvector
  double residual_norm = 0;      // ||H v - lambda v||, with kTopEigenvector
  double direction_curvature = 0;  // v^T H v (the slice's second derivative at 0)
};

struct MeasurementRequest {
  MeasurementKind kind = MeasurementKind::kSharpness;
  ObjectiveOptions objective;
  CurvatureOperator op = CurvatureOperator::kHessian;
  ParameterBlock block;
  // The options of each kind, used when that kind runs (alone or in a plan).
  LanczosOptions lanczos;         // kSharpness
  TraceOptions trace;             // kHessianTrace
  SlqOptions density;             // kSpectralDensity
  HutchppOptions hutchpp;         // kHutchpp
  TraceOptions trace_cubed;       // kTraceCubed
  LossExpansionOptions loss_expansion;
  ExactHessianOptions exact_hessian;
  PowerIterationOptions power_iteration;
  LossSliceOptions loss_slice;
  // kPlan: the kinds to run on one objective, each at most once, none kPlan,
  // at least one.
  std::vector<MeasurementKind> plan;
};

// The proto's field name of `kind` in MeasurementSpec and MeasurementPlanSpec
// ("sharpness", "trace_h3", "plan", ...), for messages. Thread-safe.
const char* MeasurementKindName(MeasurementKind kind);

// Returns InvalidArgument naming the first field out of range (k = 0, probes = 0,
// tolerance outside (0, 1), a grid of zero points, ...). Defaults are in range
// except where a field has no sensible default (the loss expansion's numbers).
absl::Status ValidateRequest(const MeasurementRequest& request);

struct MeasurementResult {
  MeasurementKind kind = MeasurementKind::kSharpness;
  // Each is set when its kind ran (as `kind`, or in the plan).
  SharpnessResult sharpness;
  TraceResult trace;
  SlqResult density;
  HutchppResult hutchpp;
  TraceResult trace_cubed;
  LossExpansionResult loss_expansion;
  ExactHessianResult exact_hessian;
  PowerIterationResult power_iteration;
  LossSliceResult loss_slice;
  // What the methods of a plan shared, one sentence each ("hessian_trace
  // reused the 10 SLQ start vectors as its first probes: 10 HVPs saved").
  std::vector<std::string> shared;
  CurvatureOperator op = CurvatureOperator::kHessian;
  // The parameters of the block, in order; empty when the request named no
  // block (every parameter).
  std::vector<std::string> block_parameters;
  int64_t hvps = 0;
  double loss = 0;
  int64_t num_samples = 0;
  // The operator's dimension: the block's size when a block was named.
  int64_t num_parameters = 0;
  double compute_seconds = 0;
  std::string device;  // "cpu", "cuda:0"
  // The one used: kTf32 only on CUDA (a TF32 request on the CPU runs, and is
  // recorded, as kFloat32).
  Precision precision = Precision::kFloat32;
  bool train_mode = false;
  int64_t micro_batch_size = 0;  // the one used, after any OOM retry
  // Whether the micro-batches' autograd graphs were kept for the whole run
  // (false after an out-of-memory retry dropped them).
  bool graphs_retained = false;
};

}  // namespace curvd::core

#endif  // CURVD_CORE_MEASUREMENT_H_
