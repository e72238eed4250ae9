// One struct per measurement kind: its name, its options and its result. A
// request is a list of them (Method), so a kind is added by writing its struct
// here and naming it in Method; the compiler then lists every place that must
// handle it (validation, the plan runner, the server's table, the fake engine).
// docs/adr/0007-one-table-per-kind.md counts those places. Plain structs, no
// torch.
#ifndef CURVD_CORE_API_MEASUREMENT_METHODS_H_
#define CURVD_CORE_API_MEASUREMENT_METHODS_H_

#include <variant>

#include "core/api/gop_types.h"
#include "core/api/llc_types.h"
#include "core/api/loss_measurement_types.h"
#include "core/api/method_types.h"
#include "core/api/spectral_measurement.h"

namespace curvd::core {

// kName is the proto's field name of the kind, the same in MeasurementSpec's
// `kind` oneof, MeasurementPlanSpec, Measurement's `result` oneof and
// MeasurementPlanResult. `options` are read before the method runs; `result`
// is filled when it ran.

struct SharpnessMethod {  // Lanczos extreme eigenvalues
  static constexpr char kName[] = "sharpness";
  LanczosOptions options;
  SharpnessResult result;
};

struct SpectralDensityMethod {  // stochastic Lanczos quadrature
  static constexpr char kName[] = "spectral_density";
  SlqOptions options;
  SlqResult result;
};

struct HessianTraceMethod {  // Hutchinson tr(H)
  static constexpr char kName[] = "hessian_trace";
  TraceOptions options;
  TraceResult result;
};

struct HutchppMethod {  // Hutch++ tr(H)
  static constexpr char kName[] = "hutchpp";
  HutchppOptions options;
  HutchppResult result;
};

struct AdaptiveTraceMethod {  // tr(H) to a standard error (ADR 0022)
  static constexpr char kName[] = "adaptive_trace";
  AdaptiveTraceOptions options;
  AdaptiveTraceResult result;
};

struct TraceCubedMethod {  // Hutchinson tr(H^3)
  static constexpr char kName[] = "trace_h3";
  TraceOptions options;
  TraceResult result;
};

struct LossExpansionMethod {
  static constexpr char kName[] = "loss_expansion";
  LossExpansionOptions options;
  LossExpansionResult result;
};

struct ExactHessianMethod {
  static constexpr char kName[] = "exact_hessian";
  ExactHessianOptions options;
  ExactHessianResult result;
};

struct PowerIterationMethod {
  static constexpr char kName[] = "power_iteration";
  PowerIterationOptions options;
  PowerIterationResult result;
};

struct LossSliceMethod {
  static constexpr char kName[] = "loss_slice";
  LossSliceOptions options;
  LossSliceResult result;
};

struct GopMethod {  // gradient outer products (gop_types.h)
  static constexpr char kName[] = "gop";
  GopOptions options;
  GopResult result;
};

struct LlcMethod {  // the local learning coefficient (llc_types.h)
  static constexpr char kName[] = "llc";
  LlcOptions options;
  LlcResult result;
};

struct LlcCalibrationMethod {  // a grid of short LLC runs
  static constexpr char kName[] = "llc_calibration";
  LlcCalibrationOptions options;
  LlcCalibrationResult result;
};

// Every kind, in the order a plan runs them: the producers of what methods
// share (sharpness's eigenvectors, the SLQ start vectors, trace_h3's tr(H^3))
// before their users, then the loss slice, which frees the retained graphs,
// then gop, which uses neither the operator nor anything shared and runs
// without retained graphs (its per-sample gradients and Gram matrices need
// the memory they hold), and last the LLC kinds, which move the parameters
// (and restore them) and also run without retained graphs
// (measurement_plan.h).
using Method =
    std::variant<SharpnessMethod, SpectralDensityMethod, HessianTraceMethod,
                 HutchppMethod, AdaptiveTraceMethod, TraceCubedMethod,
                 LossExpansionMethod, ExactHessianMethod, PowerIterationMethod,
                 LossSliceMethod, GopMethod, LlcMethod, LlcCalibrationMethod>;

// The kName of `method`'s kind. Thread-safe.
const char* MethodName(const Method& method);

// The first of `methods` that keeps a measurement from being divided among
// devices (Engine::MeasureSplit), or nullptr: GOP and the LLC kinds, which
// read per-sample data, except llc as the only kind (ChainSplitMethod),
// whose chains are divided instead. Thread-safe.
const Method* FirstUnsplitMethod(const std::vector<Method>& methods);

// The llc method of `methods` when it is their only kind, whose chains can
// be divided among devices instead of the shard (Engine::MeasureSplit), or
// nullptr. Thread-safe.
const LlcMethod* ChainSplitMethod(const std::vector<Method>& methods);

// The method of kind M in `methods`, or nullptr when there is none.
template <typename M>
const M* FindMethod(const std::vector<Method>& methods) {
  for (const Method& method : methods) {
    if (const M* found = std::get_if<M>(&method)) return found;
  }
  return nullptr;
}
template <typename M>
M* FindMethod(std::vector<Method>& methods) {
  for (Method& method : methods) {
    if (M* found = std::get_if<M>(&method)) return found;
  }
  return nullptr;
}

}  // namespace curvd::core

#endif  // CURVD_CORE_API_MEASUREMENT_METHODS_H_
