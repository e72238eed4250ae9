#include "core/data/model.h"

#include <ext/stdio_filebuf.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <algorithm>
#include <istream>
#include <map>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "core/api/data_roots.h"
#include "core/api/safetensors.h"
#include "core/data/archive_check.h"
#include "core/data/torchscript_recording.h"
#include "core/data/zoo_mlp.h"
#include "core/engine/torch_status.h"

namespace curvd::core {
namespace {

std::string ShapeString(c10::IntArrayRef shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

bool IsFloatingDtype(const std::string& dtype) {
  return dtype == "F64" || dtype == "F32" || dtype == "F16" || dtype == "BF16";
}

// A parameter or buffer of a model that a state dict may overwrite.
struct Slot {
  std::string name;
  torch::Tensor tensor;
  bool required;  // parameters must be in the state dict; buffers may be absent
};

absl::Status CheckFinite(const std::string& name, const torch::Tensor& tensor) {
  if (tensor.is_floating_point() &&
      !torch::isfinite(tensor).all().item<bool>()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor '", name, "' contains NaN or Inf values"));
  }
  return absl::OkStatus();
}

// The dtype as PyTorch users write it ("float32"), for messages.
std::string DtypeName(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kFloat64:
      return "float64";
    case torch::kFloat32:
      return "float32";
    case torch::kFloat16:
      return "float16";
    case torch::kBFloat16:
      return "bfloat16";
    default:
      return c10::toString(dtype);
  }
}

// OK when `converted` (`original` in the measurement's dtype) holds the same
// values: rounding float64 weights to float32 is refused rather than done
// silently. `what` names the tensor and its stored dtype.
absl::Status CheckLossless(const std::string& what,
                           const torch::Tensor& original,
                           const torch::Tensor& converted) {
  if (!original.is_floating_point() ||
      original.scalar_type() == converted.scalar_type() ||
      converted.to(original.scalar_type()).equal(original)) {
    return absl::OkStatus();
  }
  const double change =
      (converted.to(torch::kFloat64) - original.to(torch::kFloat64))
          .abs()
          .max()
          .item<double>();
  return absl::InvalidArgumentError(absl::StrCat(
      what, " has values that ", DtypeName(converted.scalar_type()),
      ", the dtype this measurement runs in, cannot hold (rounding would "
      "change them by up to ",
      change,
      "): measure with spec.precision PRECISION_FLOAT64, or save the weights "
      "in float32"));
}

// A tensor a state dict must or may give.
struct Expected {
  std::string name;
  std::vector<int64_t> shape;
  torch::ScalarType dtype;
  bool required;  // parameters must be in the state dict; buffers may be absent
};

std::vector<Expected> ExpectedOf(const std::vector<Slot>& slots) {
  std::vector<Expected> out;
  for (const Slot& slot : slots) {
    out.push_back({slot.name, slot.tensor.sizes().vec(),
                   slot.tensor.scalar_type(), slot.required});
  }
  return out;
}

// A state dict file open for reading, its header read.
struct StateDictFile {
  std::string path;
  FileDescriptor fd;
  std::vector<SafetensorsEntry> entries;
};

// Per expected tensor, the room its header entry may take, and for metadata:
// a header is refused before it is parsed when it is out of proportion to the
// model (core/api/safetensors.h).
constexpr uint64_t kStateDictHeaderBytesPerTensor = 16 << 10;
constexpr uint64_t kStateDictHeaderBaseBytes = 1 << 20;

absl::StatusOr<StateDictFile> OpenStateDict(
    const std::string& path, const std::vector<std::string>& roots,
    size_t expected_tensors) {
  StateDictFile file;
  file.path = path;
  CURVD_ASSIGN_OR_RETURN(file.fd, OpenDataFile(path, roots));
  CURVD_ASSIGN_OR_RETURN(
      file.entries,
      ReadSafetensorsIndex(file.fd.get(), path,
                           std::min(kMaxSafetensorsHeaderBytes,
                                    kStateDictHeaderBaseBytes +
                                        kStateDictHeaderBytesPerTensor *
                                            expected_tensors)));
  return file;
}

// Checks the header of `file` against `expected` by name, floating or not,
// and shape, before any data is read; returns each expected tensor's entry
// (null for an absent buffer).
absl::StatusOr<std::vector<const SafetensorsEntry*>> MatchStateDict(
    const StateDictFile& file, const std::vector<Expected>& expected) {
  std::map<std::string, const SafetensorsEntry*> by_name;
  for (const SafetensorsEntry& t : file.entries) by_name[t.name] = &t;
  std::vector<const SafetensorsEntry*> matched;
  for (const Expected& slot : expected) {
    auto it = by_name.find(slot.name);
    if (it == by_name.end()) {
      if (slot.required) {
        return absl::InvalidArgumentError(absl::StrCat(
            "state dict ", file.path, " is missing parameter '", slot.name,
            "' of shape ", ShapeString(slot.shape)));
      }
      matched.push_back(nullptr);
      continue;
    }
    const SafetensorsEntry& stored = *it->second;
    by_name.erase(it);
    if (c10::isFloatingType(slot.dtype) != IsFloatingDtype(stored.dtype)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "state dict tensor '", slot.name, "' has dtype ", stored.dtype,
          " but the model's is ", c10::toString(slot.dtype)));
    }
    if (stored.shape != slot.shape) {
      return absl::InvalidArgumentError(
          absl::StrCat("state dict tensor '", slot.name, "' has shape ",
                       ShapeString(stored.shape), " but the model expects ",
                       ShapeString(slot.shape)));
    }
    matched.push_back(&stored);
  }
  if (!by_name.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "state dict ", file.path, " has unexpected tensor '",
        by_name.begin()->first,
        "': the model has no parameter or buffer of that name"));
  }
  return matched;
}

// Loads the state dict `file` into `slots` by name. Everything is checked
// before anything is written, so a rejected file leaves the model as it was.
absl::Status LoadStateDict(const StateDictFile& file,
                           const std::vector<Slot>& slots,
                           MemoryBudget& budget) {
  CURVD_ASSIGN_OR_RETURN(std::vector<const SafetensorsEntry*> matched,
                         MatchStateDict(file, ExpectedOf(slots)));
  int64_t bytes = 0;
  for (const SafetensorsEntry* stored : matched)
    bytes += stored == nullptr ? 0 : static_cast<int64_t>(stored->bytes);
  CURVD_RETURN_IF_ERROR(budget.Charge(
      absl::StrCat("the state dict's ", file.entries.size(), " tensors"),
      bytes));
  std::vector<std::pair<torch::Tensor, torch::Tensor>> copies;
  for (size_t i = 0; i < slots.size(); ++i) {
    const Slot& slot = slots[i];
    const SafetensorsEntry* stored = matched[i];
    if (stored == nullptr) continue;
    CURVD_ASSIGN_OR_RETURN(
        const torch::Tensor stored_value,
        ReadSafetensorsRows(file.fd.get(), *stored, 0,
                            stored->shape.empty() ? 1 : stored->shape[0],
                            file.path));
    const torch::Tensor value = stored_value.to(slot.tensor.scalar_type());
    // Checked after conversion: an F64 value too large for float32 becomes Inf.
    CURVD_RETURN_IF_ERROR(CheckFinite(slot.name, value));
    CURVD_RETURN_IF_ERROR(
        CheckLossless(absl::StrCat("state dict tensor '", slot.name, "' (",
                                   stored->dtype, ")"),
                      stored_value, value));
    copies.emplace_back(slot.tensor, value);
  }
  torch::NoGradGuard no_grad;
  for (auto& [target, value] : copies) target.copy_(value);
  return absl::OkStatus();
}

// Moves every tensor to `device`, converting floating ones to `dtype`. set_data
// keeps each tensor's identity, so the module keeps seeing its own parameters.
void ConvertInPlace(const std::vector<torch::Tensor>& tensors,
                    const torch::Device& device, torch::ScalarType dtype) {
  torch::NoGradGuard no_grad;
  for (torch::Tensor t : tensors) {
    t.set_data(t.to(device, t.is_floating_point() ? dtype : t.scalar_type()));
  }
}

class ZooModel : public Model {
 public:
  explicit ZooModel(const ZooSpec& spec) : module_(spec) { module_->eval(); }

  std::vector<Slot> Slots() {
    std::vector<Slot> slots;
    for (const auto& item : module_->named_parameters()) {
      slots.push_back({item.key(), item.value(), true});
    }
    for (const auto& item : module_->named_buffers()) {
      slots.push_back({item.key(), item.value(), false});
    }
    return slots;
  }

  torch::Tensor Forward(const torch::Tensor& inputs) override {
    return module_->forward(inputs);
  }
  std::vector<torch::Tensor> Parameters() override {
    return module_->parameters();
  }
  std::vector<std::string> ParameterNames() override {
    return module_->named_parameters().keys();
  }
  bool SupportsChains() const override { return true; }
  torch::Tensor ForwardChains(
      const std::vector<torch::Tensor>& chain_parameters,
      const torch::Tensor& inputs) override {
    return module_->forward_chains(chain_parameters, inputs);
  }
  std::vector<RecordedLayer> RecordedLayers() override {
    std::vector<RecordedLayer> layers;
    for (size_t i = 0; i < module_->num_layers(); ++i) {
      layers.push_back({RecordedLayer::Kind::kLinear,
                        ZooLayerName(i) + ".weight",
                        ZooLayerName(i) + ".bias"});
    }
    return layers;
  }
  torch::Tensor ForwardRecording(
      const torch::Tensor& inputs,
      std::vector<LayerActivations>* layers) override {
    std::vector<torch::Tensor> layer_inputs, layer_outputs;
    torch::Tensor outputs =
        module_->forward(inputs, &layer_inputs, &layer_outputs);
    layers->clear();
    for (size_t i = 0; i < layer_inputs.size(); ++i) {
      layers->push_back({layer_inputs[i], layer_outputs[i]});
    }
    return outputs;
  }
  void SetTrainMode(bool train) override { module_->train(train); }
  void To(const torch::Device& device, torch::ScalarType dtype) override {
    std::vector<torch::Tensor> tensors = module_->parameters();
    for (const torch::Tensor& b : module_->buffers()) tensors.push_back(b);
    ConvertInPlace(tensors, device, dtype);
  }

 private:
  ZooMlp module_;
};

class TorchScriptModel : public Model {
 public:
  explicit TorchScriptModel(torch::jit::Module module)
      : module_(std::move(module)) {
    module_.eval();
    // Archives saved from a frozen or inference-only model may carry parameters
    // without requires_grad; the objective differentiates through all of them.
    for (torch::Tensor p : module_.parameters()) {
      if (p.is_floating_point()) p.requires_grad_(true);
    }
  }

  std::vector<Slot> Slots() {
    std::vector<Slot> slots;
    for (const auto& item : module_.named_parameters()) {
      slots.push_back({item.name, item.value, true});
    }
    for (const auto& item : module_.named_buffers()) {
      slots.push_back({item.name, item.value, false});
    }
    return slots;
  }

  // Runs the module unoptimised: the profiling executor's fused and
  // differentiable subgraphs may not support double backward (HVPs), and the
  // plain interpreter records ordinary autograd ops that do. The switch is
  // per thread, hence set around each call.
  torch::Tensor Forward(const torch::Tensor& inputs) override {
    const torch::jit::GraphOptimizerEnabledGuard unoptimised(false);
    return module_.forward({inputs}).toTensor();
  }
  std::vector<torch::Tensor> Parameters() override {
    std::vector<torch::Tensor> out;
    for (const auto& item : module_.named_parameters())
      out.push_back(item.value);
    return out;
  }
  std::vector<std::string> ParameterNames() override {
    std::vector<std::string> out;
    for (const auto& item : module_.named_parameters())
      out.push_back(item.name);
    return out;
  }
  // In train mode none: the recording's batched pass would draw other
  // randomness than the generic path's one-sample passes.
  std::vector<RecordedLayer> RecordedLayers() override {
    if (module_.is_training()) return {};
    if (!recording_) recording_.emplace(module_, ParameterNames());
    return recording_->layers();
  }
  torch::Tensor ForwardRecording(
      const torch::Tensor& inputs,
      std::vector<LayerActivations>* layers) override {
    TORCH_CHECK(!RecordedLayers().empty(), "this model records no layers");
    return recording_->Forward(module_, inputs, layers);
  }
  void SetTrainMode(bool train) override { module_.train(train); }
  std::unique_ptr<Model> Clone() const override {
    // Copied without autograd, so that the copy's parameters are leaves of
    // their own and not views back into this model's graph.
    const torch::NoGradGuard no_grad;
    // deepcopy, not clone: clone makes a new class type per module for every
    // copy, kept by the compilation unit as long as the cached model lives.
    try {
      auto copy = std::make_unique<TorchScriptModel>(module_.deepcopy());
      copy->SetTrainMode(module_.is_training());
      return copy;
    } catch (const c10::OutOfMemoryError&) {
      throw;
    } catch (const c10::Error&) {
      return nullptr;  // an attribute that cannot be copied
    }
  }
  void To(const torch::Device& device, torch::ScalarType dtype) override {
    std::vector<torch::Tensor> tensors;
    for (const auto& p : module_.parameters()) tensors.push_back(p);
    for (const auto& b : module_.buffers()) tensors.push_back(b);
    ConvertInPlace(tensors, device, dtype);
  }

 private:
  torch::jit::Module module_;
  // Built on the first RecordedLayers() in eval mode.
  std::optional<TorchScriptRecording> recording_;
};

// The archive at `path` refused, for `why`.
absl::Status Unloadable(const std::string& path, const absl::Status& why) {
  return absl::InvalidArgumentError(
      absl::StrCat("cannot load TorchScript archive ", path,
                   " (corrupt, truncated or not written by torch.jit.save): ",
                   why.message()));
}

// Loads the archive through its descriptor: torch reads it as a stream,
// after the child process of source.archive_checker did.
absl::StatusOr<std::unique_ptr<TorchScriptModel>> LoadArchive(
    const ModelSource& source, MemoryBudget& budget) {
  const std::string& path = source.archive_path;
  absl::StatusOr<FileDescriptor> fd = OpenDataFile(path, source.data_roots);
  if (absl::IsNotFound(fd.status()) && source.data_roots.empty()) {
    return absl::NotFoundError(
        absl::StrCat("TorchScript archive ", path, " not found"));
  }
  if (!fd.ok()) return fd.status();
  // The archive's tensors are most of its bytes, as stored or compressed.
  CURVD_ASSIGN_OR_RETURN(const uint64_t size, FileSize(fd->get(), path));
  CURVD_RETURN_IF_ERROR(
      budget.Charge("the TorchScript archive", static_cast<int64_t>(size)));
  if (!source.archive_checker.empty()) {
    const absl::Status checked =
        CheckArchiveInChild(fd->get(), source.archive_checker);
    if (absl::IsInvalidArgument(checked)) return Unloadable(path, checked);
    if (!checked.ok()) {
      return absl::Status(checked.code(),
                          absl::StrCat("cannot load TorchScript archive ",
                                       path, ": ", checked.message()));
    }
  }
  // stdio_filebuf closes the descriptor it is given.
  __gnu_cxx::stdio_filebuf<char> buffer(fd->release(), std::ios::in);
  std::istream in(&buffer);
  absl::StatusOr<std::unique_ptr<TorchScriptModel>> model =
      CatchTorchExceptions(
          [&]() -> absl::StatusOr<std::unique_ptr<TorchScriptModel>> {
            return std::make_unique<TorchScriptModel>(
                torch::jit::load(in, torch::Device("cpu")));
          });
  if (model.ok()) return model;
  // Whatever the loader threw, the archive is what is wrong with it; the
  // conversion keeps torch's message, without its backtrace, and shortens it.
  return Unloadable(path, model.status());
}

absl::Status CheckAllFinite(const std::vector<Slot>& slots) {
  for (const Slot& slot : slots)
    CURVD_RETURN_IF_ERROR(CheckFinite(slot.name, slot.tensor));
  return absl::OkStatus();
}

// The archive's own floating tensors in `dtype`, each checked by
// CheckLossless first.
absl::Status ConvertArchiveWeights(TorchScriptModel& model,
                                   torch::ScalarType dtype) {
  for (const Slot& slot : model.Slots()) {
    CURVD_RETURN_IF_ERROR(
        CheckLossless(absl::StrCat("archive tensor '", slot.name, "' (",
                                   DtypeName(slot.tensor.scalar_type()), ")"),
                      slot.tensor, slot.tensor.to(dtype)));
  }
  model.To(torch::Device("cpu"), dtype);
  return absl::OkStatus();
}

int64_t ElementCount(const std::vector<int64_t>& shape) {
  int64_t count = 1;
  for (int64_t dim : shape) count *= dim;
  return count;
}

// The zoo model of `source`, its state dict checked against the declared
// shapes and its parameters charged before the model is built.
absl::StatusOr<std::unique_ptr<Model>> LoadZoo(const ModelSource& source,
                                               torch::ScalarType dtype,
                                               MemoryBudget& budget) {
  CURVD_RETURN_IF_ERROR(ValidateZooSpec(source.zoo));
  std::vector<Expected> expected;
  int64_t parameters = 0;
  for (auto& [name, shape] : ZooParameterShapes(source.zoo)) {
    parameters += ElementCount(shape);
    expected.push_back({std::move(name), std::move(shape), dtype, true});
  }
  std::optional<StateDictFile> state_dict;
  if (!source.state_dict_path.empty()) {
    CURVD_ASSIGN_OR_RETURN(state_dict,
                           OpenStateDict(source.state_dict_path,
                                         source.data_roots, expected.size()));
    CURVD_RETURN_IF_ERROR(MatchStateDict(*state_dict, expected).status());
  }
  CURVD_RETURN_IF_ERROR(budget.Charge(
      absl::StrCat("the zoo model's ", parameters, " parameters"),
      parameters * static_cast<int64_t>(c10::elementSize(dtype))));
  auto model = std::make_unique<ZooModel>(source.zoo);
  model->To(torch::Device("cpu"), dtype);
  if (state_dict.has_value()) {
    CURVD_RETURN_IF_ERROR(LoadStateDict(*state_dict, model->Slots(), budget));
  }
  return model;
}

absl::StatusOr<std::unique_ptr<Model>> LoadModelOrThrow(
    const ModelSource& source, torch::ScalarType dtype, MemoryBudget& budget) {
  if (source.kind == ModelSource::Kind::kZoo)
    return LoadZoo(source, dtype, budget);
  CURVD_ASSIGN_OR_RETURN(auto model, LoadArchive(source, budget));
  if (source.state_dict_path.empty()) {
    CURVD_RETURN_IF_ERROR(CheckAllFinite(model->Slots()));
    CURVD_RETURN_IF_ERROR(ConvertArchiveWeights(*model, dtype));
  } else {
    // The state dict replaces the parameters, so the archive's own are not
    // checked; buffers it leaves keep the archive's values, checked after.
    model->To(torch::Device("cpu"), dtype);
    const std::vector<Slot> slots = model->Slots();
    CURVD_ASSIGN_OR_RETURN(StateDictFile state_dict,
                           OpenStateDict(source.state_dict_path,
                                         source.data_roots, slots.size()));
    CURVD_RETURN_IF_ERROR(LoadStateDict(state_dict, slots, budget));
    CURVD_RETURN_IF_ERROR(CheckAllFinite(model->Slots()));
  }
  return model;
}

}  // namespace

torch::Tensor Model::ForwardChains(const std::vector<torch::Tensor>&,
                                   const torch::Tensor&) {
  TORCH_CHECK(false,
              "this model cannot evaluate several parameter sets in one pass");
}

torch::Tensor Model::ForwardRecording(const torch::Tensor&,
                                      std::vector<LayerActivations>*) {
  TORCH_CHECK(false, "this model records no layers");
}

absl::StatusOr<torch::ScalarType> TorchDtypeOf(const std::string& dtype,
                                               const std::string& name) {
  static const std::map<std::string, torch::ScalarType> kDtypes = {
      {"F64", torch::kFloat64}, {"F32", torch::kFloat32},
      {"F16", torch::kFloat16}, {"BF16", torch::kBFloat16},
      {"I64", torch::kInt64},   {"I32", torch::kInt32},
      {"I16", torch::kInt16},   {"I8", torch::kInt8},
      {"U8", torch::kUInt8},    {"BOOL", torch::kBool}};
  auto it = kDtypes.find(dtype);
  if (it == kDtypes.end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor '", name, "' has dtype ", dtype, ", which torch cannot hold"));
  }
  return it->second;
}

absl::StatusOr<torch::Tensor> TensorFromSafetensors(
    const SafetensorsTensor& tensor) {
  CURVD_ASSIGN_OR_RETURN(const torch::ScalarType dtype,
                         TorchDtypeOf(tensor.dtype, tensor.name));
  // Overflow-safe: the struct may come from a caller rather than
  // ParseSafetensors.
  int64_t bytes = SafetensorsDtypeSize(tensor.dtype);
  bool bad_shape = false;
  for (int64_t dim : tensor.shape) {
    bad_shape |= dim < 0 || __builtin_mul_overflow(bytes, dim, &bytes);
  }
  if (bad_shape || bytes != static_cast<int64_t>(tensor.data.size())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor '", tensor.name, "' has ", tensor.data.size(),
        " bytes for shape ", ShapeString(tensor.shape), " of ", tensor.dtype));
  }
  // from_blob does not own the bytes, hence the clone.
  return torch::from_blob(const_cast<char*>(tensor.data.data()), tensor.shape,
                          torch::TensorOptions().dtype(dtype))
      .clone();
}

absl::StatusOr<torch::Tensor> ReadSafetensorsRows(
    int fd, const SafetensorsEntry& entry, int64_t begin, int64_t count,
    const std::string& name) {
  CURVD_ASSIGN_OR_RETURN(const torch::ScalarType dtype,
                         TorchDtypeOf(entry.dtype, entry.name));
  std::vector<int64_t> shape = entry.shape;
  const int64_t rows = shape.empty() ? 1 : std::max<int64_t>(shape[0], 1);
  const uint64_t row_bytes = entry.bytes / static_cast<uint64_t>(rows);
  if (!shape.empty()) shape[0] = count;
  torch::Tensor out = torch::empty(shape, torch::TensorOptions().dtype(dtype));
  CURVD_RETURN_IF_ERROR(
      ReadExactly(fd, entry.offset + row_bytes * static_cast<uint64_t>(begin),
                  row_bytes * static_cast<uint64_t>(count), out.data_ptr(),
                  name));
  return out;
}

absl::StatusOr<std::unique_ptr<Model>> LoadModel(const ModelSource& source,
                                                 torch::ScalarType dtype,
                                                 MemoryBudget& budget) {
  // Anything torch throws past the archive loader (a copy into an exotic
  // buffer, an allocation failure) still must not escape as an exception.
  return CatchTorchExceptions(
      [&] { return LoadModelOrThrow(source, dtype, budget); },
      "cannot load model: ");
}

absl::StatusOr<std::unique_ptr<Model>> LoadModel(const ModelSource& source,
                                                 torch::ScalarType dtype) {
  MemoryBudget unlimited(0);
  return LoadModel(source, dtype, unlimited);
}

}  // namespace curvd::core
