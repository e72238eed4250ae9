// Engine on LibTorch: loads the model and the shard onto the device (keeping
// the last of each there), builds the objective and runs Lanczos or Hutchinson
// on its Hessian-vector products. Every torch exception stops here.
#include "core/engine.h"

#include <ATen/Context.h>
#include <sys/stat.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <algorithm>
#include <exception>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/hutchinson.h"
#include "core/lanczos.h"
#include "core/model.h"
#include "core/objective.h"
#include "core/oom_retry.h"
#include "core/shard.h"
#include "core/status_macros.h"
#include "core/torch_status.h"

namespace curvd::core {
namespace {

torch::ScalarType DtypeOf(Precision precision) {
  return precision == Precision::kFloat64 ? torch::kFloat64 : torch::kFloat32;
}

// Floating tensors take the measurement's dtype; class indices stay int64.
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

class TorchEngine final : public Engine {
 public:
  TorchEngine(torch::Device device, std::string name)
      : device_(device), name_(std::move(name)) {}

  absl::StatusOr<MeasurementResult> Measure(const ModelSource& model_source,
                                            const ShardSpec& shard_spec,
                                            const MeasurementRequest& request,
                                            const Progress& progress) override {
    CURVD_RETURN_IF_ERROR(ValidateRequest(request));
    try {
      const torch::ScalarType dtype = DtypeOf(request.objective.precision);
      CURVD_ASSIGN_OR_RETURN(Model * model, DeviceModel(model_source, dtype));
      CURVD_ASSIGN_OR_RETURN(const Shard* shard,
                             DeviceShard(shard_spec, dtype));
      model->SetTrainMode(request.objective.train_mode);
      // Forward passes in train mode update BatchNorm running statistics: that
      // copy no longer holds the checkpoint's buffers and must not be reused.
      if (request.objective.train_mode) model_key_.clear();
      const int64_t n = shard->size();
      const int64_t batch =
          request.objective.micro_batch_size == 0
              ? n
              : std::min(request.objective.micro_batch_size, n);
      return RetryWithSmallerMicroBatches(
          batch,
          [&](int64_t micro_batch) {
            return MeasureWithBatch(*model, *shard, request, micro_batch,
                                    progress);
          },
          name_);
    } catch (...) {
      return StatusFromException(std::current_exception());
    }
  }

  std::string device() const override { return name_; }

 private:
  // The model of `source` on the device in `dtype`, reusing the last one loaded
  // when its cache key matches.
  absl::StatusOr<Model*> DeviceModel(const ModelSource& source,
                                     torch::ScalarType dtype) {
    const std::string key = DeviceKey(
        source.cache_key, dtype, {source.archive_path, source.state_dict_path});
    if (model_ != nullptr && !key.empty() && key == model_key_)
      return model_.get();
    model_.reset();
    model_key_.clear();
    CURVD_ASSIGN_OR_RETURN(model_, LoadModel(source));
    model_->To(device_, dtype);
    model_key_ = key;
    return model_.get();
  }

  // The shard of `spec` on the device, floating tensors in `dtype`, reusing the
  // last one loaded when its cache key matches.
  absl::StatusOr<const Shard*> DeviceShard(const ShardSpec& spec,
                                           torch::ScalarType dtype) {
    const std::string key =
        DeviceKey(spec.cache_key, dtype, {spec.path, spec.labels_path});
    if (shard_.inputs.defined() && !key.empty() && key == shard_key_)
      return &shard_;
    shard_ = Shard();
    shard_key_.clear();
    CURVD_ASSIGN_OR_RETURN(Shard loaded, LoadShard(spec));
    shard_.inputs = ToDevice(loaded.inputs, device_, dtype);
    shard_.targets = ToDevice(loaded.targets, device_, dtype);
    shard_key_ = key;
    return &shard_;
  }

  // One attempt at `micro_batch` samples per batch. compute_seconds covers this
  // attempt (objective, loss, the iterative method), not loading.
  absl::StatusOr<MeasurementResult> MeasureWithBatch(
      Model& model, const Shard& shard, const MeasurementRequest& request,
      int64_t micro_batch, const Progress& progress) {
    try {
      const absl::Time start = absl::Now();
      CURVD_ASSIGN_OR_RETURN(
          Objective objective,
          Objective::Create(&model, shard.inputs, shard.targets,
                            request.objective.loss, micro_batch));
      MeasurementResult result;
      CURVD_ASSIGN_OR_RETURN(result.loss, objective.Loss());
      const LinearOperator hessian = [&objective](const torch::Tensor& v) {
        return objective.Hvp(v);
      };
      result.kind = request.kind;
      switch (request.kind) {
        case MeasurementKind::kSharpness: {
          CURVD_ASSIGN_OR_RETURN(
              result.sharpness,
              Lanczos(hessian, objective.num_parameters(),
                      objective.vector_options(), request.lanczos, progress));
          break;
        }
        case MeasurementKind::kHessianTrace: {
          CURVD_ASSIGN_OR_RETURN(
              result.trace,
              Hutchinson(hessian, objective.num_parameters(),
                         objective.vector_options(), request.trace, progress));
          break;
        }
      }
      result.hvps = objective.hvps();
      result.num_samples = objective.num_samples();
      result.num_parameters = objective.num_parameters();
      result.compute_seconds = absl::ToDoubleSeconds(absl::Now() - start);
      result.device = name_;
      result.precision = request.objective.precision;
      result.train_mode = request.objective.train_mode;
      result.micro_batch_size = objective.micro_batch_size();
      return result;
    } catch (...) {
      return StatusFromException(std::current_exception());
    }
  }

  const torch::Device device_;
  const std::string name_;
  std::unique_ptr<Model> model_;
  std::string model_key_;  // empty: model_ is not reused
  Shard shard_;
  std::string shard_key_;  // empty: shard_ is not reused
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

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(
    const std::string& device) {
  // Measurements in float32 must be float32: TF32 would cut matmul inputs to 10
  // mantissa bits and make GPU results disagree with the CPU reference.
  at::globalContext().setAllowTF32CuBLAS(false);
  at::globalContext().setAllowTF32CuDNN(false);
  if (device == "cpu") {
    return std::unique_ptr<Engine>(
        new TorchEngine(torch::Device(torch::kCPU), "cpu"));
  }
  const int index = CudaIndex(device);
  if (index < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown device \"", device, "\": want cpu or cuda:N"));
  }
  const int count = CudaDeviceCount();
  if (index >= count) {
    return absl::InvalidArgumentError(
        absl::StrCat("device ", device, " is not available: this process sees ",
                     count, " CUDA device(s)"));
  }
  return std::unique_ptr<Engine>(new TorchEngine(
      torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index)),
      absl::StrCat("cuda:", index)));
}

}  // namespace curvd::core
