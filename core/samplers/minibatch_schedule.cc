#include "core/samplers/minibatch_schedule.h"

#include <torch/torch.h>

#include <utility>

namespace curvd::core {

MinibatchSchedule::MinibatchSchedule(int64_t chains, int64_t num_samples,
                                     int64_t batch_size, ChainStreams streams)
    : chains_(chains),
      num_samples_(num_samples),
      batch_size_(batch_size),
      streams_(std::move(streams)) {
  Shuffle();
}

void MinibatchSchedule::Shuffle() {
  // A permutation per chain: the ranks of i.i.d. uniforms, one sort for all.
  const torch::Tensor keys = streams_.Uniform(
      {chains_, num_samples_},
      torch::TensorOptions().dtype(torch::kFloat32).device(streams_.device()));
  permutations_ = keys.argsort(/*dim=*/1, /*descending=*/false);
  position_ = 0;
}

torch::Tensor MinibatchSchedule::Next() {
  if (position_ + batch_size_ > num_samples_) Shuffle();
  torch::Tensor batch = permutations_.narrow(1, position_, batch_size_);
  position_ += batch_size_;
  return batch;
}

}  // namespace curvd::core
