// A data shard in memory: inputs and targets with the same first dimension.
// Internal to core (includes torch).
#ifndef CURVD_CORE_DATA_SHARD_H_
#define CURVD_CORE_DATA_SHARD_H_

#include <torch/types.h>

#include "absl/status/statusor.h"
#include "core/api/sources.h"
#include "core/data/memory_budget.h"

namespace curvd::core {

struct Shard {
  // [N, ...] floating point, or int64 token ids for an embedding model.
  torch::Tensor inputs;
  torch::Tensor targets;  // [N] int64 class indices, or [N, ...] floating point
  int64_t size() const { return inputs.size(0); }
};

// Loads the shard on the CPU, offset/limit applied, its files opened beneath
// spec.data_roots (core/api/data_roots.h) and read through the descriptors.
// Only the slice is kept: a safetensors or idx file's other rows are never
// held, and an idx file is decompressed no further than its dimensions need. idx images become float32
// in [0, 1] with shape [N, rows*cols]; idx labels int64. CIFAR batch files
// (gzipped or not) are concatenated in order into float32 [N, 3, 32, 32] and
// int64 [N] as core/api/cifar_format.h states. Safetensors inputs
// keep a floating dtype (F16 and BF16 widened to float32) or, when integer
// (I64, I32, I16, I8, U8), are token ids widened to int64; integer targets are
// int64 class indices. InvalidArgument for a corrupt or inconsistent file
// (wrong magic, truncated, counts that disagree, missing "inputs"/"targets",
// BOOL inputs, empty after the slice; a CIFAR file that is not whole records,
// a label byte beyond the format's classes, more data than an idx header
// declares, a safetensors header over 1 MiB: each naming the file), NotFound
// for a missing file, the errors of core::OpenDataFile for a path that leads
// out of the data roots, ResourceExhausted (MemoryBudget::Charge) when the
// slice, sized from the headers before anything is allocated, exceeds what
// is left of `budget`, which is charged with it.
absl::StatusOr<Shard> LoadShard(const ShardSpec& spec, MemoryBudget& budget);
// The same without a budget.
absl::StatusOr<Shard> LoadShard(const ShardSpec& spec);

}  // namespace curvd::core

#endif  // CURVD_CORE_DATA_SHARD_H_
