#include "core/data/model.h"

#include <stdlib.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/api/safetensors.h"
#include "core/data/zoo_mlp.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/core/peak_memory.h"

namespace curvd::core {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string MakeTempDir() {
  std::string pattern = ::testing::TempDir() + "/model_test_XXXXXX";
  EXPECT_NE(mkdtemp(pattern.data()), nullptr);
  return pattern;
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
  ASSERT_TRUE(out.good()) << path;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A safetensors tensor holding `t` converted to `dtype` ("F32", "F64", ...).
SafetensorsTensor ToSafetensors(const std::string& name, const torch::Tensor& t,
                                const std::string& dtype) {
  const torch::ScalarType type = dtype == "F64"    ? torch::kFloat64
                                 : dtype == "F16"  ? torch::kFloat16
                                 : dtype == "BF16" ? torch::kBFloat16
                                                   : torch::kFloat32;
  torch::Tensor c = t.detach().to(type).contiguous();
  SafetensorsTensor out{name, dtype, c.sizes().vec(), ""};
  out.data.assign(static_cast<const char*>(c.data_ptr()),
                  c.numel() * c.element_size());
  return out;
}

void WriteStateDict(const std::string& path,
                    const std::vector<SafetensorsTensor>& tensors) {
  auto bytes = SerializeSafetensors(tensors);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  WriteFile(path, *bytes);
}

ZooSpec SmallMlp() {
  ZooSpec spec;
  spec.layer_widths = {6, 5, 3};
  spec.activation = "tanh";
  return spec;
}

// The state dict of SmallMlp with every entry filled with its own known values.
std::vector<SafetensorsTensor> SmallMlpStateDict(const std::string& dtype) {
  return {ToSafetensors("fc0.weight", torch::arange(30.).reshape({5, 6}) / 30,
                        dtype),
          ToSafetensors("fc0.bias", torch::full({5}, 0.25), dtype),
          ToSafetensors("fc1.weight", -torch::arange(15.).reshape({3, 5}) / 15,
                        dtype),
          ToSafetensors("fc1.bias", torch::full({3}, -0.5), dtype)};
}

class ModelTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = MakeTempDir(); }

  ModelSource ZooWithStateDict(const std::vector<SafetensorsTensor>& tensors) {
    const std::string path = dir_ + "/weights.safetensors";
    WriteStateDict(path, tensors);
    ModelSource source;
    source.kind = ModelSource::Kind::kZoo;
    source.zoo = SmallMlp();
    source.state_dict_path = path;
    return source;
  }

  // A TorchScript archive built in C++: a submodule "inner" with parameter
  // "weight" [4, 3], a buffer "scale" and forward tanh(x @ inner.weight) *
  // scale.
  std::string SaveCppArchive(const torch::Tensor& weight) {
    torch::jit::Module inner("Inner");
    inner.register_parameter("weight", weight.clone(), /*is_buffer=*/false);
    torch::jit::Module outer("Outer");
    outer.register_module("inner", inner);
    outer.register_buffer("scale", torch::full({3}, 2.0));
    outer.define(R"JIT(
def forward(self, x):
    return torch.tanh(x.mm(self.inner.weight)) * self.scale
)JIT");
    const std::string path = dir_ + "/cpp_model.pt";
    outer.save(path);
    return path;
  }

  ModelSource Archive(const std::string& path) {
    ModelSource source;
    source.kind = ModelSource::Kind::kTorchScript;
    source.archive_path = path;
    return source;
  }

  std::string dir_;
};

TEST_F(ModelTest, ZooMlpHasNamedParametersInOrder) {
  ModelSource source;
  source.zoo = SmallMlp();
  auto model = LoadModel(source);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_THAT((*model)->ParameterNames(),
              ElementsAre("fc0.weight", "fc0.bias", "fc1.weight", "fc1.bias"));
  std::vector<std::vector<int64_t>> shapes;
  for (const torch::Tensor& p : (*model)->Parameters()) {
    shapes.push_back(p.sizes().vec());
    EXPECT_TRUE(p.requires_grad());
  }
  EXPECT_THAT(shapes,
              ElementsAre(std::vector<int64_t>{5, 6}, std::vector<int64_t>{5},
                          std::vector<int64_t>{3, 5}, std::vector<int64_t>{3}));
  // Inputs are flattened after the sample dimension: [2, 2, 3] -> [2, 6].
  EXPECT_EQ((*model)->Forward(torch::ones({2, 2, 3})).sizes().vec(),
            (std::vector<int64_t>{2, 3}));
}

// The torch-free listing the server sizes blocks with is the built model's.
TEST_F(ModelTest, ZooParameterSizesListTheBuiltModel) {
  ModelSource source;
  source.zoo = SmallMlp();
  auto model = LoadModel(source);
  ASSERT_TRUE(model.ok()) << model.status();
  std::vector<std::pair<std::string, int64_t>> built;
  const std::vector<std::string> names = (*model)->ParameterNames();
  const std::vector<torch::Tensor> parameters = (*model)->Parameters();
  for (size_t i = 0; i < names.size(); ++i) {
    built.emplace_back(names[i], parameters[i].numel());
  }
  EXPECT_EQ(ZooParameterSizes(source.zoo), built);
}

TEST_F(ModelTest, ZooSpecValidation) {
  ZooSpec spec = SmallMlp();
  EXPECT_TRUE(ValidateZooSpec(spec).ok());
  spec.activation = "sigmoid";
  EXPECT_THAT(std::string(ValidateZooSpec(spec).message()),
              HasSubstr("'sigmoid'"));
  spec = SmallMlp();
  spec.layer_widths = {4};
  EXPECT_EQ(ValidateZooSpec(spec).code(), absl::StatusCode::kInvalidArgument);
  spec.layer_widths = {4, 0};
  EXPECT_THAT(std::string(ValidateZooSpec(spec).message()),
              HasSubstr("layer_widths[1]"));
  spec.layer_widths = {1 << 20, 1 << 20, 1 << 20};
  EXPECT_THAT(std::string(ValidateZooSpec(spec).message()),
              HasSubstr("parameters"));
  spec = SmallMlp();
  spec.architecture = "resnet";
  auto model =
      LoadModel(ModelSource{ModelSource::Kind::kZoo, "", spec, "", "", {}, ""});
  ASSERT_FALSE(model.ok());
  EXPECT_THAT(std::string(model.status().message()), HasSubstr("'resnet'"));
}

TEST_F(ModelTest, ZooLoadsStateDictAndComputesTheMlp) {
  auto model = LoadModel(ZooWithStateDict(SmallMlpStateDict("F32")));
  ASSERT_TRUE(model.ok()) << model.status();
  const torch::Tensor x = torch::linspace(-1, 1, 12).reshape({2, 6});
  const torch::Tensor w0 = torch::arange(30.).reshape({5, 6}) / 30;
  const torch::Tensor w1 = -torch::arange(15.).reshape({3, 5}) / 15;
  const torch::Tensor expected =
      torch::tanh(x.mm(w0.t()) + 0.25).mm(w1.t()) - 0.5;
  EXPECT_TRUE(torch::allclose((*model)->Forward(x), expected, 1e-5, 1e-6));
}

TEST_F(ModelTest, ZooAcceptsF64F16AndBf16Weights) {
  for (const std::string dtype : {"F64", "F16", "BF16"}) {
    auto model = LoadModel(ZooWithStateDict(SmallMlpStateDict(dtype)));
    ASSERT_TRUE(model.ok()) << dtype << ": " << model.status();
    const torch::Tensor bias = (*model)->Parameters()[1];
    EXPECT_EQ(bias.scalar_type(), torch::kFloat32);
    EXPECT_FLOAT_EQ(bias[0].item<float>(), 0.25f) << dtype;
  }
}

TEST_F(ModelTest, StateDictWithMissingNameIsRejectedNamingIt) {
  auto tensors = SmallMlpStateDict("F32");
  tensors.pop_back();  // fc1.bias
  auto model = LoadModel(ZooWithStateDict(tensors));
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(model.status().message()),
              HasSubstr("missing parameter 'fc1.bias'"));
}

TEST_F(ModelTest, StateDictWithExtraNameIsRejectedNamingIt) {
  auto tensors = SmallMlpStateDict("F32");
  tensors.push_back(ToSafetensors("fc2.weight", torch::ones({2, 3}), "F32"));
  auto model = LoadModel(ZooWithStateDict(tensors));
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(model.status().message()),
              HasSubstr("unexpected tensor 'fc2.weight'"));
}

TEST_F(ModelTest, StateDictWithWrongShapeIsRejectedNamingIt) {
  auto tensors = SmallMlpStateDict("F32");
  tensors[0] = ToSafetensors("fc0.weight", torch::ones({6, 5}), "F32");
  auto model = LoadModel(ZooWithStateDict(tensors));
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(
      std::string(model.status().message()),
      HasSubstr("'fc0.weight' has shape [6, 5] but the model expects [5, 6]"));
}

TEST_F(ModelTest, StateDictWithIntegerWeightsIsRejected) {
  auto tensors = SmallMlpStateDict("F32");
  tensors[1] = {"fc0.bias", "I32", {5}, std::string(20, '\0')};
  auto model = LoadModel(ZooWithStateDict(tensors));
  ASSERT_FALSE(model.ok());
  EXPECT_THAT(std::string(model.status().message()),
              HasSubstr("'fc0.bias' has dtype I32"));
}

TEST_F(ModelTest, NanAndInfWeightsAreRejectedNamingTheTensor) {
  const double kBad[] = {std::numeric_limits<double>::quiet_NaN(),
                         std::numeric_limits<double>::infinity()};
  for (double bad : kBad) {
    auto tensors = SmallMlpStateDict("F32");
    torch::Tensor w = torch::zeros({3, 5});
    w[1][2] = bad;
    tensors[2] = ToSafetensors("fc1.weight", w, "F32");
    auto model = LoadModel(ZooWithStateDict(tensors));
    ASSERT_FALSE(model.ok()) << bad;
    EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(model.status().message()),
                HasSubstr("'fc1.weight' contains NaN or Inf"));
  }
}

TEST_F(ModelTest, F64WeightTooLargeForFloat32IsRejectedAsInf) {
  auto tensors = SmallMlpStateDict("F32");
  tensors[1] = ToSafetensors("fc0.bias",
                             torch::full({5}, 1e300, torch::kFloat64), "F64");
  auto model = LoadModel(ZooWithStateDict(tensors));
  ASSERT_FALSE(model.ok());
  EXPECT_THAT(std::string(model.status().message()),
              HasSubstr("'fc0.bias' contains NaN or Inf"));
}

// float64 weights are never rounded silently: refused for a float32
// measurement when float32 cannot hold them, loaded exactly for a float64 one.
TEST_F(ModelTest,
       F64WeightsFloat32CannotHoldAreRefusedAndLoadExactlyInFloat64) {
  auto tensors = SmallMlpStateDict("F32");
  tensors[1] =
      ToSafetensors("fc0.bias", torch::full({5}, 0.1, torch::kFloat64), "F64");
  const ModelSource source = ZooWithStateDict(tensors);
  auto rounded = LoadModel(source);
  ASSERT_FALSE(rounded.ok());
  EXPECT_EQ(rounded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(rounded.status().message()),
              HasSubstr("state dict tensor 'fc0.bias' (F64) has values that "
                        "float32, the dtype this measurement runs in, cannot "
                        "hold"));
  EXPECT_THAT(std::string(rounded.status().message()),
              HasSubstr("spec.precision PRECISION_FLOAT64"));
  auto exact = LoadModel(source, torch::kFloat64);
  ASSERT_TRUE(exact.ok()) << exact.status();
  const torch::Tensor bias = (*exact)->Parameters()[1];
  EXPECT_EQ(bias.scalar_type(), torch::kFloat64);
  EXPECT_EQ(bias[0].item<double>(), 0.1);
  EXPECT_EQ((*exact)->Parameters()[0].scalar_type(), torch::kFloat64);
}

TEST_F(ModelTest, Float64ArchiveWeightsAreNotRoundedSilently) {
  const std::string path =
      SaveCppArchive(torch::full({4, 3}, 0.1, torch::kFloat64));
  auto rounded = LoadModel(Archive(path));
  ASSERT_FALSE(rounded.ok());
  EXPECT_EQ(rounded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(rounded.status().message()),
              HasSubstr("archive tensor 'inner.weight' (float64) has values "
                        "that float32"));
  auto exact = LoadModel(Archive(path), torch::kFloat64);
  ASSERT_TRUE(exact.ok()) << exact.status();
  EXPECT_EQ((*exact)->Parameters()[0][0][0].item<double>(), 0.1);
}

TEST_F(ModelTest, StateDictWhoseHeaderLiesIsRejected) {
  const std::string path = dir_ + "/lying.safetensors";
  const std::string header =
      R"({"fc0.bias":{"dtype":"F32","shape":[5],"data_offsets":[0,400]}})";
  std::string bytes(8, '\0');
  bytes[0] = static_cast<char>(header.size());
  WriteFile(path, bytes + header + std::string(20, '\0'));
  ModelSource source;
  source.zoo = SmallMlp();
  source.state_dict_path = path;
  auto model = LoadModel(source);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(model.status().message()),
              HasSubstr("outside the 20 data bytes"));
}

// Issue 15: a zoo MLP declared 1,048,576 wide took 1 GB before its
// one-tensor checkpoint was refused. The state dict is checked against the
// declared shapes before the model is built.
TEST_F(ModelTest, WideZooMlpWithAOneTensorCheckpointIsRefusedBeforeBuilding) {
  const std::string path = dir_ + "/one_tensor.safetensors";
  WriteStateDict(path, {ToSafetensors("fc0.bias", torch::zeros({256}), "F32")});
  ModelSource source;
  source.zoo.layer_widths = {1 << 20, 256, 1};  // 268 M parameters, 1 GiB
  source.state_dict_path = path;
  absl::StatusOr<std::unique_ptr<Model>> model;
  const int64_t growth =
      testing::PeakRssGrowth([&] { model = LoadModel(source); });
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(model.status().message()),
              HasSubstr("is missing parameter 'fc0.weight' of shape [256, "
                        "1048576]"));
  if (growth >= 0) {
    EXPECT_LT(growth, int64_t{64} << 20);
  }

  WriteStateDict(path, {ToSafetensors("fc0.weight", torch::zeros({256, 2}),
                                      "F32")});
  model = LoadModel(source);
  EXPECT_THAT(std::string(model.status().message()),
              HasSubstr("'fc0.weight' has shape [256, 2] but the model "
                        "expects [256, 1048576]"));
}

TEST_F(ModelTest, ZooModelOverTheBudgetIsRefusedBeforeBuilding) {
  ModelSource source;
  source.zoo.layer_widths = {1 << 20, 256, 1};
  MemoryBudget budget(int64_t{100} << 20);
  absl::StatusOr<std::unique_ptr<Model>> model;
  const int64_t growth = testing::PeakRssGrowth(
      [&] { model = LoadModel(source, torch::kFloat32, budget); });
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(model.status().message()),
              HasSubstr("the zoo model's 268435969 parameters needs "
                        "1073743876 bytes of host memory, 968886276 bytes "
                        "more than is left"));
  if (growth >= 0) {
    EXPECT_LT(growth, int64_t{64} << 20);
  }
  MemoryBudget enough(int64_t{1} << 20);
  ASSERT_TRUE(LoadModel(ZooWithStateDict(SmallMlpStateDict("F32")),
                        torch::kFloat64, enough)
                  .ok());
  // The parameters in float64, then the state dict's float32 tensors.
  EXPECT_EQ(enough.charged(), (53 * 8) + (53 * 4));
}

// A header is bounded by what the model it is for can need: 1 MiB and 16 KiB
// per tensor.
TEST_F(ModelTest, StateDictHeaderOutOfProportionToTheModelIsRefused) {
  const std::string path = dir_ + "/padded.safetensors";
  std::string header =
      R"({"__metadata__":{"pad":")" + std::string(2 << 20, 'x') + R"("}})";
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i)
    bytes[i] = static_cast<char>(uint64_t{header.size()} >> (8 * i));
  WriteFile(path, bytes + header);
  ModelSource source;
  source.zoo = SmallMlp();
  source.state_dict_path = path;
  auto model = LoadModel(source);
  ASSERT_FALSE(model.ok());
  EXPECT_THAT(std::string(model.status().message()),
              HasSubstr("exceeds the limit of 1114112 bytes"));
}

TEST_F(ModelTest, MissingStateDictIsNotFound) {
  ModelSource source;
  source.zoo = SmallMlp();
  source.state_dict_path = dir_ + "/absent.safetensors";
  EXPECT_EQ(LoadModel(source).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ModelTest, CppArchiveForwardMatchesItsDefinition) {
  const torch::Tensor weight = torch::linspace(-1, 1, 12).reshape({4, 3});
  auto model = LoadModel(Archive(SaveCppArchive(weight)));
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_THAT((*model)->ParameterNames(), ElementsAre("inner.weight"));
  const torch::Tensor x = torch::linspace(0, 1, 8).reshape({2, 4});
  EXPECT_TRUE(
      torch::allclose((*model)->Forward(x), torch::tanh(x.mm(weight)) * 2.0));
  EXPECT_TRUE((*model)->Parameters()[0].requires_grad());
}

// A copy computes the same function with parameters of its own: leaves that
// require grad, in other memory, and writing them leaves the model as it was.
TEST_F(ModelTest, ArchiveCloneHasParametersOfItsOwn) {
  auto model = LoadModel(Archive(SaveCppArchive(torch::randn({4, 3}))));
  ASSERT_TRUE(model.ok()) << model.status();
  const std::unique_ptr<Model> copy = (*model)->Clone();
  ASSERT_NE(copy, nullptr);
  EXPECT_EQ(copy->ParameterNames(), (*model)->ParameterNames());
  const torch::Tensor original = (*model)->Parameters()[0];
  const torch::Tensor copied = copy->Parameters()[0];
  EXPECT_TRUE(torch::equal(copied, original));
  EXPECT_NE(copied.data_ptr(), original.data_ptr());
  EXPECT_TRUE(copied.is_leaf());
  EXPECT_TRUE(copied.requires_grad());
  const torch::Tensor x = torch::randn({2, 4});
  const torch::Tensor before = (*model)->Forward(x).detach();
  EXPECT_TRUE(torch::equal(copy->Forward(x).detach(), before));
  {
    torch::NoGradGuard no_grad;
    copied.mul_(2);
  }
  EXPECT_TRUE(torch::equal((*model)->Forward(x).detach(), before));
  EXPECT_FALSE(torch::equal(copy->Forward(x).detach(), before));
}

TEST_F(ModelTest, ZooModelsAreNotCopied) {
  ModelSource source;
  source.zoo = SmallMlp();
  auto model = LoadModel(source);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->Clone(), nullptr);  // their chains run batched
}

TEST_F(ModelTest, ToConvertsParametersAndBuffersInPlace) {
  auto model = LoadModel(Archive(SaveCppArchive(torch::ones({4, 3}))));
  ASSERT_TRUE(model.ok()) << model.status();
  (*model)->To(torch::Device("cpu"), torch::kFloat64);
  EXPECT_EQ((*model)->Parameters()[0].scalar_type(), torch::kFloat64);
  // The buffer "scale" moved too, else the product would fail or be float32.
  EXPECT_EQ(
      (*model)->Forward(torch::ones({1, 4}, torch::kFloat64)).scalar_type(),
      torch::kFloat64);
}

TEST_F(ModelTest, SafetensorsCheckpointLoadsIntoArchiveByName) {
  const std::string archive = SaveCppArchive(torch::zeros({4, 3}));
  const torch::Tensor weight = torch::linspace(-2, 2, 12).reshape({4, 3});
  ModelSource source = Archive(archive);
  source.state_dict_path = dir_ + "/step1.safetensors";
  WriteStateDict(source.state_dict_path,
                 {ToSafetensors("inner.weight", weight, "F64"),
                  ToSafetensors("scale", torch::full({3}, 3.0), "F32")});
  auto model = LoadModel(source);
  ASSERT_TRUE(model.ok()) << model.status();
  const torch::Tensor x = torch::linspace(0, 1, 8).reshape({2, 4});
  EXPECT_TRUE(
      torch::allclose((*model)->Forward(x), torch::tanh(x.mm(weight)) * 3.0));

  // Buffers may be left out (the archive's stay); parameters may not.
  WriteStateDict(source.state_dict_path,
                 {ToSafetensors("inner.weight", weight, "F32")});
  EXPECT_TRUE(LoadModel(source).ok());
  WriteStateDict(source.state_dict_path,
                 {ToSafetensors("scale", torch::ones({3}), "F32")});
  auto missing = LoadModel(source);
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(std::string(missing.status().message()),
              HasSubstr("missing parameter 'inner.weight'"));
}

TEST_F(ModelTest, ArchiveWithNanWeightsIsRejectedNamingTheTensor) {
  torch::Tensor weight = torch::ones({4, 3});
  weight[2][0] = std::numeric_limits<float>::quiet_NaN();
  auto model = LoadModel(Archive(SaveCppArchive(weight)));
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(model.status().message()),
              HasSubstr("'inner.weight' contains NaN or Inf"));
}

TEST_F(ModelTest, CorruptArchiveIsInvalidArgument) {
  std::mt19937 rng(7);
  std::string noise(4096, '\0');
  for (char& c : noise) c = static_cast<char>(rng());
  const std::string path = dir_ + "/noise.pt";
  WriteFile(path, noise);
  auto model = LoadModel(Archive(path));
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(model.status().message()),
              HasSubstr("cannot load TorchScript archive"));
}

TEST_F(ModelTest, TruncatedArchiveIsInvalidArgument) {
  const std::string whole = ReadFile(SaveCppArchive(torch::ones({4, 3})));
  ASSERT_GT(whole.size(), 100u);
  const std::string path = dir_ + "/half.pt";
  WriteFile(path, whole.substr(0, whole.size() / 2));
  auto model = LoadModel(Archive(path));
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(model.status().message()),
              HasSubstr("cannot load TorchScript archive"));
}

TEST_F(ModelTest, MissingArchiveIsNotFound) {
  auto model = LoadModel(Archive(dir_ + "/absent.pt"));
  EXPECT_EQ(model.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ModelTest, PythonArchiveForwardMatchesPythonOutput) {
  const std::string archive =
      std::string(CURVD_CORE_FIXTURE_DIR) + "/scripted_mlp.pt";
  if (!std::ifstream(archive))
    GTEST_SKIP() << "no Python TorchScript fixture at " << archive;
  auto model = LoadModel(Archive(archive));
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_THAT((*model)->ParameterNames(),
              ElementsAre("body.0.linear.weight", "body.0.linear.bias",
                          "body.1.linear.weight", "body.1.linear.bias",
                          "head.weight", "head.bias"));
  auto io = ReadSafetensorsFile(std::string(CURVD_CORE_FIXTURE_DIR) +
                                "/scripted_mlp_io.safetensors");
  ASSERT_TRUE(io.ok()) << io.status();
  ASSERT_EQ(io->size(), 2u);
  auto inputs = TensorFromSafetensors((*io)[0]);
  auto outputs = TensorFromSafetensors((*io)[1]);
  ASSERT_TRUE(inputs.ok() && outputs.ok());
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(
      torch::allclose((*model)->Forward(*inputs), *outputs, 1e-5, 1e-6));
}

TEST(TensorFromSafetensorsTest, RejectsDataOfTheWrongSize) {
  auto t = TensorFromSafetensors({"x", "F32", {3}, std::string(4, '\0')});
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(std::string(t.status().message()), HasSubstr("'x' has 4 bytes"));
  EXPECT_FALSE(
      TensorFromSafetensors({"u", "U32", {1}, std::string(4, '\0')}).ok());
}

}  // namespace
}  // namespace curvd::core
