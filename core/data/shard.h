// A data shard in memory: inputs and targets with the same first dimension.
// Internal to core (includes torch).
#ifndef CURVD_CORE_DATA_SHARD_H_
#define CURVD_CORE_DATA_SHARD_H_

#include <torch/types.h>

#include "absl/status/statusor.h"
#include "core/api/sources.h"

namespace curvd::core {

struct Shard {
  // [N, ...] floating point, or int64 token ids for an embedding model.
  torch::Tensor inputs;
  torch::Tensor targets;  // [N] int64 class indices, or [N, ...] floating point
  int64_t size() const { return inputs.size(0); }
};

// Loads the shard on the CPU, offset/limit applied. idx images become float32
// in [0, 1] with shape [N, rows*cols]; idx labels int64. CIFAR batch files
// (gzipped or not) are concatenated in order into float32 [N, 3, 32, 32] and
// int64 [N] as core/api/cifar_format.h states. Safetensors inputs
// keep a floating dtype (F16 and BF16 widened to float32) or, when integer
// (I64, I32, I16, I8, U8), are token ids widened to int64; integer targets are
// int64 class indices. InvalidArgument for a corrupt or inconsistent file
// (wrong magic, truncated, counts that disagree, missing "inputs"/"targets",
// BOOL inputs, empty after the slice; a CIFAR file that is not whole records,
// a label byte beyond the format's classes: each naming the file), NotFound
// for a missing file.
absl::StatusOr<Shard> LoadShard(const ShardSpec& spec);

}  // namespace curvd::core

#endif  // CURVD_CORE_DATA_SHARD_H_
