// The minibatches of C chains: each chain walks its own random permutations
// of the shard, B samples a step, a new permutation when fewer than B are left
// (the remainder of an epoch is skipped, so every step has B samples, as a
// DataLoader with shuffle and drop_last). Internal to core (includes torch).
#ifndef CURVD_CORE_SAMPLERS_MINIBATCH_SCHEDULE_H_
#define CURVD_CORE_SAMPLERS_MINIBATCH_SCHEDULE_H_

#include <torch/types.h>

#include <cstdint>

#include "core/samplers/chain_streams.h"

namespace curvd::core {

class MinibatchSchedule {
 public:
  // `chains` >= 1 chains over `num_samples` samples, `batch_size` in
  // [1, num_samples], indices int64 on the streams' device, each chain's
  // permutations drawn from its stream of `streams` (shared, not copied).
  MinibatchSchedule(int64_t chains, int64_t num_samples, int64_t batch_size,
                    ChainStreams streams);

  // The next step's sample indices, int64 [chains, batch_size]: within an
  // epoch no index repeats in a chain. Device work only (no host sync).
  torch::Tensor Next();

 private:
  void Shuffle();

  int64_t chains_;
  int64_t num_samples_;
  int64_t batch_size_;
  ChainStreams streams_;
  torch::Tensor permutations_;  // [chains, num_samples]
  int64_t position_ = 0;
};

}  // namespace curvd::core

#endif  // CURVD_CORE_SAMPLERS_MINIBATCH_SCHEDULE_H_
