// Small models with closed-form Hessians and the device parameterisation shared
// by the numerical tests of core (objective, Lanczos, Hutchinson).
#ifndef CURVD_TESTS_CORE_TOY_MODELS_H_
#define CURVD_TESTS_CORE_TOY_MODELS_H_

#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/data/model.h"
#include "core/objective/linear_operator.h"

namespace curvd::core::testing {

// Tensors initialised from the model's own seed, independent of torch's global
// RNG.
inline torch::Tensor SeededRandn(std::vector<int64_t> shape, uint64_t seed) {
  at::Generator generator = SeededGenerator(seed);
  return torch::randn(shape, generator,
                      torch::TensorOptions().dtype(torch::kFloat64));
}

// A model whose parameters are a list of tensors; To() converts them in place
// of the originals so that Parameters() always returns the current ones.
class ToyModel : public Model {
 public:
  std::vector<torch::Tensor> Parameters() override { return parameters_; }
  std::vector<std::string> ParameterNames() override {
    std::vector<std::string> names;
    for (size_t i = 0; i < parameters_.size(); ++i)
      names.push_back(absl::StrCat("p", i));
    return names;
  }
  void SetTrainMode(bool) override {}
  void To(const torch::Device& device, torch::ScalarType dtype) override {
    for (torch::Tensor& p : parameters_) p = p.detach().to(device, dtype);
  }

 protected:
  std::vector<torch::Tensor> parameters_;
};

// y = x W^T with W [outputs, inputs]: the flat parameter vector is W row-major.
class LinearModel : public ToyModel {
 public:
  LinearModel(int64_t inputs, int64_t outputs, uint64_t seed) {
    parameters_ = {SeededRandn({outputs, inputs}, seed) * 0.5};
  }
  torch::Tensor Forward(const torch::Tensor& x) override {
    return x.mm(parameters_[0].t());
  }
};

// A tanh MLP with biases; widths input first, output last.
class TanhMlp : public ToyModel {
 public:
  TanhMlp(const std::vector<int64_t>& widths, uint64_t seed) {
    for (size_t i = 0; i + 1 < widths.size(); ++i) {
      parameters_.push_back(
          SeededRandn({widths[i + 1], widths[i]}, seed + 2 * i) /
          std::sqrt(static_cast<double>(widths[i])));
      parameters_.push_back(SeededRandn({widths[i + 1]}, seed + 2 * i + 1) *
                            0.1);
    }
  }
  torch::Tensor Forward(const torch::Tensor& x) override {
    torch::Tensor h = x;
    for (size_t i = 0; i < parameters_.size(); i += 2) {
      h = torch::addmm(parameters_[i + 1], h, parameters_[i].t());
      if (i + 2 < parameters_.size()) h = torch::tanh(h);
    }
    return h;
  }
};

// The same network with the names of a torch.nn.Sequential of Linear layers
// ("layers.0.weight", "layers.0.bias", "layers.1.weight", ...), for selecting
// parameter blocks by name and prefix.
class LayeredTanhMlp : public TanhMlp {
 public:
  using TanhMlp::TanhMlp;
  std::vector<std::string> ParameterNames() override {
    std::vector<std::string> names;
    for (size_t i = 0; i < parameters_.size(); ++i) {
      names.push_back(
          absl::StrCat("layers.", i / 2, i % 2 == 0 ? ".weight" : ".bias"));
    }
    return names;
  }
};

// The tanh MLP with dropout (p = 0.5) after each hidden layer in train mode,
// through torch's dropout as a TorchScript nn.Dropout runs it.
class DropoutTanhMlp : public TanhMlp {
 public:
  using TanhMlp::TanhMlp;
  void SetTrainMode(bool train) override { train_ = train; }
  torch::Tensor Forward(const torch::Tensor& x) override {
    torch::Tensor h = x;
    for (size_t i = 0; i < parameters_.size(); i += 2) {
      h = torch::addmm(parameters_[i + 1], h, parameters_[i].t());
      if (i + 2 < parameters_.size()) {
        h = torch::dropout(torch::tanh(h), 0.5, train_);
      }
    }
    return h;
  }

 private:
  bool train_ = false;
};

// A linear model with a second parameter that the forward pass ignores.
class LinearWithUnusedParameter : public LinearModel {
 public:
  LinearWithUnusedParameter(int64_t inputs, int64_t outputs, uint64_t seed)
      : LinearModel(inputs, outputs, seed) {
    parameters_.push_back(SeededRandn({2}, seed + 1));
  }
};

// Integer class labels in [0, classes).
inline torch::Tensor SeededLabels(int64_t n, int64_t classes, uint64_t seed) {
  at::Generator generator = SeededGenerator(seed);
  return torch::randint(0, classes, {n}, generator, torch::kInt64);
}

// max |actual - expected| relative to max |expected|, both moved to the CPU.
inline double RelativeError(const torch::Tensor& actual,
                            const torch::Tensor& expected) {
  const torch::Tensor a = actual.to(torch::kCPU, torch::kFloat64);
  const torch::Tensor e = expected.to(torch::kCPU, torch::kFloat64);
  return (a - e).abs().max().item<double>() / e.abs().max().item<double>();
}

// The matrix of `op` as it is, column by column from products with unit
// vectors, as float64 on the CPU: for checking symmetry.
inline torch::Tensor MatrixColumns(const LinearOperator& op, int64_t size,
                                   const torch::TensorOptions& options) {
  torch::Tensor columns = torch::empty({size, size}, torch::kFloat64);
  for (int64_t i = 0; i < size; ++i) {
    torch::Tensor e = torch::zeros({size}, options);
    e[i] = 1;
    columns.select(1, i).copy_(op(e).value().to(torch::kCPU, torch::kFloat64));
  }
  return columns;
}

// The explicit matrix of `op`, symmetrised, as float64 on the CPU.
inline torch::Tensor ExplicitMatrix(const LinearOperator& op, int64_t size,
                                    const torch::TensorOptions& options) {
  const torch::Tensor columns = MatrixColumns(op, size, options);
  return (columns + columns.t()) / 2;
}

// Test fixtures parameterised by device: "cpu", and "cuda" which skips itself
// on a machine without CUDA (ctest labels the "/cuda" instances gpu).
class DeviceTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "cuda" && !torch::cuda::is_available()) {
      GTEST_SKIP() << "no CUDA device";
    }
  }
  torch::Device device() const {
    return GetParam() == "cuda" ? torch::Device(torch::kCUDA, 0)
                                : torch::Device(torch::kCPU);
  }
  torch::TensorOptions options(
      torch::ScalarType dtype = torch::kFloat64) const {
    return torch::TensorOptions().dtype(dtype).device(device());
  }
  bool on_cuda() const { return GetParam() == "cuda"; }
};

inline std::string DeviceName(
    const ::testing::TestParamInfo<std::string>& info) {
  return info.param;
}

}  // namespace curvd::core::testing

// Instantiates a DeviceTest-derived suite for the CPU and for CUDA.
#define CURVD_INSTANTIATE_DEVICE_TEST(suite)                                 \
  INSTANTIATE_TEST_SUITE_P(Devices, suite, ::testing::Values("cpu", "cuda"), \
                           ::curvd::core::testing::DeviceName)

#endif  // CURVD_TESTS_CORE_TOY_MODELS_H_
