#include "core/objective/chain_objective.h"

#include <torch/torch.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "core/objective/parameter_restorer.h"

namespace curvd::core {
namespace {

std::string ShapeOf(const torch::Tensor& t) {
  return absl::StrCat("[", absl::StrJoin(t.sizes(), ", "), "]");
}

// `sizes` with `leading` in front.
std::vector<int64_t> Prepend(std::vector<int64_t> leading,
                             c10::IntArrayRef sizes) {
  leading.insert(leading.end(), sizes.begin(), sizes.end());
  return leading;
}

// The same tensor [n, ...] for each of `chains` chains, [chains, n, ...],
// without a copy.
torch::Tensor ExpandOverChains(const torch::Tensor& t, int64_t chains) {
  return t.unsqueeze(0).expand(Prepend({chains}, t.sizes()));
}

// Zero losses [C] and (with_gradients) gradients [C, P].
ChainEvaluation Zeros(int64_t chains, int64_t parameters, bool with_gradients,
                      const torch::TensorOptions& options) {
  ChainEvaluation zeros{torch::zeros({chains}, options.dtype(torch::kFloat64)),
                        {}};
  if (with_gradients) {
    zeros.gradients = torch::zeros({chains, parameters}, options);
  }
  return zeros;
}

// total += weight * part: every chain's, or with `chain` >= 0 that chain's
// (part then holding one chain's loss [] and gradient [P]).
void AddWeighted(const ChainEvaluation& part, double weight, int64_t chain,
                 ChainEvaluation& total) {
  const auto rows = [chain](const torch::Tensor& t) {
    return chain < 0 ? t : t[chain];
  };
  rows(total.losses).add_(part.losses, weight);
  if (part.gradients.defined()) {
    rows(total.gradients).add_(part.gradients, weight);
  }
}

// Eager evaluations before a graph is recorded: TorchScript optimises a
// function after its first profiled runs, and the graph must record the
// optimised kernels.
constexpr int kGraphWarmup = 3;

}  // namespace

ChainObjective::ChainObjective(Objective& objective)
    : objective_(objective),
      batched_(objective.model()->SupportsChains()),
      model_parameters_(objective.model()->Parameters()),
      use_graphs_(
          DeviceGraphsAvailable(objective.vector_options().device())) {
  objective_.set_retain_graphs(false);
  const std::vector<torch::Tensor>& block = objective_.block_parameters();
  for (const torch::Tensor& p : model_parameters_) {
    int part = -1;
    for (size_t j = 0; j < block.size(); ++j) {
      if (block[j].is_same(p)) part = static_cast<int>(j);
    }
    block_part_.push_back(part);
  }
}

absl::StatusOr<torch::Tensor> ChainObjective::CheckChains(
    const torch::Tensor& chains) const {
  if (chains.dim() != 2 || chains.size(0) == 0 ||
      chains.size(1) != objective_.num_parameters() ||
      !chains.is_floating_point()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "chains have shape ", ShapeOf(chains), " of ",
        std::string(chains.dtype().name()), ", want floating point [C, ",
        objective_.num_parameters(), "] with C >= 1"));
  }
  return chains.to(objective_.vector_options());
}

absl::StatusOr<ChainEvaluation> ChainObjective::Minibatch(
    const torch::Tensor& chains, const torch::Tensor& batch_indices) {
  CURVD_ASSIGN_OR_RETURN(const torch::Tensor w, CheckChains(chains));
  const int64_t c = w.size(0);
  if (batch_indices.scalar_type() != torch::kInt64 ||
      batch_indices.dim() != 2 || batch_indices.size(0) != c ||
      batch_indices.size(1) == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "batch indices have shape ", ShapeOf(batch_indices), " of ",
        std::string(batch_indices.dtype().name()), ", want int64 [", c,
        ", B] with B >= 1 for ", c, " chains"));
  }
  const int64_t n = objective_.num_samples();
  if (batch_indices.device().is_cpu()) {
    const int64_t lo = batch_indices.min().item<int64_t>();
    const int64_t hi = batch_indices.max().item<int64_t>();
    if (lo < 0 || hi >= n) {
      return absl::InvalidArgumentError(
          absl::StrCat("batch indices span [", lo, ", ", hi,
                       "], outside the shard's samples [0, ", n, ")"));
    }
  }
  const torch::Tensor indices =
      batch_indices.to(objective_.vector_options().device());
  return use_graphs_ && graph_failure_.empty() ? ReplayMinibatch(w, indices)
                                                : EvaluateMinibatch(w, indices);
}

ChainEvaluation ChainObjective::EvaluateMinibatch(const torch::Tensor& chains,
                                                  const torch::Tensor& indices) {
  const int64_t c = chains.size(0);
  const auto gather = [&](const torch::Tensor& shard) {
    return shard.index_select(0, indices.reshape({-1}))
        .view(Prepend({c, indices.size(1)}, shard.sizes().slice(1)));
  };
  const torch::Tensor inputs = gather(objective_.inputs());
  const torch::Tensor targets = gather(objective_.targets());
  if (batched_) return EvaluateBatched(chains, inputs, targets, true);
  ChainEvaluation total =
      Zeros(c, objective_.num_parameters(), true, objective_.vector_options());
  // In turn, copies would only cost memory.
  if (RunsSideBySide(chains.device(), static_cast<int>(c)) && HasCopies(c)) {
    // Each branch writes its chain's rows of `total` only.
    RunSideBySide(chains.device(), static_cast<int>(c), [&](int chain) {
      SetBlock(copy_blocks_[chain], chains[chain]);
      AddWeighted(EvaluateCurrent(*copies_[chain], copy_blocks_[chain],
                                  inputs[chain], targets[chain], true),
                  1.0, chain, total);
    });
    return total;
  }
  const std::vector<torch::Tensor>& block = objective_.block_parameters();
  const ParameterRestorer restorer(block);
  for (int64_t chain = 0; chain < c; ++chain) {
    SetBlock(block, chains[chain]);
    AddWeighted(EvaluateCurrent(*objective_.model(), block, inputs[chain],
                                targets[chain], true),
                1.0, chain, total);
  }
  return total;
}

bool ChainObjective::HasCopies(int64_t chains) {
  while (!copies_failed_ && static_cast<int64_t>(copies_.size()) < chains) {
    std::unique_ptr<Model> copy;
    try {
      copy = objective_.model()->Clone();
    } catch (const c10::OutOfMemoryError&) {
      // The chains then run in turn through the model, in its memory.
      copies_.clear();
      copy_blocks_.clear();
    }
    if (copy == nullptr) {
      copies_failed_ = true;
      break;
    }
    const std::vector<torch::Tensor> parameters = copy->Parameters();
    std::vector<torch::Tensor> block(objective_.block_parameters().size());
    for (size_t i = 0; i < parameters.size(); ++i) {
      if (block_part_[i] >= 0) block[block_part_[i]] = parameters[i];
    }
    copies_.push_back(std::move(copy));
    copy_blocks_.push_back(std::move(block));
  }
  return !copies_failed_;
}

ChainEvaluation ChainObjective::ReplayMinibatch(const torch::Tensor& chains,
                                                const torch::Tensor& indices) {
  if (graph_ != nullptr && graph_->chains.sizes() == chains.sizes() &&
      graph_->indices.sizes() == indices.sizes()) {
    graph_->chains.copy_(chains);
    graph_->indices.copy_(indices);
  } else {
    graph_.reset();  // its memory, before the new recording takes more
    auto recorded = std::make_unique<MinibatchGraph>();
    recorded->chains = chains.clone();
    recorded->indices = indices.clone();
    MinibatchGraph& g = *recorded;
    absl::StatusOr<std::unique_ptr<DeviceGraph>> graph = RecordDeviceGraph(
        chains.device(), kGraphWarmup,
        [&] { g.evaluation = EvaluateMinibatch(g.chains, g.indices); });
    if (!graph.ok()) {
      graph_failure_ = std::string(graph.status().message());
      return EvaluateMinibatch(chains, indices);
    }
    recorded->graph = *std::move(graph);
    graph_ = std::move(recorded);
  }
  graph_->graph->Replay();
  // Copies: the next replay rewrites the graph's own outputs.
  return {graph_->evaluation.losses.clone(),
          graph_->evaluation.gradients.clone()};
}

absl::StatusOr<ChainEvaluation> ChainObjective::FullShard(
    const torch::Tensor& chains, bool with_gradients) {
  CURVD_ASSIGN_OR_RETURN(const torch::Tensor w, CheckChains(chains));
  const int64_t c = w.size(0);
  ChainEvaluation total = Zeros(c, objective_.num_parameters(), with_gradients,
                                objective_.vector_options());
  const auto batch_of = [](const torch::Tensor& shard,
                               const Objective::Batch& batch) {
    return shard.narrow(0, batch.start, batch.count);
  };
  if (batched_) {
    objective_.ForEachBatch([&](const Objective::Batch& batch) {
      AddWeighted(
          EvaluateBatched(
              w, ExpandOverChains(batch_of(objective_.inputs(), batch), c),
              ExpandOverChains(batch_of(objective_.targets(), batch), c),
              with_gradients),
          batch.weight, -1, total);
    });
    return total;
  }
  const std::vector<torch::Tensor>& block = objective_.block_parameters();
  const ParameterRestorer restorer(block);
  for (int64_t chain = 0; chain < c; ++chain) {
    SetBlock(block, w[chain]);
    objective_.ForEachBatch([&](const Objective::Batch& batch) {
      AddWeighted(EvaluateCurrent(*objective_.model(), block,
                                  batch_of(objective_.inputs(), batch),
                                  batch_of(objective_.targets(), batch),
                                  with_gradients),
                  batch.weight, chain, total);
    });
  }
  return total;
}

ChainEvaluation ChainObjective::EvaluateBatched(const torch::Tensor& chains,
                                                const torch::Tensor& inputs,
                                                const torch::Tensor& targets,
                                                bool with_gradients) {
  const torch::AutoGradMode grad_mode(with_gradients);
  const int64_t c = chains.size(0);
  // One leaf for all chains, whose parts are views: its gradient is every
  // block parameter's of every chain, the gradient of the sum of the chains'
  // losses being each chain's own (they share no parameter).
  const torch::Tensor leaf = chains.detach().requires_grad_(with_gradients);
  const std::vector<torch::Tensor> parts =
      leaf.split_with_sizes(objective_.block_numels(), 1);
  std::vector<torch::Tensor> per_parameter;
  per_parameter.reserve(model_parameters_.size());
  for (size_t i = 0; i < model_parameters_.size(); ++i) {
    const torch::Tensor& p = model_parameters_[i];
    const std::vector<int64_t> sizes = Prepend({c}, p.sizes());
    per_parameter.push_back(block_part_[i] >= 0
                                ? parts[block_part_[i]].view(sizes)
                                : p.detach().unsqueeze(0).expand(sizes));
  }
  const torch::Tensor losses =
      MeanLoss(objective_.model()->ForwardChains(per_parameter, inputs),
               targets, objective_.loss(), /*per_chain=*/true);
  ChainEvaluation evaluation{losses.detach().to(torch::kFloat64), {}};
  if (with_gradients) {
    // Outputs that depend on none of the block's parameters have no graph
    // to differentiate, or an undefined gradient.
    if (losses.requires_grad()) {
      evaluation.gradients = torch::autograd::grad(
          {losses.sum()}, {leaf}, /*grad_outputs=*/{}, /*retain_graph=*/false,
          /*create_graph=*/false, /*allow_unused=*/true)[0];
    }
    if (!evaluation.gradients.defined()) {
      evaluation.gradients = torch::zeros_like(leaf);
    }
  }
  return evaluation;
}

void ChainObjective::SetBlock(const std::vector<torch::Tensor>& block,
                              const torch::Tensor& w) {
  torch::NoGradGuard no_grad;
  const std::vector<torch::Tensor> parts =
      w.split_with_sizes(objective_.block_numels());
  for (size_t j = 0; j < block.size(); ++j) {
    block[j].copy_(parts[j].view(block[j].sizes()));
  }
}

ChainEvaluation ChainObjective::EvaluateCurrent(
    Model& model, const std::vector<torch::Tensor>& block,
    const torch::Tensor& inputs, const torch::Tensor& targets,
    bool with_gradients) {
  const torch::AutoGradMode grad_mode(with_gradients);
  const torch::Tensor loss =
      MeanLoss(model.Forward(inputs), targets, objective_.loss());
  ChainEvaluation evaluation{loss.detach().to(torch::kFloat64), {}};
  if (!with_gradients) return evaluation;
  // A loss that depends on none of the block's parameters has no graph: its
  // gradient is zero.
  const std::vector<torch::Tensor> gradients =
      loss.requires_grad()
          ? torch::autograd::grad({loss}, block, /*grad_outputs=*/{},
                                  /*retain_graph=*/false,
                                  /*create_graph=*/false, /*allow_unused=*/true)
          : std::vector<torch::Tensor>(block.size());
  std::vector<torch::Tensor> flat;
  for (size_t j = 0; j < block.size(); ++j) {
    flat.push_back(gradients[j].defined()
                       ? gradients[j].reshape({-1})
                       : torch::zeros({block[j].numel()}, block[j].options()));
  }
  evaluation.gradients = torch::cat(flat);
  return evaluation;
}

}  // namespace curvd::core
