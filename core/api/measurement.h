// What the engine is asked to measure and what it returns. Plain structs, no
// torch: the server translates them to and from the proto.
#ifndef CURVD_CORE_API_MEASUREMENT_H_
#define CURVD_CORE_API_MEASUREMENT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/api/measurement_methods.h"

namespace curvd::core {

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

struct MeasurementRequest {
  ObjectiveOptions objective;
  CurvatureOperator op = CurvatureOperator::kHessian;
  ParameterBlock block;
  // What to run on the one objective: a single kind, or several (a plan),
  // each kind at most once, at least one.
  std::vector<Method> methods;

  // Appends a default-constructed method of kind M and returns it, so that
  // its options can be set.
  template <typename M>
  M& Add() {
    return std::get<M>(methods.emplace_back(std::in_place_type<M>));
  }
  // The method of kind M, or nullptr.
  template <typename M>
  const M* Find() const {
    return FindMethod<M>(methods);
  }
  template <typename M>
  M* Find() {
    return FindMethod<M>(methods);
  }
};

// Returns InvalidArgument naming the first field out of range (k = 0, probes =
// 0, tolerance outside (0, 1), a grid of zero points, ...), no method, or a
// kind named twice. Method fields are named "<kind>.<field>", after
// `methods_field` and a dot when it is not empty (the server passes "plan" for
// a MeasurementPlanSpec). Defaults are in range except where a field has no
// sensible default (the loss expansion's numbers).
absl::Status ValidateRequest(const MeasurementRequest& request,
                             const std::string& methods_field = "");

// The llc options' part of ValidateRequest, fields named after `field`
// ("llc", "llc_calibration.base"): InvalidArgument naming the first out of
// range. Shared with MeasureLlc, which core callers reach without a request.
absl::Status ValidateLlcOptions(const LlcOptions& options,
                                const std::string& field);

// The gop options' part of ValidateRequest that needs no model, fields named
// after `field` ("gop", "plan.gop"): InvalidArgument naming the first of
// variant (not a GopVariant), path (not a GopPath, or kFast with
// kMeanGradient), num_samples < 0, top_k < 0, rank_rtol set
// outside (0, 1), hessian_overlap_k outside [0, limits::kMaxEigenpairs], a cap (max_samples, max_gram_floats, max_gradient_floats,
// max_eigenvector_floats) < 1. Shared with ValidateGopOptions
// (core/measurements/gop.h), which adds the checks against the model's sizes.
absl::Status ValidateGopFields(const GopOptions& options,
                               const std::string& field);

// OK when an exact Hessian of `size` parameters (the block's, if any) fits
// `caps`: size <= max_parameters, and size <= max_matrix_parameters when the
// matrix is returned. Otherwise InvalidArgument "an exact Hessian of P
// parameters exceeds the server's cap of C (--exact_hessian_max_parameters)"
// (or the matrix cap's), naming the remedies: a parameter block
// (spec.block), the spectrum without the matrix, the server flag. The one
// message for both places that refuse: the server at CreateMeasurement when
// it knows P (zoo models), the engine when the model is loaded (archives).
absl::Status CheckExactHessianSize(int64_t size,
                                   const ExactHessianOptions& caps);

struct MeasurementResult {
  // The request's methods, each with its result, in the order they ran
  // (Method's).
  std::vector<Method> methods;
  // The method of kind M, or nullptr when it did not run.
  template <typename M>
  const M* Find() const {
    return FindMethod<M>(methods);
  }
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
  // The seed the forward passes' randomness was fixed with (ObjectiveOptions).
  uint64_t forward_seed = 0;
  // In train mode, the relative difference of two products with one vector
  // (operator_check.h), at most sqrt(eps) or the measurement failed; unset in
  // eval mode, where it is not checked.
  std::optional<double> operator_check_difference;
  int64_t micro_batch_size = 0;  // the one used, after any OOM retry
  // Whether the micro-batches' autograd graphs were kept for the whole run
  // (false after an out-of-memory retry dropped them).
  bool graphs_retained = false;
  // How the Hessian products ran (Objective::hvp_graph_note); empty when
  // none ran.
  std::string hvp_graph;
  // How the micro-batches were divided among devices (Objective::split_note);
  // empty when the measurement ran on one device.
  std::string split;
};

}  // namespace curvd::core

#endif  // CURVD_CORE_API_MEASUREMENT_H_
