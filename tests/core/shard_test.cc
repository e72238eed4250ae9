#include "core/data/shard.h"

#include <stdlib.h>
#include <torch/torch.h>
#include <zlib.h>

#include <fstream>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/api/safetensors.h"
#include "core/api/sources.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace curvd::core {
namespace {

using ::testing::HasSubstr;

std::string BigEndian(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
          static_cast<char>(v >> 8), static_cast<char>(v)};
}

// An idx images file of `n` images of 2x3 pixels whose pixel j of image i is
// 10*i+j.
std::string IdxImages(uint32_t n) {
  std::string out =
      BigEndian(0x803) + BigEndian(n) + BigEndian(2) + BigEndian(3);
  for (uint32_t i = 0; i < n; ++i) {
    for (int j = 0; j < 6; ++j) out.push_back(static_cast<char>(10 * i + j));
  }
  return out;
}

// An idx labels file with label i % 10 for sample i.
std::string IdxLabels(uint32_t n) {
  std::string out = BigEndian(0x801) + BigEndian(n);
  for (uint32_t i = 0; i < n; ++i) out.push_back(static_cast<char>(i % 10));
  return out;
}

class ShardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "/shard_test_XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }

  std::string Write(const std::string& name, const std::string& bytes) {
    const std::string path = dir_ + "/" + name;
    std::ofstream out(path, std::ios::binary);
    out << bytes;
    EXPECT_TRUE(out.good());
    return path;
  }

  std::string WriteGzip(const std::string& name, const std::string& bytes) {
    const std::string path = dir_ + "/" + name;
    gzFile file = gzopen(path.c_str(), "wb");
    EXPECT_NE(file, nullptr);
    EXPECT_EQ(gzwrite(file, bytes.data(), bytes.size()),
              static_cast<int>(bytes.size()));
    EXPECT_EQ(gzclose(file), Z_OK);
    return path;
  }

  static ShardSpec Idx(const std::string& images, const std::string& labels) {
    ShardSpec spec;
    spec.kind = ShardSpec::Kind::kIdx;
    spec.path = images;
    spec.labels_path = labels;
    return spec;
  }

  static void ExpectInvalid(const absl::StatusOr<Shard>& shard,
                            const std::string& part) {
    ASSERT_FALSE(shard.ok());
    EXPECT_EQ(shard.status().code(), absl::StatusCode::kInvalidArgument)
        << shard.status();
    EXPECT_THAT(std::string(shard.status().message()), HasSubstr(part));
  }

  std::string dir_;
};

void ExpectSmallIdxShard(const Shard& shard, int64_t first, int64_t count) {
  ASSERT_EQ(shard.inputs.sizes().vec(), (std::vector<int64_t>{count, 6}));
  EXPECT_EQ(shard.inputs.scalar_type(), torch::kFloat32);
  EXPECT_EQ(shard.targets.scalar_type(), torch::kInt64);
  EXPECT_EQ(shard.size(), count);
  for (int64_t i = 0; i < count; ++i) {
    EXPECT_FLOAT_EQ(shard.inputs[i][5].item<float>(),
                    (10 * (first + i) + 5) / 255.0f);
    EXPECT_EQ(shard.targets[i].item<int64_t>(), (first + i) % 10);
  }
}

TEST_F(ShardTest, LoadsPlainIdx) {
  auto shard = LoadShard(Idx(Write("images-idx3-ubyte", IdxImages(12)),
                             Write("labels-idx1-ubyte", IdxLabels(12))));
  ASSERT_TRUE(shard.ok()) << shard.status();
  ExpectSmallIdxShard(*shard, 0, 12);
}

TEST_F(ShardTest, LoadsGzippedIdxWithSlice) {
  ShardSpec spec = Idx(WriteGzip("images-idx3-ubyte.gz", IdxImages(12)),
                       WriteGzip("labels-idx1-ubyte.gz", IdxLabels(12)));
  spec.offset = 3;
  spec.limit = 4;
  auto shard = LoadShard(spec);
  ASSERT_TRUE(shard.ok()) << shard.status();
  ExpectSmallIdxShard(*shard, 3, 4);
  spec.limit = 100;  // more than there is: everything from the offset
  shard = LoadShard(spec);
  ASSERT_TRUE(shard.ok()) << shard.status();
  EXPECT_EQ(shard->size(), 9);
}

TEST_F(ShardTest, IdxWithWrongMagicIsRejected) {
  ExpectInvalid(LoadShard(Idx(Write("labels-as-images", IdxLabels(12)),
                              Write("labels", IdxLabels(12)))),
                "magic 0x00000801, expected 0x00000803");
}

TEST_F(ShardTest, TruncatedIdxIsRejected) {
  const std::string images = IdxImages(12);
  ExpectInvalid(
      LoadShard(Idx(Write("images", images.substr(0, images.size() - 7)),
                    Write("labels", IdxLabels(12)))),
      "truncated idx images file: dimensions [12, 2, 3] need 72 data bytes but "
      "it has 65");
  ExpectInvalid(LoadShard(Idx(Write("short", images.substr(0, 10)),
                              Write("l", IdxLabels(12)))),
                "shorter than its header");
}

TEST_F(ShardTest, TruncatedGzipIsRejected) {
  WriteGzip("whole.gz", IdxImages(200));
  std::ifstream in(dir_ + "/whole.gz", std::ios::binary);
  std::string gz((std::istreambuf_iterator<char>(in)),
                 std::istreambuf_iterator<char>());
  ExpectInvalid(LoadShard(Idx(Write("half.gz", gz.substr(0, gz.size() / 2)),
                              WriteGzip("labels.gz", IdxLabels(200)))),
                "truncated");
}

TEST_F(ShardTest, IdxLabelCountMismatchIsRejected) {
  ExpectInvalid(LoadShard(Idx(Write("images", IdxImages(12)),
                              Write("labels", IdxLabels(11)))),
                "label count mismatch");
}

TEST_F(ShardTest, MissingIdxFileIsNotFound) {
  auto shard = LoadShard(Idx(dir_ + "/absent", Write("labels", IdxLabels(1))));
  EXPECT_EQ(shard.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ShardTest, OffsetPastTheEndIsAnEmptyShard) {
  ShardSpec spec =
      Idx(Write("images", IdxImages(5)), Write("labels", IdxLabels(5)));
  spec.offset = 5;
  ExpectInvalid(LoadShard(spec), "is empty");
  spec.offset = 0;
  spec.limit = -1;
  ExpectInvalid(LoadShard(spec), "must not be negative");
  ExpectInvalid(LoadShard(Idx(Write("none", IdxImages(0)),
                              Write("nolabels", IdxLabels(0)))),
                "is empty");
}

TEST_F(ShardTest, FashionMnistTrainingSet) {
  const std::string dir = CURVD_FASHION_MNIST_DIR;
  if (!std::ifstream(dir + "/train-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << "Fashion-MNIST is not installed at " << dir;
  }
  auto shard = LoadShard(Idx(dir + "/train-images-idx3-ubyte.gz",
                             dir + "/train-labels-idx1-ubyte.gz"));
  ASSERT_TRUE(shard.ok()) << shard.status();
  EXPECT_EQ(shard->inputs.sizes().vec(), (std::vector<int64_t>{60000, 784}));
  EXPECT_EQ(shard->targets.sizes().vec(), (std::vector<int64_t>{60000}));
  EXPECT_GE(shard->inputs.min().item<float>(), 0.0f);
  EXPECT_LE(shard->inputs.max().item<float>(), 1.0f);
  EXPECT_GT(shard->inputs.max().item<float>(), 0.99f);
  // Ten balanced classes of 6000 each.
  EXPECT_TRUE(torch::equal(torch::bincount(shard->targets),
                           torch::full({10}, 6000, torch::kInt64)));
}

TEST_F(ShardTest, FashionMnistTestSetThroughItsUri) {
  const std::string dir = CURVD_FASHION_MNIST_DIR;
  if (!std::ifstream(dir + "/t10k-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << "Fashion-MNIST is not installed at " << dir;
  }
  auto spec = ParseShardUri("file://" + dir +
                                "/t10k-images-idx3-ubyte.gz?labels=t10k-labels-"
                                "idx1-ubyte.gz&offset=9900",
                            {dir});
  ASSERT_TRUE(spec.ok()) << spec.status();
  auto shard = LoadShard(*spec);
  ASSERT_TRUE(shard.ok()) << shard.status();
  EXPECT_EQ(shard->inputs.sizes().vec(), (std::vector<int64_t>{100, 784}));
  EXPECT_EQ(shard->targets.sizes().vec(), (std::vector<int64_t>{100}));
  EXPECT_LE(shard->targets.max().item<int64_t>(), 9);
}

SafetensorsTensor Raw(const std::string& name, const torch::Tensor& t,
                      const std::string& dtype) {
  torch::Tensor c = t.contiguous();
  SafetensorsTensor out{name, dtype, c.sizes().vec(), ""};
  out.data.assign(static_cast<const char*>(c.data_ptr()),
                  c.numel() * c.element_size());
  return out;
}

TEST_F(ShardTest, LoadsSafetensorsShardWithSlice) {
  const torch::Tensor inputs =
      torch::arange(24, torch::kFloat32).reshape({6, 2, 2});
  const torch::Tensor targets = torch::arange(6, torch::kInt32);
  auto bytes = SerializeSafetensors(
      {Raw("inputs", inputs, "F32"), Raw("targets", targets, "I32")});
  ASSERT_TRUE(bytes.ok());
  ShardSpec spec;
  spec.path = Write("shard.safetensors", *bytes);
  spec.offset = 2;
  spec.limit = 3;
  auto shard = LoadShard(spec);
  ASSERT_TRUE(shard.ok()) << shard.status();
  EXPECT_TRUE(torch::equal(shard->inputs, inputs.narrow(0, 2, 3)));
  EXPECT_EQ(shard->targets.scalar_type(), torch::kInt64);
  EXPECT_TRUE(torch::equal(shard->targets, torch::arange(2, 5, torch::kInt64)));
}

// Integer inputs are token ids for an embedding: I64 stays int64, narrower
// integers widen to it losslessly, and none becomes floating point.
TEST_F(ShardTest, IntegerInputsLoadAsInt64TokenIds) {
  const torch::Tensor tokens =
      torch::tensor({0, 4, 3, 255, 7, 1}, torch::kInt64).reshape({3, 2});
  const torch::Tensor targets = torch::arange(3, torch::kInt64);
  for (const auto& [dtype, name] :
       std::vector<std::pair<torch::ScalarType, std::string>>{
           {torch::kInt64, "I64"},
           {torch::kInt32, "I32"},
           {torch::kUInt8, "U8"}}) {
    SCOPED_TRACE(name);
    auto bytes = SerializeSafetensors({Raw("inputs", tokens.to(dtype), name),
                                       Raw("targets", targets, "I64")});
    ASSERT_TRUE(bytes.ok());
    ShardSpec spec;
    spec.path = Write("tokens.safetensors", *bytes);
    spec.offset = 1;
    auto shard = LoadShard(spec);
    ASSERT_TRUE(shard.ok()) << shard.status();
    EXPECT_EQ(shard->inputs.scalar_type(), torch::kInt64);
    EXPECT_TRUE(torch::equal(shard->inputs, tokens.narrow(0, 1, 2)));
  }
}

TEST_F(ShardTest, SafetensorsShardErrors) {
  ShardSpec spec;
  auto only_inputs =
      SerializeSafetensors({Raw("inputs", torch::ones({3, 2}), "F32")});
  spec.path = Write("a.safetensors", *only_inputs);
  ExpectInvalid(LoadShard(spec), "no tensor named 'targets'");

  auto mismatch =
      SerializeSafetensors({Raw("inputs", torch::ones({3, 2}), "F32"),
                            Raw("targets", torch::ones({4}), "F32")});
  spec.path = Write("b.safetensors", *mismatch);
  ExpectInvalid(LoadShard(spec), "inputs have 3 samples but targets have 4");

  auto bool_inputs = SerializeSafetensors(
      {Raw("inputs", torch::ones({3, 2}, torch::kBool), "BOOL"),
       Raw("targets", torch::ones({3}), "F32")});
  spec.path = Write("c.safetensors", *bool_inputs);
  ExpectInvalid(LoadShard(spec),
                "or integer token ids (I64, I32, I16, I8, U8), not BOOL");

  spec.path = Write("d.safetensors", "garbage");
  ExpectInvalid(LoadShard(spec), "safetensors");

  spec.path = dir_ + "/absent.safetensors";
  EXPECT_EQ(LoadShard(spec).status().code(), absl::StatusCode::kNotFound);
}

ShardSpec Gaussian(int64_t n, int64_t d, int64_t outputs, uint64_t seed) {
  ShardSpec spec;
  spec.kind = ShardSpec::Kind::kBuiltin;
  spec.generator = "gaussian_regression";
  spec.params = {{"n", std::to_string(n)},
                 {"d", std::to_string(d)},
                 {"outputs", std::to_string(outputs)},
                 {"seed", std::to_string(seed)}};
  return spec;
}

TEST_F(ShardTest, GaussianRegressionIsSeededLinearDataWithSmallNoise) {
  auto shard = LoadShard(Gaussian(2000, 5, 2, 42));
  ASSERT_TRUE(shard.ok()) << shard.status();
  EXPECT_EQ(shard->inputs.sizes().vec(), (std::vector<int64_t>{2000, 5}));
  EXPECT_EQ(shard->targets.sizes().vec(), (std::vector<int64_t>{2000, 2}));
  EXPECT_EQ(shard->targets.scalar_type(), torch::kFloat32);
  EXPECT_NEAR(shard->inputs.std().item<double>(), 1.0, 0.05);

  // The least-squares residual of targets on inputs is the 0.1 noise.
  const torch::Tensor x = shard->inputs.to(torch::kFloat64);
  const torch::Tensor y = shard->targets.to(torch::kFloat64);
  const torch::Tensor w =
      torch::linalg_solve(x.t().mm(x), x.t().mm(y), /*left=*/true);
  EXPECT_NEAR((y - x.mm(w)).std().item<double>(), 0.1, 0.01);

  auto again = LoadShard(Gaussian(2000, 5, 2, 42));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(torch::equal(again->inputs, shard->inputs));
  EXPECT_TRUE(torch::equal(again->targets, shard->targets));
  auto other_seed = LoadShard(Gaussian(2000, 5, 2, 43));
  ASSERT_TRUE(other_seed.ok());
  EXPECT_FALSE(torch::equal(other_seed->inputs, shard->inputs));

  ShardSpec sliced = Gaussian(2000, 5, 2, 42);
  sliced.offset = 100;
  sliced.limit = 10;
  auto slice = LoadShard(sliced);
  ASSERT_TRUE(slice.ok());
  EXPECT_TRUE(torch::equal(slice->inputs, shard->inputs.narrow(0, 100, 10)));
  EXPECT_TRUE(torch::equal(slice->targets, shard->targets.narrow(0, 100, 10)));
}

// The grokking data as bench's W3 feeds the Transformer: float32 token ids
// (a, b, p) and int64 targets (a + b) mod p, from the pairs of the split.
TEST_F(ShardTest, ModularAdditionIsTokenRowsAndTheirSums) {
  absl::StatusOr<ShardSpec> uri = ParseShardUri(
      "builtin://modular_addition?p=97&train_fraction=0.3&seed=0", {});
  ASSERT_TRUE(uri.ok()) << uri.status();
  auto shard = LoadShard(*uri);
  ASSERT_TRUE(shard.ok()) << shard.status();
  EXPECT_EQ(shard->inputs.sizes().vec(), (std::vector<int64_t>{2822, 3}));
  EXPECT_EQ(shard->inputs.scalar_type(), torch::kFloat32);
  EXPECT_EQ(shard->targets.sizes().vec(), (std::vector<int64_t>{2822}));
  EXPECT_EQ(shard->targets.scalar_type(), torch::kInt64);
  // The first pair of the split is 7166 = 73 * 97 + 85 (modular_addition_test).
  EXPECT_EQ(shard->inputs[0][0].item<float>(), 73.0f);
  EXPECT_EQ(shard->inputs[0][1].item<float>(), 85.0f);
  EXPECT_EQ(shard->targets[0].item<int64_t>(), (73 + 85) % 97);
  const torch::Tensor tokens = shard->inputs.to(torch::kInt64);
  EXPECT_TRUE(torch::equal(tokens.select(1, 2),
                           torch::full({2822}, 97, torch::kInt64)));
  EXPECT_TRUE(
      torch::equal(shard->targets,
                   (tokens.select(1, 0) + tokens.select(1, 1)).remainder(97)));
  EXPECT_LT(tokens.narrow(1, 0, 2).max().item<int64_t>(), 97);

  // The test split holds the other pairs: train and test rows never coincide.
  absl::StatusOr<ShardSpec> test_uri = ParseShardUri(
      "builtin://modular_addition?p=97&train_fraction=0.3&seed=0&split=test",
      {});
  ASSERT_TRUE(test_uri.ok()) << test_uri.status();
  auto test = LoadShard(*test_uri);
  ASSERT_TRUE(test.ok()) << test.status();
  EXPECT_EQ(test->size(), 97 * 97 - 2822);
  const torch::Tensor test_tokens = test->inputs.to(torch::kInt64);
  const torch::Tensor ids =
      torch::cat({tokens.select(1, 0) * 97 + tokens.select(1, 1),
                  test_tokens.select(1, 0) * 97 + test_tokens.select(1, 1)})
          .contiguous();
  const int64_t* id = ids.data_ptr<int64_t>();
  EXPECT_EQ(std::set<int64_t>(id, id + ids.numel()).size(), 97u * 97u);

  // A slice is the same rows as in the whole split.
  ShardSpec sliced = *uri;
  sliced.offset = 100;
  sliced.limit = 10;
  auto slice = LoadShard(sliced);
  ASSERT_TRUE(slice.ok()) << slice.status();
  EXPECT_TRUE(torch::equal(slice->inputs, shard->inputs.narrow(0, 100, 10)));
  EXPECT_TRUE(torch::equal(slice->targets, shard->targets.narrow(0, 100, 10)));
}

TEST_F(ShardTest, BuiltinErrors) {
  ShardSpec spec = Gaussian(10, 3, 1, 0);
  spec.generator = "teacher_student";
  ExpectInvalid(LoadShard(spec), "unknown builtin generator 'teacher_student'");
  spec = Gaussian(10, 3, 1, 0);
  spec.params.erase("d");
  ExpectInvalid(LoadShard(spec), "parameter d");
  spec = Gaussian(1 << 20, 1 << 10, 1, 0);
  ExpectInvalid(LoadShard(spec), "exceeds");
  spec.generator = "modular_addition";
  spec.params = {{"p", "1"}};
  ExpectInvalid(LoadShard(spec), "parameter p='1'");
}

}  // namespace
}  // namespace curvd::core
