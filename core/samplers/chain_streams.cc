#include "core/samplers/chain_streams.h"

#include <torch/torch.h>

#include "core/objective/linear_operator.h"
#include "core/objective/objective.h"

namespace curvd::core {

ChainStreams::ChainStreams(const torch::Device& device, uint64_t seed,
                           int64_t first_chain)
    : device_(device),
      seed_(seed),
      first_chain_(first_chain),
      generators_(std::make_shared<std::vector<at::Generator>>()) {}

torch::Tensor ChainStreams::Rows(
    at::IntArrayRef sizes, const torch::TensorOptions& options,
    absl::FunctionRef<void(torch::Tensor&, at::Generator&)> fill) {
  TORCH_CHECK(!sizes.empty() && sizes[0] >= 1,
              "ChainStreams draws [C, ...] with C >= 1, asked for ", sizes);
  TORCH_CHECK(options.device() == device_, "ChainStreams of ", device_,
              " asked for a tensor on ", options.device());
  std::vector<at::Generator>& generators = *generators_;
  while (static_cast<int64_t>(generators.size()) < sizes[0]) {
    const int64_t chain =
        first_chain_ + static_cast<int64_t>(generators.size());
    generators.push_back(
        DeviceGenerator(device_, Objective::ForwardSeed(seed_, chain)));
  }
  torch::Tensor out = torch::empty(sizes, options);
  for (int64_t r = 0; r < out.size(0); ++r) {
    torch::Tensor row = out[r];
    fill(row, generators[r]);
  }
  return out;
}

torch::Tensor ChainStreams::Normal(at::IntArrayRef sizes,
                                   const torch::TensorOptions& options) {
  return Rows(sizes, options, [](torch::Tensor& row, at::Generator& g) {
    row.normal_(0, 1, g);
  });
}

torch::Tensor ChainStreams::Uniform(at::IntArrayRef sizes,
                                    const torch::TensorOptions& options) {
  return Rows(sizes, options, [](torch::Tensor& row, at::Generator& g) {
    row.uniform_(0, 1, g);
  });
}

}  // namespace curvd::core
