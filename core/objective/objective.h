// The loss of a model over a data shard on one device, and its derivatives with
// respect to the flat parameter vector of a block of the parameters (the
// concatenation of the block's Model::Parameters() in order, each flattened
// row-major; by default the block is every parameter). Internal to core
// (includes torch).
#ifndef CURVD_CORE_OBJECTIVE_OBJECTIVE_H_
#define CURVD_CORE_OBJECTIVE_OBJECTIVE_H_

#include <ATen/core/Generator.h>
#include <torch/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "core/api/measurement.h"
#include "core/data/model.h"
#include "core/engine/device_graph.h"
#include "core/objective/part_threads.h"

namespace curvd::core {

// The mean per-sample loss of a batch (cross-entropy with int64 class
// targets, or squared error averaged over all output elements), differentiable
// in `outputs`: a scalar for outputs [B, ...] and targets as
// Objective::targets() holds them ([B] class indices, or the outputs' shape);
// with `per_chain`, the mean of each chain [C] for outputs [C, B, ...] and
// targets [C, B, ...]. Throws c10::Error for shapes that do not fit.
torch::Tensor MeanLoss(const torch::Tensor& outputs,
                       const torch::Tensor& targets, LossFunction loss,
                       bool per_chain = false);

// L(w) = mean over the N samples of the shard of the per-sample loss
// (cross-entropy with int64 class targets, or squared error averaged over all
// output elements). The shard is processed in micro-batches; batch b
// contributes with weight |b|/N, so every quantity is that of the whole shard,
// exactly, also when the last batch is short. Torch errors (CUDA out of memory,
// a model that throws) propagate as exceptions for the engine boundary to
// convert. Not thread-safe: it runs autograd through the model it was given.
//
// Hessian-vector products reuse work between vectors at the same point: the
// forward pass and first backward (with create_graph) of a micro-batch, its
// "graph", is built once and applied to every vector of an Hvps call by one
// more backward pass each. With retain_graphs set, the graphs outlive the call
// and every later product is one backward pass per micro-batch; they hold the
// activations of the whole shard on the device until set_retain_graphs(false).
// Gauss-Newton products (Ggnvps) work the same way with graphs of their own,
// at three backward passes per vector and micro-batch (J v, H_out J v and
// J^T H_out J v), two of them through the model. Writing into the parameters
// moves the point: the next operation sees it (autograd's version counters
// tell) and frees the graphs built at the old one, which the next product
// rebuilds; LossAlong, which moves and restores them, frees them too.
// With retained graphs on a device with device graphs (device_graph.h), the
// Hessian product of one vector (every micro-batch's backward pass and the
// weighted sum) is recorded once and replayed for each later vector, one
// launch per product; where recording fails the products run eagerly
// (hvp_graph_note() says which ran; docs/adr/0024-hvp-device-graphs.md).
//
// Randomness in the forward pass (dropout in train mode, any torch.rand in
// forward) is fixed per objective: every forward pass of micro-batch b, in
// Loss, Gradient, the products and LossAlong alike, first seeds the default
// torch generator of the parameters' device with ForwardSeed(forward_seed(),
// b). So the loss and every operator are those of one sampled loss (one set of
// dropout masks per micro-batch), whichever products rebuild their graphs. The
// stream is reproducible while no other thread draws from that generator
// during a forward pass (curvd runs one measurement per device at a time);
// randomness from any other source (a generator of the model's own) is not
// fixed, which the measurement plan detects (operator_check.h).
//
// A split objective (CreateSplit) divides the micro-batches among copies of
// the model on several devices and sums their parts on the first device; its
// values are those of the unsplit objective, to rounding
// (docs/adr/0028-one-measurement-split-across-devices.md).
class Objective {
 public:
  // The seed of micro-batch `batch`'s forward stream for `forward_seed`: word
  // `batch` of the splitmix64 stream of key `forward_seed` (SplitMix64Words,
  // linear_operator.h), so that neighbouring batches and seeds get unrelated
  // streams. Thread-safe.
  static uint64_t ForwardSeed(uint64_t forward_seed, int64_t batch);

  // Checks that the shard fits `model` and wraps them. `model` must outlive the
  // objective; its parameters are made to require gradients. `inputs` [N, ...]
  // and `targets` must already be on the parameters' device, floating inputs in
  // their dtype. `micro_batch_size` 0 means all N samples at once.
  // InvalidArgument, with the shapes in the message, when N = 0, inputs and
  // targets disagree on N, the model cannot evaluate the inputs, targets do not
  // match the outputs (MSE: same shape, or [N] for outputs [N, 1];
  // cross-entropy: int64 [N] class indices in [0, C) for outputs [N, C]), or a
  // parameter or input is NaN/Inf. Graphs are not retained.
  //
  // `block` restricts the flat vectors to some parameters: a parameter (in
  // Model::Parameters() order) is in it when its name (Model::ParameterNames())
  // equals one of block.names or starts with one of block.prefixes; an empty
  // block is every parameter. Only the block's parameters are made to require
  // gradients and differentiated: Hvp gives H_BB v, Gradient the block's
  // gradient. InvalidArgument, listing (some of) the model's parameter names,
  // when the block selects no parameter or a name in block.names matches none.
  static absl::StatusOr<Objective> Create(Model* model, torch::Tensor inputs,
                                          torch::Tensor targets,
                                          LossFunction loss,
                                          int64_t micro_batch_size,
                                          const ParameterBlock& block = {});

  // Create's objective with its micro-batches divided among `models`: models[0]
  // is the model Create takes (the objective's point, device and dtype are
  // its), models[1..] are models of the same architecture on any devices (the
  // same one too: a logical split), whose parameters are overwritten with
  // models[0]'s (buffers are not: the copies must hold the same ones). Part p evaluates a contiguous run of the micro-batches
  // on models[p]'s device (the runs as even as the count allows, the short
  // last batch in the last run), each batch with weight |b|/N and the
  // forward seed of its index in the whole shard, and the parts are summed on
  // models[0]'s device: Loss, Gradient, every product and LossAlong equal
  // Create's to rounding. Parts on distinct devices run at the same time, one
  // host thread per device; parts on one device run one after another. With
  // fewer micro-batches than models the last models are left out (parts()).
  // `inputs` and `targets` may be on any device; each part copies its slice
  // to its own. Before each operation the copies' block parameters are
  // refreshed from models[0]'s when any of those changed since the last
  // refresh (autograd's version counters tell), so writing into
  // block_parameters() moves every part. Errors as Create's, and
  // InvalidArgument when `models` is empty or a copy's parameters differ from
  // models[0]'s in names, shapes or dtypes. Every model must outlive the
  // objective.
  static absl::StatusOr<Objective> CreateSplit(std::vector<Model*> models,
                                               torch::Tensor inputs,
                                               torch::Tensor targets,
                                               LossFunction loss,
                                               int64_t micro_batch_size,
                                               const ParameterBlock& block = {});

  // The size of the flat vectors: the block's number of parameters.
  int64_t num_parameters() const { return num_parameters_; }
  // Names of the block's parameters in model order; empty when the block was
  // empty (every parameter).
  const std::vector<std::string>& block_parameter_names() const {
    return block_parameter_names_;
  }
  // N, the samples of the whole shard (of every part).
  int64_t num_samples() const { return total_samples_; }
  // The parts the micro-batches are divided among: 1 unless split.
  int parts() const { return static_cast<int>(replicas_.size()) + 1; }
  // For a measurement's diagnostics, empty unless split: each part's device
  // and micro-batches, e.g. "split: 2 parts: cuda:0 micro-batches 0-3,
  // cuda:1 micro-batches 4-6".
  std::string split_note() const;
  // Samples per micro-batch actually used (N when the request said 0).
  int64_t micro_batch_size() const { return micro_batch_size_; }
  // The model, the shard (inputs [N, ...] and targets [N, ...] on the
  // parameters' device; MSE targets [N] of a model with outputs [N, 1] are
  // held as [N, 1]) and the loss, as Create was given them. The model's
  // parameters are its own: writing into them changes the objective's point.
  // Of a split objective the shard (and ForEachBatch) is the first part's
  // slice alone: per-sample methods (GOP, LLC chains) need an unsplit one.
  Model* model() const { return model_; }
  const torch::Tensor& inputs() const { return inputs_; }
  const torch::Tensor& targets() const { return targets_; }
  LossFunction loss() const { return loss_; }
  // The block's parameters (the model's own tensors, in model order) and
  // their numbers of elements: the parts of a flat vector, in order.
  const std::vector<torch::Tensor>& block_parameters() const {
    return parameters_;
  }
  const std::vector<int64_t>& block_numels() const { return numels_; }
  // Device and dtype of flat parameter vectors (those of the parameters).
  torch::TensorOptions vector_options() const { return vector_options_; }
  // Curvature-matrix-vector products computed so far, Hessian and GGN (an
  // Hvps or Ggnvps call of k vectors counts k).
  int64_t hvps() const { return hvps_; }
  // How the Hessian products ran, for a measurement's diagnostics:
  // "hvp_graph: replayed (...)" when a device graph replayed them, else
  // "hvp_graph: eager (reason)"; of a split objective, the first part's,
  // then "; part p: ..." for each part where it differs.
  std::string hvp_graph_note() const;

  // The seed of the forward passes' randomness (above); 0 until set. Setting
  // it frees retained graphs, which hold the masks of the old seed.
  void set_forward_seed(uint64_t seed);
  uint64_t forward_seed() const { return forward_seed_; }

  // Keep (true) or free after each call (false, the default) the graphs of the
  // micro-batches (of the Hessian and of the GGN, each built when first
  // needed); false also frees those kept so far.
  void set_retain_graphs(bool retain);
  bool retain_graphs() const { return retain_graphs_; }

  // The loss at the model's current parameters. InvalidArgument if it is not
  // finite.
  absl::StatusOr<double> Loss();

  // The gradient as a flat vector [num_parameters]. InvalidArgument if not
  // finite.
  absl::StatusOr<torch::Tensor> Gradient();

  // H v by double backward, H the Hessian of the loss, v a flat vector of
  // num_parameters elements with vector_options(). InvalidArgument for a vector
  // of the wrong size. The product is not checked for NaN/Inf, which would cost
  // a device synchronisation: callers check the scalars they read from it.
  absl::StatusOr<torch::Tensor> Hvp(const torch::Tensor& v);

  // H V for a block V [k, num_parameters] of k vectors as rows, returned as
  // [k, num_parameters]: each micro-batch's graph is built (or taken from the
  // retained ones) once for all k. Equal to k calls of Hvp, to rounding.
  // InvalidArgument for a block of the wrong shape; not checked for NaN/Inf.
  absl::StatusOr<torch::Tensor> Hvps(const torch::Tensor& vectors);

  // G v for the generalised Gauss-Newton matrix
  //   G = sum_b (|b|/N) J_b^T H_out,b J_b,
  // J_b the Jacobian of micro-batch b's model outputs with respect to the
  // block's parameters, H_out,b the Hessian of b's mean loss with respect to
  // those outputs. Same contract as Hvp: InvalidArgument for a vector of the
  // wrong size, not checked for NaN/Inf, counted in hvps(). Parameters the
  // outputs do not depend on have zero rows and columns.
  absl::StatusOr<torch::Tensor> Ggnvp(const torch::Tensor& v);

  // G V for a block V [k, num_parameters] of k vectors as rows, as Hvps does
  // for H: each micro-batch's GGN graph is built (or taken from the retained
  // ones) once for all k. Equal to k calls of Ggnvp, to rounding.
  absl::StatusOr<torch::Tensor> Ggnvps(const torch::Tensor& vectors);

  // The loss at w + t * direction for each entry t of `t`, w the block's
  // current parameters and `direction` a flat vector [num_parameters] with
  // vector_options(); parameters outside the block stay as they are. The
  // parameters are restored bit for bit afterwards, also when torch throws.
  // Moving them invalidates retained graphs, so this frees them
  // (retain_graphs() is unchanged: they are rebuilt by the next product).
  // InvalidArgument for a direction of the wrong size, or naming the first t
  // whose loss is not finite. One device synchronisation for all t.
  absl::StatusOr<std::vector<double>> LossAlong(const torch::Tensor& direction,
                                                const std::vector<double>& t);

  // A micro-batch: samples [start, start + count) of the shard.
  struct Batch {
    int64_t index;  // 0, 1, ... in shard order (in the part's, when split)
    int64_t start;
    int64_t count;
    double weight;  // count / N
  };
  // Calls `body` for each micro-batch, in shard order; their weights sum to 1
  // (to the part's share of N, when split).
  void ForEachBatch(absl::FunctionRef<void(const Batch&)> body);

 private:
  // The matrix a product is with.
  enum class Curvature { kHessian, kGgn };
  // A micro-batch's first derivatives, built with create_graph, and which
  // parameter each is of. kHessian: the loss's gradients that depend on the
  // parameters (a loss linear in a parameter has a constant gradient, which
  // contributes nothing to H v). kGgn: J^T u for a zero cotangent u of the
  // outputs that requires grad, so that J v is one more backward pass (the
  // "double-backward trick": J^T u is linear in u, its gradient in u along v
  // is J v); only those that depend on u (the outputs depend on their
  // parameter).
  struct Graph {
    std::vector<torch::Tensor> gradients;
    std::vector<size_t> parameter_indices;
    // kGgn only. The batch's outputs z, with their graph to the parameters.
    torch::Tensor outputs;
    torch::Tensor cotangent;  // u
    // A detached copy of z as a leaf, and the gradient of the batch's mean
    // loss in it built with create_graph: H_out x is one backward pass
    // through the loss alone, not through the model.
    torch::Tensor output_leaf;
    torch::Tensor output_gradient;
  };

  // A part: samples [start, start + count) of a shard of `total_samples`,
  // beginning with micro-batch `first_batch` of the whole shard.
  struct Slice {
    int64_t start;
    int64_t count;
    int64_t first_batch;
    int64_t total_samples;
  };

  Objective(Model* model, std::vector<torch::Tensor> parameters,
            std::vector<std::string> block_parameter_names,
            torch::Tensor inputs, torch::Tensor targets, LossFunction loss,
            int64_t micro_batch_size, const Slice& slice);

  // This part's own work (its slice of the shard), for the whole objective's
  // operations to sum over the parts.
  torch::Tensor LocalGradient();
  torch::Tensor LocalProducts(const torch::Tensor& block, Curvature curvature);
  // The losses [t.size()] in float64 on the device, restored after.
  torch::Tensor LocalLossesAlong(const torch::Tensor& direction,
                                 const std::vector<double>& t);
  // body(part) for every part, each on its device's lane, summed on this
  // part's device, after RefreshPoint.
  torch::Tensor SumOverParts(
      absl::FunctionRef<torch::Tensor(Objective& part)> body);
  // When the block parameters changed since the last call: frees the
  // retained graphs, built at the old point, and copies the parameters into
  // every other part (freeing theirs).
  void RefreshPoint();
  std::vector<int64_t> ParameterVersions() const;
  // hvp_graph_note of this part alone.
  std::string PartHvpGraphNote() const;

  // The model's outputs on `batch`, its randomness seeded for the batch.
  torch::Tensor BatchOutputs(const Batch& batch);
  // Mean loss of `batch` for its `outputs`, differentiable in them.
  torch::Tensor BatchLossOf(const Batch& batch, const torch::Tensor& outputs);
  // Mean loss of `batch`, differentiable in the parameters.
  torch::Tensor BatchLoss(const Batch& batch);
  // The whole shard's loss as a float64 scalar on the device.
  torch::Tensor LossOnDevice();
  Graph BuildGraph(const Batch& batch, Curvature curvature);
  // The product of `batch`'s matrix (unweighted) with one vector, given as
  // its per-parameter parts, through `graph`; per parameter, undefined where
  // zero. `keep` retains the graph for more products.
  std::vector<torch::Tensor> Apply(const Graph& graph, Curvature curvature,
                                   const std::vector<torch::Tensor>& parts,
                                   bool keep);
  // The shared body of Hvp/Ggnvp and Hvps/Ggnvps.
  absl::StatusOr<torch::Tensor> Product(const torch::Tensor& v,
                                        Curvature curvature);
  absl::StatusOr<torch::Tensor> Products(const torch::Tensor& vectors,
                                         Curvature curvature);
  // `flat` [num_parameters]'s per-parameter parts, views shaped like the
  // parameters: the grad_outputs of a backward pass through the gradients.
  std::vector<torch::Tensor> PartsOf(const torch::Tensor& flat);
  // The curvature products of the vectors whose per-parameter parts are
  // `parts` (PartsOf), every micro-batch's weighted and summed into row i of
  // `products` [k, num_parameters]: through the retained graphs (built where
  // missing) when graphs are retained, else through graphs built per call.
  void ProductsInto(const std::vector<std::vector<torch::Tensor>>& parts,
                    Curvature curvature, torch::Tensor products);
  // The retained Hessian products as a replay of hvp_graph_, recorded at the
  // first call; false (the caller runs them eagerly) where it cannot be.
  bool ReplayedProducts(const torch::Tensor& block, torch::Tensor products);
  // Frees the retained graphs and the device graph that replays them.
  void FreeRetainedGraphs();
  // Writes (first batch) or adds weight * (the per-parameter tensors
  // flattened) to `out` [num_parameters]; undefined entries (a parameter the
  // loss does not depend on) count as zeros.
  void Accumulate(const std::vector<torch::Tensor>& per_parameter,
                  double weight, bool first, torch::Tensor out);

  Model* model_;
  std::vector<torch::Tensor> parameters_;  // the block's
  std::vector<std::string> block_parameter_names_;
  std::vector<int64_t> numels_;
  torch::Tensor inputs_;
  torch::Tensor targets_;
  LossFunction loss_;
  int64_t micro_batch_size_;
  int64_t first_batch_;
  int64_t total_samples_;
  int64_t num_parameters_ = 0;
  torch::TensorOptions vector_options_;
  int64_t hvps_ = 0;
  bool retain_graphs_ = false;
  uint64_t forward_seed_ = 0;
  // ForwardSeed(forward_seed_, b) for each micro-batch b.
  std::vector<uint64_t> batch_seeds_;
  // The default generator of the parameters' device.
  at::Generator forward_generator_;
  // Indexed by Curvature: one per micro-batch once built.
  std::vector<Graph> retained_[2];
  // The recorded Hessian product: it reads hvp_graph_input_ and writes
  // hvp_graph_output_ (both [num_parameters]); null until recorded.
  std::unique_ptr<DeviceGraph> hvp_graph_;
  torch::Tensor hvp_graph_input_;
  torch::Tensor hvp_graph_output_;
  int64_t hvp_graph_replays_ = 0;
  // Why recording failed (then it is not tried again); empty if it did not.
  std::string hvp_graph_failure_;
  // Reused flat buffer for one batch's contribution when there are several.
  torch::Tensor scratch_;
  // Zeros for parameters the loss does not depend on, made when first needed.
  std::vector<torch::Tensor> zero_parts_;
  // Split only: the other parts (part p = replicas_[p - 1]) and which lane
  // of part_threads_ runs each part (one lane per device, this part's
  // first). The block parameters' versions at the last RefreshPoint.
  std::vector<std::unique_ptr<Objective>> replicas_;
  std::vector<std::vector<size_t>> lanes_;
  std::unique_ptr<PartThreads> part_threads_;
  std::vector<int64_t> refreshed_versions_;
};

}  // namespace curvd::core

#endif  // CURVD_CORE_OBJECTIVE_OBJECTIVE_H_
