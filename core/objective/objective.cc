#include "core/objective/objective.h"

#include <ATen/Context.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <mutex>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "core/engine/torch_status.h"
#include "core/objective/linear_operator.h"
#include "core/objective/parameter_restorer.h"

namespace curvd::core {
namespace {

std::string ShapeOf(const torch::Tensor& t) {
  return absl::StrCat("[", absl::StrJoin(t.sizes(), ", "), "]");
}

bool AllFinite(const torch::Tensor& t) {
  return torch::isfinite(t).all().item<bool>();
}

absl::Status CheckTargets(const torch::Tensor& outputs,
                          const torch::Tensor& targets, LossFunction loss) {
  if (!outputs.is_floating_point() || outputs.dim() < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the model's outputs must be floating point [N, ...], got ",
        ShapeOf(outputs), " of ", std::string(outputs.dtype().name())));
  }
  if (loss == LossFunction::kCrossEntropy) {
    if (targets.scalar_type() != torch::kInt64 || targets.dim() != 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cross-entropy needs int64 class-index targets of shape [N], got ",
          std::string(targets.dtype().name()), " ", ShapeOf(targets)));
    }
    if (outputs.dim() != 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cross-entropy needs model outputs of shape [N, classes], got ",
          ShapeOf(outputs)));
    }
    const int64_t classes = outputs.size(1);
    const int64_t lo = targets.min().item<int64_t>();
    const int64_t hi = targets.max().item<int64_t>();
    if (lo < 0 || hi >= classes) {
      return absl::InvalidArgumentError(
          absl::StrCat("class indices in the targets span [", lo, ", ", hi,
                       "] but the model has ", classes, " outputs"));
    }
    return absl::OkStatus();
  }
  if (!targets.is_floating_point()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "MSE needs floating-point targets, got ",
        std::string(targets.dtype().name()), " ", ShapeOf(targets)));
  }
  if (!outputs.sizes().slice(1).equals(targets.sizes().slice(1))) {
    return absl::InvalidArgumentError(
        absl::StrCat("targets of shape ", ShapeOf(targets),
                     " do not match model outputs of shape ", ShapeOf(outputs),
                     " (per sample)"));
  }
  return absl::OkStatus();
}

// Parameter names for messages: the model's, or "#i" where it names fewer.
std::string NameOf(const std::vector<std::string>& names, size_t i) {
  return i < names.size() ? names[i] : absl::StrCat("#", i);
}

// For a message about a block that selected the wrong thing: enough names to
// spell the right one, not a whole large model's.
std::string SomeNames(const std::vector<std::string>& names) {
  constexpr size_t kListed = 20;
  if (names.size() <= kListed) return absl::StrJoin(names, ", ");
  return absl::StrCat(
      absl::StrJoin(names.begin(), names.begin() + kListed, ", "), ", ... (",
      names.size(), " in all)");
}

// The indices of the parameters in `block` (all when it is empty).
absl::StatusOr<std::vector<size_t>> SelectBlock(
    const std::vector<std::string>& names, size_t num_parameters,
    const ParameterBlock& block) {
  std::vector<size_t> selected;
  for (size_t i = 0; i < num_parameters; ++i) {
    if (block.Selects(NameOf(names, i))) selected.push_back(i);
  }
  for (const std::string& name : block.names) {
    if (std::find(names.begin(), names.end(), name) == names.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("the parameter block names \"", name,
                       "\", which is not a parameter of the model; it has ",
                       SomeNames(names)));
    }
  }
  if (selected.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the parameter block (prefixes \"",
        absl::StrJoin(block.prefixes, "\", \""),
        "\") selects no parameter of the model; it has ", SomeNames(names)));
  }
  return selected;
}

// The first `count` words of the splitmix64 stream of `key`.
std::vector<uint64_t> StreamWords(uint64_t key, int64_t count) {
  const torch::Tensor words =
      SplitMix64Words(key, count, torch::kCPU).contiguous();
  const int64_t* data = words.data_ptr<int64_t>();
  return std::vector<uint64_t>(data, data + count);
}

}  // namespace

torch::Tensor MeanLoss(const torch::Tensor& outputs,
                       const torch::Tensor& targets, LossFunction loss,
                       bool per_chain) {
  namespace F = torch::nn::functional;
  if (!per_chain) {
    if (loss == LossFunction::kCrossEntropy) {
      return F::cross_entropy(outputs, targets);
    }
    return torch::mse_loss(outputs, targets.to(outputs.scalar_type()));
  }
  // Per-sample losses of all chains' samples as one batch, then the mean of
  // each chain's.
  const int64_t chains = outputs.size(0);
  if (loss == LossFunction::kCrossEntropy) {
    return F::cross_entropy(outputs.flatten(0, 1), targets.flatten(),
                            F::CrossEntropyFuncOptions().reduction(torch::kNone))
        .reshape({chains, -1})
        .mean(1);
  }
  return torch::mse_loss(outputs, targets.to(outputs.scalar_type()),
                         at::Reduction::None)
      .reshape({chains, -1})
      .mean(1);
}

uint64_t Objective::ForwardSeed(uint64_t forward_seed, int64_t batch) {
  return StreamWords(forward_seed, batch + 1).back();
}

absl::StatusOr<Objective> Objective::Create(Model* model, torch::Tensor inputs,
                                            torch::Tensor targets,
                                            LossFunction loss,
                                            int64_t micro_batch_size,
                                            const ParameterBlock& block) {
  return CreateSplit({model}, std::move(inputs), std::move(targets), loss,
                     micro_batch_size, block);
}

absl::StatusOr<Objective> Objective::CreateSplit(std::vector<Model*> models,
                                                 torch::Tensor inputs,
                                                 torch::Tensor targets,
                                                 LossFunction loss,
                                                 int64_t micro_batch_size,
                                                 const ParameterBlock& block) {
  if (models.empty()) {
    return absl::InvalidArgumentError("a split objective needs a model");
  }
  Model* model = models[0];
  if (inputs.dim() < 1 || inputs.size(0) == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("the shard is empty: inputs of shape ", ShapeOf(inputs)));
  }
  const int64_t n = inputs.size(0);
  if (targets.dim() < 1 || targets.size(0) != n) {
    return absl::InvalidArgumentError(
        absl::StrCat("shard inputs ", ShapeOf(inputs), " and targets ",
                     ShapeOf(targets), " disagree on the number of samples"));
  }
  if (micro_batch_size < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("micro_batch_size must be >= 0, got ", micro_batch_size));
  }
  std::vector<torch::Tensor> parameters = model->Parameters();
  if (parameters.empty()) {
    return absl::InvalidArgumentError("the model has no trainable parameters");
  }
  const std::vector<std::string> names = model->ParameterNames();
  for (size_t i = 0; i < parameters.size(); ++i) {
    const std::string name = NameOf(names, i);
    if (!parameters[i].is_floating_point()) {
      return absl::InvalidArgumentError(
          absl::StrCat("parameter ", name, " is not floating point"));
    }
    if (!AllFinite(parameters[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat("parameter ", name, " contains NaN or Inf"));
    }
  }
  if (inputs.is_floating_point() && !AllFinite(inputs)) {
    return absl::InvalidArgumentError("shard inputs contain NaN or Inf");
  }
  if (targets.is_floating_point() && !AllFinite(targets)) {
    return absl::InvalidArgumentError("shard targets contain NaN or Inf");
  }

  // A forward pass on a couple of samples tells whether the inputs fit, with a
  // message naming the shapes instead of a failure deep inside a measurement.
  const torch::Device device = parameters[0].device();
  absl::StatusOr<torch::Tensor> forward =
      CatchTorchExceptions([&]() -> absl::StatusOr<torch::Tensor> {
        torch::NoGradGuard no_grad;
        return model->Forward(
            inputs.narrow(0, 0, std::min<int64_t>(n, 2)).to(device));
      });
  if (!forward.ok()) {
    if (IsOutOfMemory(forward.status())) return forward.status();
    return absl::InvalidArgumentError(
        absl::StrCat("shard inputs of shape ", ShapeOf(inputs), " (",
                     std::string(inputs.dtype().name()),
                     ") do not fit the model: ", forward.status().message()));
  }
  const torch::Tensor outputs = *std::move(forward);
  if (loss == LossFunction::kMse && targets.dim() == 1 && outputs.dim() == 2 &&
      outputs.size(1) == 1) {
    targets = targets.unsqueeze(1);
  }
  absl::Status fits = CheckTargets(outputs, targets, loss);
  if (!fits.ok()) return fits;
  if (outputs.size(0) != std::min<int64_t>(n, 2)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the model returned outputs of shape ", ShapeOf(outputs),
                     " for ", std::min<int64_t>(n, 2), " samples"));
  }

  CURVD_ASSIGN_OR_RETURN(const std::vector<size_t> selected,
                         SelectBlock(names, parameters.size(), block));
  std::vector<torch::Tensor> block_parameters;
  std::vector<std::string> block_names;
  for (size_t i : selected) {
    block_parameters.push_back(parameters[i]);
    if (!block.names.empty() || !block.prefixes.empty()) {
      block_names.push_back(NameOf(names, i));
    }
  }

  const int64_t batch =
      micro_batch_size == 0 ? n : std::min(micro_batch_size, n);
  const int64_t batches = (n + batch - 1) / batch;
  const int64_t parts =
      std::min<int64_t>(static_cast<int64_t>(models.size()), batches);
  // Part p: micro-batches [p B / P, (p + 1) B / P).
  const auto slice_of = [&](int64_t p) {
    const int64_t first = p * batches / parts;
    const int64_t end = std::min(n, (p + 1) * batches / parts * batch);
    return Slice{first * batch, end - first * batch, first, n};
  };
  const auto slice_on = [](const torch::Tensor& t, const Slice& slice,
                           const torch::Device& on) {
    return t.narrow(0, slice.start, slice.count).to(on);
  };
  const Slice first = slice_of(0);
  Objective objective(model, std::move(block_parameters),
                      std::move(block_names), slice_on(inputs, first, device),
                      slice_on(targets, first, device), loss, batch, first);
  std::vector<torch::Device> lane_devices = {device};
  objective.lanes_.resize(1);
  objective.lanes_[0].push_back(0);
  for (int64_t p = 1; p < parts; ++p) {
    Model* copy = models[p];
    std::vector<torch::Tensor> copy_parameters = copy->Parameters();
    if (copy->ParameterNames() != names ||
        copy_parameters.size() != parameters.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model ", p, " of the split does not have model 0's parameters"));
    }
    for (size_t i = 0; i < parameters.size(); ++i) {
      const torch::Tensor& mine = parameters[i];
      const torch::Tensor& theirs = copy_parameters[i];
      if (!theirs.sizes().equals(mine.sizes()) ||
          theirs.scalar_type() != mine.scalar_type()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "parameter ", NameOf(names, i), " of model ", p,
            " of the split is ", ShapeOf(theirs), " ",
            std::string(theirs.dtype().name()), ", model 0's is ",
            ShapeOf(mine), " ", std::string(mine.dtype().name())));
      }
    }
    {
      // Every parameter, those outside the block too, as model 0 has them.
      torch::NoGradGuard no_grad;
      for (size_t i = 0; i < parameters.size(); ++i) {
        copy_parameters[i].copy_(parameters[i]);
      }
    }
    std::vector<torch::Tensor> copy_block;
    for (size_t i : selected) copy_block.push_back(copy_parameters[i]);
    const torch::Device on = copy_block[0].device();
    const Slice slice = slice_of(p);
    objective.replicas_.push_back(std::unique_ptr<Objective>(new Objective(
        copy, std::move(copy_block), objective.block_parameter_names_,
        slice_on(inputs, slice, on), slice_on(targets, slice, on), loss, batch,
        slice)));
    const auto lane =
        std::find(lane_devices.begin(), lane_devices.end(), on) -
        lane_devices.begin();
    if (lane == static_cast<int64_t>(lane_devices.size())) {
      lane_devices.push_back(on);
      objective.lanes_.emplace_back();
    }
    objective.lanes_[lane].push_back(static_cast<size_t>(p));
  }
  objective.part_threads_ =
      std::make_unique<PartThreads>(static_cast<int>(lane_devices.size()));
  // Versions that match none: the first operation copies the parameters.
  objective.refreshed_versions_.assign(objective.parameters_.size(), -1);
  return objective;
}

Objective::Objective(Model* model, std::vector<torch::Tensor> parameters,
                     std::vector<std::string> block_parameter_names,
                     torch::Tensor inputs, torch::Tensor targets,
                     LossFunction loss, int64_t micro_batch_size,
                     const Slice& slice)
    : model_(model),
      parameters_(std::move(parameters)),
      block_parameter_names_(std::move(block_parameter_names)),
      inputs_(std::move(inputs)),
      targets_(std::move(targets)),
      loss_(loss),
      micro_batch_size_(micro_batch_size),
      first_batch_(slice.first_batch),
      total_samples_(slice.total_samples) {
  for (torch::Tensor& p : parameters_) {
    p.requires_grad_(true);
    numels_.push_back(p.numel());
    num_parameters_ += p.numel();
  }
  zero_parts_.resize(parameters_.size());
  vector_options_ = torch::TensorOptions()
                        .dtype(parameters_[0].scalar_type())
                        .device(parameters_[0].device());
  forward_generator_ =
      at::globalContext().defaultGenerator(vector_options_.device());
  set_forward_seed(0);
}

void Objective::set_forward_seed(uint64_t seed) {
  forward_seed_ = seed;
  const int64_t batches =
      (inputs_.size(0) + micro_batch_size_ - 1) / micro_batch_size_;
  const std::vector<uint64_t> words = StreamWords(seed, first_batch_ + batches);
  batch_seeds_.assign(words.begin() + first_batch_, words.end());
  FreeRetainedGraphs();
  for (const std::unique_ptr<Objective>& part : replicas_) {
    part->set_forward_seed(seed);
  }
}

void Objective::set_retain_graphs(bool retain) {
  retain_graphs_ = retain;
  if (!retain) FreeRetainedGraphs();
  for (const std::unique_ptr<Objective>& part : replicas_) {
    part->set_retain_graphs(retain);
  }
}

void Objective::FreeRetainedGraphs() {
  // The device graph first: its replays read the retained graphs' memory
  // (destroying it waits for those queued).
  hvp_graph_.reset();
  hvp_graph_input_ = torch::Tensor();
  hvp_graph_output_ = torch::Tensor();
  for (std::vector<Graph>& graphs : retained_) graphs.clear();
}

std::string Objective::hvp_graph_note() const {
  std::string note = PartHvpGraphNote();
  for (size_t p = 0; p < replicas_.size(); ++p) {
    const std::string theirs = replicas_[p]->PartHvpGraphNote();
    if (theirs != note) absl::StrAppend(&note, "; part ", p + 1, ": ", theirs);
  }
  return note;
}

std::string Objective::PartHvpGraphNote() const {
  if (hvp_graph_replays_ > 0) {
    return absl::StrCat("hvp_graph: replayed (", hvp_graph_replays_,
                        " Hessian-vector products, one device-graph launch "
                        "each)");
  }
  if (!hvp_graph_failure_.empty()) {
    return absl::StrCat("hvp_graph: eager (", hvp_graph_failure_, ")");
  }
  if (!DeviceGraphsAvailable(vector_options_.device())) {
    return absl::StrCat("hvp_graph: eager (no device graphs on ",
                        vector_options_.device().str(), ")");
  }
  return "hvp_graph: eager (micro-batch graphs not retained)";
}

std::string Objective::split_note() const {
  if (replicas_.empty()) return "";
  const int64_t batches_in_all =
      (total_samples_ + micro_batch_size_ - 1) / micro_batch_size_;
  std::vector<std::string> parts;
  for (int p = 0; p < this->parts(); ++p) {
    const Objective& part = p == 0 ? *this : *replicas_[p - 1];
    const int64_t last = p + 1 < this->parts()
                             ? replicas_[p]->first_batch_ - 1
                             : batches_in_all - 1;
    parts.push_back(absl::StrCat(part.vector_options_.device().str(),
                                 " micro-batches ", part.first_batch_, "-",
                                 last));
  }
  return absl::StrCat("split: ", this->parts(),
                      " parts: ", absl::StrJoin(parts, ", "));
}

std::vector<int64_t> Objective::ParameterVersions() const {
  std::vector<int64_t> versions;
  versions.reserve(parameters_.size());
  for (const torch::Tensor& p : parameters_) versions.push_back(p._version());
  return versions;
}

void Objective::RefreshPoint() {
  std::vector<int64_t> versions = ParameterVersions();
  if (versions == refreshed_versions_) return;
  FreeRetainedGraphs();
  torch::NoGradGuard no_grad;
  for (const std::unique_ptr<Objective>& part : replicas_) {
    part->FreeRetainedGraphs();
    for (size_t j = 0; j < parameters_.size(); ++j) {
      part->parameters_[j].copy_(parameters_[j]);
    }
  }
  refreshed_versions_ = std::move(versions);
}

torch::Tensor Objective::SumOverParts(
    absl::FunctionRef<torch::Tensor(Objective& part)> body) {
  RefreshPoint();
  if (replicas_.empty()) return body(*this);
  std::vector<torch::Tensor> partial(parts());
  part_threads_->Run([&](int lane) {
    for (size_t p : lanes_[lane]) {
      Objective& part = p == 0 ? *this : *replicas_[p - 1];
      const c10::DeviceGuard on(part.vector_options_.device());
      partial[p] = body(part);
    }
  });
  torch::Tensor total = partial[0];
  for (size_t p = 1; p < partial.size(); ++p) {
    total.add_(partial[p].to(vector_options_.device()));
  }
  return total;
}

void Objective::ForEachBatch(
    absl::FunctionRef<void(const Batch&)> body) {
  const int64_t n = inputs_.size(0);
  int64_t index = 0;
  for (int64_t start = 0; start < n; start += micro_batch_size_) {
    const int64_t count = std::min(micro_batch_size_, n - start);
    body(Batch{index++, start, count,
               static_cast<double>(count) / total_samples_});
  }
}

torch::Tensor Objective::BatchOutputs(const Batch& batch) {
  // Seeding is host-side work on either device (CUDA's Philox generator takes
  // seed and offset at each kernel launch): no synchronisation.
  {
    const std::lock_guard<std::mutex> lock(forward_generator_.mutex());
    forward_generator_.set_current_seed(batch_seeds_[batch.index]);
  }
  return model_->Forward(inputs_.narrow(0, batch.start, batch.count));
}

torch::Tensor Objective::BatchLossOf(const Batch& batch,
                                     const torch::Tensor& outputs) {
  return MeanLoss(outputs, targets_.narrow(0, batch.start, batch.count), loss_);
}

torch::Tensor Objective::BatchLoss(const Batch& batch) {
  return BatchLossOf(batch, BatchOutputs(batch));
}

Objective::Graph Objective::BuildGraph(const Batch& batch,
                                       Curvature curvature) {
  Graph graph;
  std::vector<torch::Tensor> gradients;
  if (curvature == Curvature::kHessian) {
    gradients = torch::autograd::grad(
        {BatchLoss(batch)}, parameters_, /*grad_outputs=*/{},
        /*retain_graph=*/true, /*create_graph=*/true, /*allow_unused=*/true);
  } else {
    graph.outputs = BatchOutputs(batch);
    graph.cotangent = torch::zeros_like(graph.outputs).requires_grad_(true);
    gradients = torch::autograd::grad(
        {graph.outputs}, parameters_, {graph.cotangent},
        /*retain_graph=*/true, /*create_graph=*/true, /*allow_unused=*/true);
    graph.output_leaf = graph.outputs.detach().requires_grad_(true);
    graph.output_gradient = torch::autograd::grad(
        {BatchLossOf(batch, graph.output_leaf)}, {graph.output_leaf},
        /*grad_outputs=*/{}, /*retain_graph=*/true, /*create_graph=*/true)[0];
  }
  for (size_t i = 0; i < gradients.size(); ++i) {
    if (gradients[i].defined() && gradients[i].requires_grad()) {
      graph.gradients.push_back(std::move(gradients[i]));
      graph.parameter_indices.push_back(i);
    }
  }
  return graph;
}

std::vector<torch::Tensor> Objective::Apply(
    const Graph& graph, Curvature curvature,
    const std::vector<torch::Tensor>& parts, bool keep) {
  std::vector<torch::Tensor> grad_outputs(graph.gradients.size());
  for (size_t g = 0; g < graph.gradients.size(); ++g) {
    grad_outputs[g] = parts[graph.parameter_indices[g]];
  }
  if (curvature == Curvature::kHessian) {
    return torch::autograd::grad(graph.gradients, parameters_, grad_outputs,
                                 /*retain_graph=*/keep, /*create_graph=*/false,
                                 /*allow_unused=*/true);
  }
  // J v, then H_out J v through the loss alone, then J^T of that through the
  // outputs' graph; only the last may free the graph, which the first two
  // share with it.
  const torch::Tensor jv = torch::autograd::grad(
      graph.gradients, {graph.cotangent}, grad_outputs, /*retain_graph=*/true,
      /*create_graph=*/false, /*allow_unused=*/true)[0];
  if (!jv.defined()) return std::vector<torch::Tensor>(parameters_.size());
  const torch::Tensor hjv =
      torch::autograd::grad({graph.output_gradient}, {graph.output_leaf}, {jv},
                            /*retain_graph=*/true)[0];
  return torch::autograd::grad({graph.outputs}, parameters_, {hjv},
                               /*retain_graph=*/keep, /*create_graph=*/false,
                               /*allow_unused=*/true);
}

void Objective::Accumulate(const std::vector<torch::Tensor>& per_parameter,
                           double weight, bool first, torch::Tensor out) {
  std::vector<torch::Tensor> flat;
  flat.reserve(per_parameter.size());
  for (size_t i = 0; i < per_parameter.size(); ++i) {
    if (per_parameter[i].defined()) {
      flat.push_back(per_parameter[i].reshape({-1}));
      continue;
    }
    if (!zero_parts_[i].defined()) {
      zero_parts_[i] = torch::zeros({numels_[i]}, vector_options_);
    }
    flat.push_back(zero_parts_[i]);
  }
  if (first) {
    torch::cat_out(out, flat);
    if (weight != 1.0) out.mul_(weight);
    return;
  }
  if (!scratch_.defined()) {
    scratch_ = torch::empty({num_parameters_}, vector_options_);
  }
  torch::cat_out(scratch_, flat);
  out.add_(scratch_, weight);
}

torch::Tensor Objective::LossOnDevice() {
  torch::NoGradGuard no_grad;
  // Summed on the device in float64, for the caller to read once.
  torch::Tensor total =
      torch::zeros({}, vector_options_.dtype(torch::kFloat64));
  ForEachBatch([&](const Batch& batch) {
    total.add_(BatchLoss(batch).to(torch::kFloat64), batch.weight);
  });
  return total;
}

absl::StatusOr<double> Objective::Loss() {
  const double loss =
      SumOverParts([](Objective& part) { return part.LossOnDevice(); })
          .item<double>();
  if (!std::isfinite(loss)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the loss on the shard is not finite (", loss, ")"));
  }
  return loss;
}

torch::Tensor Objective::LocalGradient() {
  torch::Tensor total = torch::empty({num_parameters_}, vector_options_);
  ForEachBatch([&](const Batch& batch) {
    const std::vector<torch::Tensor> gradients = torch::autograd::grad(
        {BatchLoss(batch)}, parameters_, /*grad_outputs=*/{},
        /*retain_graph=*/false, /*create_graph=*/false, /*allow_unused=*/true);
    Accumulate(gradients, batch.weight, batch.index == 0, total);
  });
  return total;
}

absl::StatusOr<torch::Tensor> Objective::Gradient() {
  const torch::Tensor total =
      SumOverParts([](Objective& part) { return part.LocalGradient(); });
  if (!AllFinite(total)) {
    return absl::InvalidArgumentError(
        "the gradient on the shard is not finite");
  }
  return total;
}

absl::StatusOr<torch::Tensor> Objective::Hvp(const torch::Tensor& v) {
  return Product(v, Curvature::kHessian);
}

absl::StatusOr<torch::Tensor> Objective::Hvps(const torch::Tensor& vectors) {
  return Products(vectors, Curvature::kHessian);
}

absl::StatusOr<torch::Tensor> Objective::Ggnvp(const torch::Tensor& v) {
  return Product(v, Curvature::kGgn);
}

absl::StatusOr<torch::Tensor> Objective::Ggnvps(const torch::Tensor& vectors) {
  return Products(vectors, Curvature::kGgn);
}

absl::StatusOr<torch::Tensor> Objective::Product(const torch::Tensor& v,
                                                 Curvature curvature) {
  if (v.dim() != 1 || v.size(0) != num_parameters_) {
    return absl::InvalidArgumentError(absl::StrCat(
        curvature == Curvature::kHessian ? "HVP" : "GGN-vector",
        " vector has shape ", ShapeOf(v), ", want [", num_parameters_, "]"));
  }
  CURVD_ASSIGN_OR_RETURN(torch::Tensor products,
                         Products(v.unsqueeze(0), curvature));
  return products.squeeze(0);
}

absl::StatusOr<torch::Tensor> Objective::Products(const torch::Tensor& vectors,
                                                  Curvature curvature) {
  if (vectors.dim() != 2 || vectors.size(1) != num_parameters_) {
    return absl::InvalidArgumentError(
        absl::StrCat(curvature == Curvature::kHessian ? "HVP" : "GGN-vector",
                     " block has shape ", ShapeOf(vectors), ", want [k, ",
                     num_parameters_, "]"));
  }
  const torch::Tensor block = vectors.to(vector_options_).detach();
  const int64_t k = block.size(0);
  if (k == 0) return torch::empty({0, num_parameters_}, vector_options_);
  torch::Tensor products = SumOverParts([&](Objective& part) {
    return part.LocalProducts(
        &part == this ? block : block.to(part.vector_options_), curvature);
  });
  hvps_ += k;
  return products;
}

torch::Tensor Objective::LocalProducts(const torch::Tensor& block,
                                       Curvature curvature) {
  const int64_t k = block.size(0);
  torch::Tensor products = torch::empty({k, num_parameters_}, vector_options_);
  if (curvature == Curvature::kHessian && ReplayedProducts(block, products)) {
    return products;
  }
  // Each vector's per-parameter parts, as views shaped like the parameters:
  // the grad_outputs of the backward pass through a batch's gradients.
  std::vector<std::vector<torch::Tensor>> parts(k);
  for (int64_t i = 0; i < k; ++i) parts[i] = PartsOf(block[i]);
  ProductsInto(parts, curvature, products);
  return products;
}

std::vector<torch::Tensor> Objective::PartsOf(const torch::Tensor& flat) {
  std::vector<torch::Tensor> parts = flat.split_with_sizes(numels_);
  for (size_t j = 0; j < parts.size(); ++j) {
    parts[j] = parts[j].view(parameters_[j].sizes());
  }
  return parts;
}

void Objective::ProductsInto(
    const std::vector<std::vector<torch::Tensor>>& parts, Curvature curvature,
    torch::Tensor products) {
  const int64_t k = static_cast<int64_t>(parts.size());
  std::vector<Graph>& retained = retained_[static_cast<int>(curvature)];
  ForEachBatch([&](const Batch& batch) {
    const int64_t index = batch.index;
    Graph built;
    if (!retain_graphs_) {
      built = BuildGraph(batch, curvature);
    } else if (index == static_cast<int64_t>(retained.size())) {
      retained.push_back(BuildGraph(batch, curvature));
    }
    const Graph& graph = retain_graphs_ ? retained[index] : built;
    for (int64_t i = 0; i < k; ++i) {
      if (graph.gradients.empty()) {
        // A loss linear in every parameter, or outputs that depend on none of
        // the block's: this batch's matrix is 0.
        if (index == 0) products[i].zero_();
        continue;
      }
      // The last vector through a graph that is not kept lets autograd free
      // it on the way, as a single product would.
      const bool keep = retain_graphs_ || i + 1 < k;
      Accumulate(Apply(graph, curvature, parts[i], keep), batch.weight,
                 index == 0, products[i]);
    }
  });
}

bool Objective::ReplayedProducts(const torch::Tensor& block,
                                 torch::Tensor products) {
  const torch::Device device = vector_options_.device();
  if (!retain_graphs_ || !hvp_graph_failure_.empty() ||
      !DeviceGraphsAvailable(device)) {
    return false;
  }
  if (hvp_graph_ == nullptr) {
    // Autograd runs a node's backward on the stream its forward ran on, and
    // a recording captures its side stream only: the retained graphs are
    // (re)built by the warmup run, on that stream. The shapes are fixed: the
    // same micro-batches and parameters every time.
    retained_[static_cast<int>(Curvature::kHessian)].clear();
    hvp_graph_input_ = torch::zeros({num_parameters_}, vector_options_);
    hvp_graph_output_ = torch::empty({num_parameters_}, vector_options_);
    const std::vector<std::vector<torch::Tensor>> parts = {
        PartsOf(hvp_graph_input_)};
    torch::Tensor output = hvp_graph_output_.view({1, num_parameters_});
    absl::StatusOr<std::unique_ptr<DeviceGraph>> recorded =
        RecordDeviceGraph(device, /*warmup=*/1, [&] {
          ProductsInto(parts, Curvature::kHessian, output);
        });
    if (!recorded.ok()) {
      // The retained graphs the warmup built stay for the eager products.
      hvp_graph_failure_ = std::string(recorded.status().message());
      hvp_graph_input_ = torch::Tensor();
      hvp_graph_output_ = torch::Tensor();
      return false;
    }
    hvp_graph_ = *std::move(recorded);
  }
  for (int64_t i = 0; i < block.size(0); ++i) {
    hvp_graph_input_.copy_(block[i]);
    hvp_graph_->Replay();
    products[i].copy_(hvp_graph_output_);
  }
  hvp_graph_replays_ += block.size(0);
  return true;
}

absl::StatusOr<std::vector<double>> Objective::LossAlong(
    const torch::Tensor& direction, const std::vector<double>& t) {
  if (direction.dim() != 1 || direction.size(0) != num_parameters_) {
    return absl::InvalidArgumentError(
        absl::StrCat("loss direction has shape ", ShapeOf(direction),
                     ", want [", num_parameters_, "]"));
  }
  if (t.empty()) return std::vector<double>();
  const torch::Tensor along = direction.to(vector_options_).detach();
  const torch::Tensor losses =
      SumOverParts([&](Objective& part) {
        return part.LocalLossesAlong(
            &part == this ? along : along.to(part.vector_options_), t);
      }).cpu();
  // Every part's parameters are back as they were, bit for bit.
  refreshed_versions_ = ParameterVersions();
  std::vector<double> values(losses.data_ptr<double>(),
                             losses.data_ptr<double>() + losses.numel());
  for (size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat("the loss on the shard at t = ", t[i],
                       " along the direction is not finite (", values[i], ")"));
    }
  }
  return values;
}

torch::Tensor Objective::LocalLossesAlong(const torch::Tensor& direction,
                                          const std::vector<double>& t) {
  // Graphs hold the parameters' values (and version counters) of the point
  // they were built at.
  FreeRetainedGraphs();
  const std::vector<torch::Tensor> parts = direction.split_with_sizes(numels_);
  const ParameterRestorer restorer(parameters_);
  std::vector<torch::Tensor> on_device;
  for (double step : t) {
    {
      torch::NoGradGuard no_grad;
      for (size_t j = 0; j < parameters_.size(); ++j) {
        parameters_[j]
            .copy_(restorer.saved(j))
            .add_(parts[j].view(parameters_[j].sizes()), step);
      }
    }
    on_device.push_back(LossOnDevice());
  }
  return torch::stack(on_device);
}

}  // namespace curvd::core
