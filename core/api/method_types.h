// The options and results of the basic methods (Lanczos, Hutchinson) and of
// the objective, shared by measurement.h (the engine's request and result) and
// spectral_measurement.h (the issue-5 methods). Plain structs, no torch.
#ifndef CURVD_CORE_API_METHOD_TYPES_H_
#define CURVD_CORE_API_METHOD_TYPES_H_

#include <cstdint>
#include <string>
#include <vector>

namespace curvd::core {

enum class LossFunction { kCrossEntropy, kMse };
// kTf32: float32 storage, and CUDA matmuls and convolutions may round their
// inputs to TF32 (10 mantissa bits) for that measurement only. On the CPU it
// is float32.
enum class Precision { kFloat32, kFloat64, kTf32 };
enum class ProbeDistribution { kRademacher, kGaussian };

// How the loss over the shard is formed. The loss is the mean over samples;
// batches are weighted by their size.
struct ObjectiveOptions {
  LossFunction loss = LossFunction::kCrossEntropy;
  // Samples per micro-batch; 0 means the whole shard at once.
  int64_t micro_batch_size = 0;
  Precision precision = Precision::kFloat32;
  bool train_mode = false;
  // Seeds the randomness of the model's forward passes (dropout in train
  // mode): before each forward pass of micro-batch b the device's default
  // torch generator is seeded from (forward_seed, b), so every product of one
  // measurement is with the Hessian of one sampled loss. 0 is a seed like any
  // other.
  uint64_t forward_seed = 0;
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
  // Stop once standard_error <= target * |estimate| (after min_probes); 0 =
  // never.
  double target_relative_error = 0.01;
  uint64_t seed = 0;
};

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

}  // namespace curvd::core

#endif  // CURVD_CORE_API_METHOD_TYPES_H_
