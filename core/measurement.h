// What the engine is asked to measure and what it returns. Plain structs, no torch:
// the server translates them to and from the proto.
#ifndef CURVD_CORE_MEASUREMENT_H_
#define CURVD_CORE_MEASUREMENT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace curvd::core {

enum class LossFunction { kCrossEntropy, kMse };
// kTf32: float32 storage, and CUDA matmuls and convolutions may round their
// inputs to TF32 (10 mantissa bits) for that measurement only. On the CPU it
// is float32.
enum class Precision { kFloat32, kFloat64, kTf32 };
enum class ProbeDistribution { kRademacher, kGaussian };
enum class MeasurementKind { kSharpness, kHessianTrace };

// How the loss over the shard is formed. The loss is the mean over samples; batches
// are weighted by their size.
struct ObjectiveOptions {
  LossFunction loss = LossFunction::kCrossEntropy;
  // Samples per micro-batch; 0 means the whole shard at once.
  int64_t micro_batch_size = 0;
  Precision precision = Precision::kFloat32;
  bool train_mode = false;
};

struct LanczosOptions {
  int top_k = 1;
  int bottom_k = 0;
  int max_iterations = 100;
  double relative_tolerance = 1e-6;
  uint64_t seed = 0;
};

struct TraceOptions {
  ProbeDistribution distribution = ProbeDistribution::kRademacher;
  int min_probes = 10;
  int max_probes = 200;
  // Stop once standard_error <= target * |estimate| (after min_probes); 0 = never.
  double target_relative_error = 0.01;
  uint64_t seed = 0;
};

struct MeasurementRequest {
  MeasurementKind kind = MeasurementKind::kSharpness;
  ObjectiveOptions objective;
  LanczosOptions lanczos;  // used when kind == kSharpness
  TraceOptions trace;      // used when kind == kHessianTrace
};

// Returns InvalidArgument naming the first field out of range (k = 0, probes = 0,
// tolerance outside (0, 1), ...). Defaults are in range.
absl::Status ValidateRequest(const MeasurementRequest& request);

struct Eigenpair {
  double value = 0;
  double residual_norm = 0;  // |beta_m * s_mi|, the Lanczos residual estimate
  bool converged = false;
};

struct SharpnessResult {
  std::vector<Eigenpair> top;     // descending
  std::vector<Eigenpair> bottom;  // ascending
  int iterations = 0;
  bool converged = false;
};

struct TraceResult {
  double trace = 0;
  double standard_error = 0;
  int probes = 0;
  std::string stop_reason;  // "target_relative_error", "max_probes", ...
};

struct MeasurementResult {
  MeasurementKind kind = MeasurementKind::kSharpness;
  SharpnessResult sharpness;  // set when kind == kSharpness
  TraceResult trace;          // set when kind == kHessianTrace
  int64_t hvps = 0;
  double loss = 0;
  int64_t num_samples = 0;
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
