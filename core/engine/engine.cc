// Engine on LibTorch: keeps models and shards on the device in a cache, builds
// the objective, runs the request's measurements on it (measurement_plan.h)
// and retries on running out of memory. Every torch exception stops here.
#include "core/api/engine.h"

#include <ATen/Context.h>
#include <c10/core/DeviceGuard.h>
#include <dlfcn.h>
#include <sys/stat.h>
#include <torch/cuda.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <exception>
#include <fstream>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "core/data/device_cache.h"
#include "core/data/memory_budget.h"
#include "core/data/model.h"
#include "core/data/shard.h"
#include "core/engine/oom_retry.h"
#include "core/engine/torch_status.h"
#include "core/measurements/llc.h"
#include "core/measurements/measurement_plan.h"
#include "core/objective/objective.h"

namespace curvd::core {
namespace {

constexpr int64_t kGiB = int64_t{1} << 30;
constexpr int64_t kCpuCacheBudget = 4 * kGiB;
// When the CUDA runtime cannot say how much memory the device has.
constexpr int64_t kCudaFallbackCacheBudget = 8 * kGiB;
constexpr double kCudaCacheFraction = 0.4;

torch::ScalarType DtypeOf(Precision precision) {
  return precision == Precision::kFloat64 ? torch::kFloat64 : torch::kFloat32;
}

// Floating tensors take the measurement's dtype; class indices and token ids
// stay int64.
torch::Tensor ToDevice(const torch::Tensor& t, const torch::Device& device,
                       torch::ScalarType dtype) {
  return t.is_floating_point() ? t.to(device, dtype) : t.to(device);
}

// The key of a model or shard copy on the device: the source's cache key, the
// dtype (converting a cached copy between precisions would lose digits on the
// way down), and the size and modification time of each file it is read from,
// so that a file rewritten in place under the same URI (a trainer overwriting
// "latest.safetensors") is loaded again rather than served from the old copy.
// Empty, meaning "do not reuse", when `cache_key` is.
std::string DeviceKey(const std::string& cache_key, torch::ScalarType dtype,
                      std::initializer_list<std::string> files) {
  if (cache_key.empty()) return "";
  std::string key = absl::StrCat(cache_key, "@", c10::toString(dtype));
  for (const std::string& file : files) {
    struct stat info;
    if (file.empty() || stat(file.c_str(), &info) != 0) continue;
    absl::StrAppend(&key, "|", file, ":", info.st_size, ":",
                    info.st_mtim.tv_sec, ".", info.st_mtim.tv_nsec);
  }
  return key;
}

// The free and total memory of a CUDA device; false when they cannot be read.
// LibTorch's CUDA build has loaded the CUDA runtime; looking its function up
// there keeps the CPU build free of CUDA headers and libraries.
bool CudaMemGetInfo(const torch::Device& device, size_t* free_bytes,
                    size_t* total_bytes) {
  using MemGetInfo = int (*)(size_t * free_bytes, size_t * total_bytes);
  const auto mem_get_info =
      reinterpret_cast<MemGetInfo>(dlsym(RTLD_DEFAULT, "cudaMemGetInfo"));
  if (mem_get_info == nullptr) return false;
  const c10::DeviceGuard guard(device);  // the runtime asks the current device
  return mem_get_info(free_bytes, total_bytes) == 0;
}

// Total memory of a CUDA device, or 0 when it cannot be read.
int64_t CudaMemoryBytes(const torch::Device& device) {
  size_t free_bytes = 0;
  size_t total_bytes = 0;
  if (!CudaMemGetInfo(device, &free_bytes, &total_bytes)) return 0;
  return static_cast<int64_t>(total_bytes);
}

// This process's resident set and the host's physical memory.
absl::StatusOr<DeviceMemory> HostMemory() {
  const int64_t page = sysconf(_SC_PAGESIZE);
  const int64_t pages = sysconf(_SC_PHYS_PAGES);
  std::ifstream statm("/proc/self/statm");
  int64_t size_pages = 0;
  int64_t resident_pages = 0;
  if (page <= 0 || pages <= 0 || !(statm >> size_pages >> resident_pages)) {
    return absl::UnavailableError("cannot read /proc/self/statm");
  }
  return DeviceMemory{resident_pages * page, pages * page};
}

int64_t DefaultCacheBudget(const torch::Device& device) {
  if (!device.is_cuda()) return kCpuCacheBudget;
  const int64_t total = CudaMemoryBytes(device);
  return total > 0 ? static_cast<int64_t>(kCudaCacheFraction * total)
                   : kCudaFallbackCacheBudget;
}

int64_t ParameterBytes(Model& model) {
  int64_t bytes = 0;
  for (const torch::Tensor& p : model.Parameters()) bytes += p.nbytes();
  return bytes;
}

// LibTorch's TF32 switches are process-wide, so every CUDA measurement holds
// this: shared by those that must not use TF32, exclusively by one that may.
ABSL_CONST_INIT absl::Mutex tf32_mutex(absl::kConstInit);

// For the lifetime of a CUDA measurement: holds tf32_mutex and, for a kTf32
// one, allows TF32 in cuBLAS and cuDNN, switching it off again at the end.
class Tf32Scope {
 public:
  Tf32Scope(bool cuda, bool allow_tf32) : cuda_(cuda), tf32_(allow_tf32) {
    if (!cuda_) return;
    if (!tf32_) {
      tf32_mutex.ReaderLock();
      return;
    }
    tf32_mutex.WriterLock();
    SetTf32(true);
  }
  ~Tf32Scope() {
    if (!cuda_) return;
    if (!tf32_) {
      tf32_mutex.ReaderUnlock();
      return;
    }
    SetTf32(false);
    tf32_mutex.WriterUnlock();
  }
  Tf32Scope(const Tf32Scope&) = delete;
  Tf32Scope& operator=(const Tf32Scope&) = delete;

  static void SetTf32(bool allow) {
    at::globalContext().setAllowTF32CuBLAS(allow);
    at::globalContext().setAllowTF32CuDNN(allow);
  }

 private:
  const bool cuda_;
  const bool tf32_;
};

// Half of the host's physical memory, or 0 (no budget) when it cannot be
// read.
int64_t DefaultMeasurementHostBytes() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_bytes = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page_bytes <= 0) return 0;
  return static_cast<int64_t>(pages) * page_bytes / 2;
}

int64_t ParameterCount(Model& model) {
  int64_t count = 0;
  for (const torch::Tensor& p : model.Parameters()) count += p.numel();
  return count;
}

// PlanSplit for a request of the llc kind alone, whose chains are divided
// among the devices (a group per device, so at most chains - 1 helpers); by
// kIfLargeEnough only when one step of every chain, chains x batch x
// parameters, reaches kMinSplitWork, and not in train mode (the helpers'
// dropout masks would differ from one device's).
SplitPlan PlanChainSplit(const LlcOptions& options, bool train_mode,
                         Model& model, int64_t n, SplitRule rule,
                         int available) {
  SplitPlan plan;
  if (rule == SplitRule::kIfLargeEnough && train_mode) {
    plan.note =
        "not split: train mode (the other devices would draw other dropout "
        "masks)";
    return plan;
  }
  if (rule == SplitRule::kIfLargeEnough) {
    const int64_t batch = options.sampler == LlcSampler::kMala
                              ? n
                              : std::min<int64_t>(options.batch_size, n);
    const int64_t parameters = ParameterCount(model);
    const int64_t work = options.chains * batch * parameters;
    if (work < kMinSplitWork) {
      plan.note = absl::StrCat("not split: ", options.chains, " chains x ",
                               batch, " samples x ", parameters,
                               " parameters = ", work, " < 2^30");
      return plan;
    }
  }
  plan.helpers = std::min(available, std::max(options.chains - 1, 0));
  if (plan.helpers == 0) plan.note = "not split: one chain";
  return plan;
}

// Writes `from`'s parameter values into `to`, a copy of the same model on
// another device: the copies of a zoo model are initialised apart, and the
// chains of every device must start from the checkpoint's w*.
void CopyParameterValues(Model& from, Model& to) {
  const std::vector<torch::Tensor> source = from.Parameters();
  const std::vector<torch::Tensor> target = to.Parameters();
  TORCH_CHECK(source.size() == target.size(),
              "a helper's copy of the model has other parameters");
  const torch::NoGradGuard no_grad;
  for (size_t i = 0; i < source.size(); ++i) target[i].copy_(source[i]);
}

// Result::split of an llc run whose chains ran in `groups`.
std::string ChainSplitNote(const std::vector<LlcResult::ChainGroup>& groups) {
  std::vector<std::string> parts;
  int64_t first = 0;
  for (const LlcResult::ChainGroup& group : groups) {
    parts.push_back(absl::StrCat("chains ", first, "-",
                                 first + group.chains - 1, " on ",
                                 group.device));
    first += group.chains;
  }
  return absl::StrCat("llc chains divided among ", groups.size(),
                      " devices (each with the whole shard): ",
                      absl::StrJoin(parts, ", "));
}

// Parameter-sized vectors a measurement holds besides the parameters: the
// gradient, a probe or Lanczos vector and its product, and their
// temporaries. A lower bound, so that nothing that fits is refused.
constexpr int64_t kWorkingSetVectors = 4;

class TorchEngine final : public Engine {
 public:
  TorchEngine(torch::Device device, std::string name, int64_t cache_budget,
              int64_t measurement_host_bytes)
      : device_(device),
        name_(std::move(name)),
        cache_(cache_budget),
        measurement_host_bytes_(measurement_host_bytes) {}

  absl::StatusOr<MeasurementResult> Measure(const ModelSource& model_source,
                                            const ShardSpec& shard_spec,
                                            const MeasurementRequest& request,
                                            const Progress& progress) override {
    return MeasureOn({}, model_source, shard_spec, request, progress);
  }

  absl::StatusOr<SplitPlan> PlanSplit(const ModelSource& model_source,
                                      const ShardSpec& shard_spec,
                                      const MeasurementRequest& request,
                                      SplitRule rule, int available) override {
    CURVD_RETURN_IF_ERROR(ValidateRequest(request));
    if (FirstUnsplitMethod(request.methods) != nullptr || available <= 0) {
      return SplitPlan();
    }
    return CatchTorchExceptions([&]() -> absl::StatusOr<SplitPlan> {
      const torch::ScalarType dtype = DtypeOf(request.objective.precision);
      MemoryBudget budget(measurement_host_bytes_);
      CURVD_ASSIGN_OR_RETURN(DeviceCache::Handle<Model> model,
                             DeviceModel(model_source, dtype, budget));
      CURVD_ASSIGN_OR_RETURN(DeviceCache::Handle<Shard> shard,
                             DeviceShard(shard_spec, dtype, budget));
      const int64_t n = shard->size();
      if (const LlcMethod* llc = ChainSplitMethod(request.methods)) {
        return PlanChainSplit(llc->options, request.objective.train_mode,
                              *model, n, rule, available);
      }
      const int64_t micro = request.objective.micro_batch_size;
      SplitPlan plan;
      if (rule == SplitRule::kIfLargeEnough) {
        const int64_t parameters = ParameterCount(*model);
        if (n * parameters < kMinSplitWork) {
          plan.note = absl::StrCat("not split: ", n, " samples x ", parameters,
                                   " parameters = ", n * parameters, " < 2^30");
          return plan;
        }
        if (micro == 0 && request.objective.train_mode) {
          plan.note =
              "not split: train mode with micro_batch_size 0 (a split would "
              "change the micro-batches, and so the sampled loss)";
          return plan;
        }
      }
      const int64_t batches =
          micro == 0 ? std::min<int64_t>(n, available + 1)
                     : (n + std::min(micro, n) - 1) / std::min(micro, n);
      plan.helpers = static_cast<int>(
          std::min<int64_t>(available, std::max<int64_t>(batches - 1, 0)));
      if (plan.helpers == 0) {
        plan.note = "not split: one micro-batch";
      }
      return plan;
    });
  }

  absl::StatusOr<MeasurementResult> MeasureSplit(
      const std::vector<Engine*>& helpers, const ModelSource& model_source,
      const ShardSpec& shard_spec, const MeasurementRequest& request,
      const Progress& progress) override {
    std::vector<TorchEngine*> engines;
    for (Engine* helper : helpers) {
      auto* engine = dynamic_cast<TorchEngine*>(helper);
      if (engine == nullptr) {
        return absl::InvalidArgumentError(
            "a split's helpers must be engines made by Engine::Create");
      }
      engines.push_back(engine);
    }
    if (const Method* method = FirstUnsplitMethod(request.methods)) {
      return absl::InvalidArgumentError(absl::StrCat(
          MethodName(*method),
          " reads per-sample data and is not split across devices; measure "
          "it on one device (llc divides its chains when it is the only "
          "kind)"));
    }
    // A chain split uses no more devices than the chains.
    if (const LlcMethod* llc = ChainSplitMethod(request.methods)) {
      engines.resize(std::min<size_t>(
          engines.size(),
          static_cast<size_t>(std::max(llc->options.chains - 1, 0))));
    }
    return MeasureOn(engines, model_source, shard_spec, request, progress);
  }

  std::string device() const override { return name_; }

 private:
  // Measure on this engine's device, divided with `helpers` when there are
  // any (MeasureSplit).
  absl::StatusOr<MeasurementResult> MeasureOn(
      const std::vector<TorchEngine*>& helpers, const ModelSource& model_source,
      const ShardSpec& shard_spec, const MeasurementRequest& request,
      const Progress& progress) {
    CURVD_RETURN_IF_ERROR(ValidateRequest(request));
    return CatchTorchExceptions([&]() -> absl::StatusOr<MeasurementResult> {
      const Precision precision = request.objective.precision;
      const torch::ScalarType dtype = DtypeOf(precision);
      MemoryBudget budget(measurement_host_bytes_);
      CURVD_ASSIGN_OR_RETURN(DeviceCache::Handle<Model> model,
                             DeviceModel(model_source, dtype, budget));
      CURVD_ASSIGN_OR_RETURN(DeviceCache::Handle<Shard> shard,
                             DeviceShard(shard_spec, dtype, budget));
      CURVD_RETURN_IF_ERROR(
          ChargeWorkingSet(*model, dtype, request.methods.size(), budget));
      // Forward passes in train mode update BatchNorm running statistics: that
      // copy no longer holds the checkpoint's buffers and must not be reused.
      const auto set_mode = [&](DeviceCache::Handle<Model>& copy) {
        copy->SetTrainMode(request.objective.train_mode);
        if (request.objective.train_mode) copy.Invalidate();
      };
      set_mode(model);
      const int64_t n = shard->size();
      // An llc request divides its chains, each device with the whole shard;
      // any other divides the shard's micro-batches.
      const LlcMethod* llc =
          helpers.empty() ? nullptr : ChainSplitMethod(request.methods);
      std::vector<DeviceCache::Handle<Model>> copies;
      std::vector<DeviceCache::Handle<Shard>> chain_shards;
      bool cuda = device_.is_cuda();
      bool all_cuda = device_.is_cuda();
      for (TorchEngine* helper : helpers) {
        MemoryBudget helper_budget(helper->measurement_host_bytes_);
        CURVD_ASSIGN_OR_RETURN(
            DeviceCache::Handle<Model> copy,
            helper->DeviceModel(model_source, dtype, helper_budget));
        if (llc != nullptr) {
          CURVD_ASSIGN_OR_RETURN(
              DeviceCache::Handle<Shard> whole,
              helper->DeviceShard(shard_spec, dtype, helper_budget));
          chain_shards.push_back(std::move(whole));
        }
        CURVD_RETURN_IF_ERROR(helper->ChargeWorkingSet(
            *copy, dtype, request.methods.size(), helper_budget));
        set_mode(copy);
        copies.push_back(std::move(copy));
        cuda = cuda || helper->device_.is_cuda();
        all_cuda = all_cuda && helper->device_.is_cuda();
      }
      const bool tf32 = cuda && precision == Precision::kTf32;
      const Tf32Scope tf32_scope(cuda, tf32);
      const int64_t devices = static_cast<int64_t>(helpers.size()) + 1;
      const int64_t batch =
          request.objective.micro_batch_size == 0
              ? (llc != nullptr ? n : (n + devices - 1) / devices)
              : std::min(request.objective.micro_batch_size, n);
      std::vector<Model*> models = {&*model};
      for (DeviceCache::Handle<Model>& copy : copies) models.push_back(&*copy);
      std::vector<const Shard*> shards;
      for (const DeviceCache::Handle<Shard>& s : chain_shards) {
        shards.push_back(&*s);
      }
      // The graphs of the whole shard are kept where that costs no more
      // memory than one product needs anyway (one micro-batch), or where
      // running out of memory is an error the retry recovers from (CUDA, on
      // every part's device; on the host the kernel may kill the process
      // instead).
      const bool retain_graphs = batch == n || all_cuda;
      CURVD_ASSIGN_OR_RETURN(MeasurementResult result,
                             RetryOnOutOfMemory(
                                 batch, retain_graphs,
                                 [&](int64_t micro_batch, bool retain) {
                                   return MeasureWithBatch(
                                       models, *shard, shards, request,
                                       micro_batch, retain, progress);
                                 },
                                 name_));
      // What was used: TF32 exists only on CUDA.
      result.precision = precision == Precision::kTf32 && !tf32
                             ? Precision::kFloat32
                             : precision;
      return result;
    });
  }

  // The model of `source` on the device in `dtype`, from the cache when its
  // key matches. `budget` is charged with it either way: by the loader as it
  // sizes the model, or with the parameters of the cached copy.
  absl::StatusOr<DeviceCache::Handle<Model>> DeviceModel(
      const ModelSource& source, torch::ScalarType dtype,
      MemoryBudget& budget) {
    const int64_t before = budget.charged();
    CURVD_ASSIGN_OR_RETURN(
        DeviceCache::Handle<Model> model,
        cache_.GetOrLoad<Model>(
            DeviceKey(source.cache_key, dtype,
                      {source.archive_path, source.state_dict_path}),
            [&]() -> absl::StatusOr<DeviceCache::Loaded<Model>> {
              CURVD_ASSIGN_OR_RETURN(std::unique_ptr<Model> model,
                                     LoadModel(source, dtype, budget));
              model->To(device_, dtype);
              const int64_t bytes = ParameterBytes(*model);
              return DeviceCache::Loaded<Model>{std::move(model), bytes};
            }));
    if (budget.charged() == before) {
      CURVD_RETURN_IF_ERROR(
          budget.Charge("the model's parameters", ParameterBytes(*model)));
    }
    return model;
  }

  // The shard of `spec` on the device, floating tensors in `dtype`, from the
  // cache when its key matches; `budget` charged as DeviceModel's.
  absl::StatusOr<DeviceCache::Handle<Shard>> DeviceShard(
      const ShardSpec& spec, torch::ScalarType dtype, MemoryBudget& budget) {
    const int64_t before = budget.charged();
    CURVD_ASSIGN_OR_RETURN(
        DeviceCache::Handle<Shard> shard,
        cache_.GetOrLoad<Shard>(
            DeviceKey(spec.cache_key, dtype, {spec.path, spec.labels_path}),
            [&]() -> absl::StatusOr<DeviceCache::Loaded<Shard>> {
              CURVD_ASSIGN_OR_RETURN(Shard loaded, LoadShard(spec, budget));
              auto shard = std::make_unique<Shard>();
              shard->inputs = ToDevice(loaded.inputs, device_, dtype);
              shard->targets = ToDevice(loaded.targets, device_, dtype);
              const int64_t bytes =
                  shard->inputs.nbytes() + shard->targets.nbytes();
              return DeviceCache::Loaded<Shard>{std::move(shard), bytes};
            }));
    if (budget.charged() == before) {
      CURVD_RETURN_IF_ERROR(budget.Charge(
          "the shard", shard->inputs.nbytes() + shard->targets.nbytes()));
    }
    return shard;
  }

  // Charges `budget` with the working set of `methods` methods on `model`;
  // on CUDA, ResourceExhausted too when the whole budget charged exceeds the
  // device's memory, which no smaller micro-batch could help.
  absl::Status ChargeWorkingSet(Model& model, torch::ScalarType dtype,
                                size_t methods, MemoryBudget& budget) {
    const int64_t vector_bytes =
        ParameterCount(model) * static_cast<int64_t>(c10::elementSize(dtype));
    CURVD_RETURN_IF_ERROR(budget.Charge(
        absl::StrCat("the working set of ", methods, " method(s) (",
                     kWorkingSetVectors, " parameter-sized vectors each)"),
        kWorkingSetVectors * static_cast<int64_t>(methods) * vector_bytes));
    if (!device_.is_cuda()) return absl::OkStatus();
    const int64_t device_bytes = CudaMemoryBytes(device_);
    if (device_bytes > 0 && budget.charged() > device_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the model, shard and working set need at least ", budget.charged(),
          " bytes, ", budget.charged() - device_bytes, " bytes more than ",
          name_, " has (", device_bytes, " bytes)"));
    }
    return absl::OkStatus();
  }

  // One attempt at `micro_batch` samples per batch on `models` (this
  // device's first, then the helpers' copies), keeping the graphs of all
  // batches for the run if `retain_graphs`. With `chain_shards` (the whole
  // shard on each helper's device, one per helper) the llc chains are
  // divided among the models, each with an objective of its own; without,
  // the micro-batches of `shard` are. compute_seconds covers this attempt
  // (objective, loss, the iterative method), not loading.
  absl::StatusOr<MeasurementResult> MeasureWithBatch(
      const std::vector<Model*>& models, const Shard& shard,
      const std::vector<const Shard*>& chain_shards,
      const MeasurementRequest& request, int64_t micro_batch,
      bool retain_graphs, const Progress& progress) {
    return CatchTorchExceptions([&]() -> absl::StatusOr<MeasurementResult> {
      const absl::Time start = absl::Now();
      const bool by_chains = !chain_shards.empty();
      CURVD_ASSIGN_OR_RETURN(
          Objective objective,
          Objective::CreateSplit(
              by_chains ? std::vector<Model*>{models[0]} : models,
              shard.inputs, shard.targets, request.objective.loss,
              micro_batch, request.block));
      objective.set_forward_seed(request.objective.forward_seed);
      objective.set_retain_graphs(retain_graphs);
      std::vector<Objective> helper_objectives;
      for (size_t h = 0; h < chain_shards.size(); ++h) {
        CopyParameterValues(*models[0], *models[h + 1]);
        CURVD_ASSIGN_OR_RETURN(
            Objective helper,
            Objective::Create(models[h + 1], chain_shards[h]->inputs,
                              chain_shards[h]->targets, request.objective.loss,
                              micro_batch, request.block));
        helper.set_forward_seed(request.objective.forward_seed);
        helper_objectives.push_back(std::move(helper));
      }
      std::vector<Objective*> chain_helpers;
      for (Objective& helper : helper_objectives) {
        chain_helpers.push_back(&helper);
      }
      MeasurementResult result;
      CURVD_ASSIGN_OR_RETURN(result.loss, objective.Loss());
      CURVD_RETURN_IF_ERROR(RunMeasurementPlan(objective, request, progress,
                                               &result, chain_helpers));
      if (request.op == CurvatureOperator::kHessian && objective.hvps() > 0) {
        result.hvp_graph = objective.hvp_graph_note();
      }
      result.op = request.op;
      result.block_parameters = objective.block_parameter_names();
      result.hvps = objective.hvps();
      result.num_samples = objective.num_samples();
      result.num_parameters = objective.num_parameters();
      result.compute_seconds = absl::ToDoubleSeconds(absl::Now() - start);
      result.device = name_;
      result.train_mode = request.objective.train_mode;
      result.forward_seed = objective.forward_seed();
      result.micro_batch_size = objective.micro_batch_size();
      result.graphs_retained = retain_graphs;
      if (by_chains) {
        result.split = ChainSplitNote(
            FindMethod<LlcMethod>(result.methods)->result.groups);
      } else {
        result.split = objective.split_note();
      }
      return result;
    });
  }

  const torch::Device device_;
  const std::string name_;
  DeviceCache cache_;
  const int64_t measurement_host_bytes_;  // 0: no budget
};

// "cuda" or "cuda:N" to N; -1 if `device` is neither.
int CudaIndex(const std::string& device) {
  if (device == "cuda") return 0;
  int index = -1;
  if (!absl::StartsWith(device, "cuda:") ||
      !absl::SimpleAtoi(device.substr(5), &index) || index < 0) {
    return -1;
  }
  return index;
}

}  // namespace

int Engine::CudaDeviceCount() {
  return torch::cuda::is_available()
             ? static_cast<int>(torch::cuda::device_count())
             : 0;
}

absl::StatusOr<DeviceMemory> Engine::ReadDeviceMemory(
    const std::string& device) {
  if (device == "cpu") return HostMemory();
  const int index = CudaIndex(device);
  if (index < 0 || index >= CudaDeviceCount()) {
    return absl::InvalidArgumentError(
        absl::StrCat("no device ", device, " in this process"));
  }
  size_t free_bytes = 0;
  size_t total_bytes = 0;
  if (!CudaMemGetInfo(
          torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index)),
          &free_bytes, &total_bytes)) {
    return absl::UnavailableError(
        absl::StrCat("cudaMemGetInfo failed for ", device));
  }
  return DeviceMemory{static_cast<int64_t>(total_bytes - free_bytes),
                      static_cast<int64_t>(total_bytes)};
}

absl::StatusOr<int64_t> Engine::CountParameters(const ModelSource& source,
                                                const ParameterBlock& block) {
  return CatchTorchExceptions(
      [&]() -> absl::StatusOr<int64_t> {
        ModelSource architecture = source;
        architecture.state_dict_path.clear();
        CURVD_ASSIGN_OR_RETURN(std::unique_ptr<Model> model,
                               LoadModel(architecture, torch::kFloat64));
        const std::vector<torch::Tensor> parameters = model->Parameters();
        const std::vector<std::string> names = model->ParameterNames();
        int64_t count = 0;
        for (size_t i = 0; i < parameters.size(); ++i) {
          if (block.Selects(names[i])) count += parameters[i].numel();
        }
        return count;
      },
      "cannot count the model's parameters: ");
}

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(
    const std::string& device) {
  return CreateWithOptions(device, EngineOptions());
}

absl::StatusOr<std::unique_ptr<Engine>> Engine::CreateWithOptions(
    const std::string& device, const EngineOptions& options) {
  if (options.cache_budget_bytes < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cache_budget_bytes must be >= 0, got ", options.cache_budget_bytes));
  }
  if (options.measurement_host_bytes < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("measurement_host_bytes must be >= 0, got ",
                     options.measurement_host_bytes));
  }
  // Measurements in float32 must be float32: TF32 would cut matmul inputs to 10
  // mantissa bits and make GPU results disagree with the CPU reference. Only a
  // kTf32 measurement switches it on, for its own duration.
  {
    const absl::ReaderMutexLock lock(&tf32_mutex);
    Tf32Scope::SetTf32(false);
  }
  torch::Device torch_device(torch::kCPU);
  std::string name = "cpu";
  if (device != "cpu") {
    const int index = CudaIndex(device);
    if (index < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown device \"", device, "\": want cpu or cuda:N"));
    }
    const int count = CudaDeviceCount();
    if (index >= count) {
      return absl::InvalidArgumentError(absl::StrCat(
          "device ", device, " is not available: this process sees ", count,
          " CUDA device(s)"));
    }
    torch_device =
        torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
    name = absl::StrCat("cuda:", index);
  }
  const int64_t budget = options.cache_budget_bytes > 0
                             ? options.cache_budget_bytes
                             : DefaultCacheBudget(torch_device);
  return std::unique_ptr<Engine>(new TorchEngine(
      torch_device, std::move(name), budget,
      options.measurement_host_bytes > 0 ? options.measurement_host_bytes
                                         : DefaultMeasurementHostBytes()));
}

}  // namespace curvd::core
