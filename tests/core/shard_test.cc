#include "core/data/shard.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <torch/torch.h>
#include <zlib.h>

#include <fstream>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/api/cifar_format.h"
#include "core/api/safetensors.h"
#include "core/api/sources.h"
#include "gmock/gmock.h"
#include "tests/core/peak_memory.h"
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

// Issue 15's 228 KB gzip bomb took 2.4 GB: an idx file decompresses no
// further than one byte past what its dimensions declare.
TEST_F(ShardTest, GzipBombIsRefusedOneBytePastTheDeclaredData) {
  const std::string path = dir_ + "/bomb-idx3-ubyte.gz";
  gzFile file = gzopen(path.c_str(), "wb1");
  ASSERT_NE(file, nullptr);
  const std::string header =
      BigEndian(0x803) + BigEndian(1) + BigEndian(2) + BigEndian(3);
  gzwrite(file, header.data(), header.size());
  const std::string zeros(1 << 20, '\0');
  for (int i = 0; i < 256; ++i) gzwrite(file, zeros.data(), zeros.size());
  ASSERT_EQ(gzclose(file), Z_OK);
  absl::StatusOr<Shard> shard;
  const int64_t growth = testing::PeakRssGrowth([&] {
    shard = LoadShard(Idx(path, WriteGzip("labels.gz", IdxLabels(1))));
  });
  ExpectInvalid(shard,
                "oversized idx images file: dimensions [1, 2, 3] need 6 data "
                "bytes but it has more");
  if (growth >= 0) {
    EXPECT_LT(growth, int64_t{32} << 20);
  }
}

TEST_F(ShardTest, OversizedPlainIdxIsRejected) {
  ExpectInvalid(LoadShard(Idx(Write("images", IdxImages(12) + "extra"),
                              Write("labels", IdxLabels(12)))),
                "oversized idx images file: dimensions [12, 2, 3] need 72 "
                "data bytes but it has 77");
}

// The slice is sized from the headers and charged before it is allocated.
TEST_F(ShardTest, ShardOverTheBudgetIsResourceExhausted) {
  const ShardSpec spec =
      Idx(Write("images", IdxImages(12)), Write("labels", IdxLabels(12)));
  MemoryBudget budget(100);
  auto shard = LoadShard(spec, budget);
  ASSERT_FALSE(shard.ok());
  EXPECT_EQ(shard.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(shard.status().message(),
            "the shard's 12 images of 6 pixels needs 360 bytes of host "
            "memory, 260 bytes more than is left (100 bytes) of the 100-byte "
            "budget of one measurement (--measurement_host_memory_bytes)");
  EXPECT_EQ(budget.charged(), 0);
  MemoryBudget enough(1000);
  ASSERT_TRUE(LoadShard(spec, enough).ok());
  EXPECT_EQ(enough.charged(), 12 * 6 * 5 + 12 * 9);
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

// Pixel byte j (0 to 3071, in file order) of the record numbered `record`.
uint8_t CifarPixel(int64_t record, int64_t j) {
  return static_cast<uint8_t>((31 * record + 7 * j) % 256);
}

// CIFAR records with the given label bytes each (one for CIFAR-10, coarse and
// fine for CIFAR-100), record k of the file numbered first_record + k for
// CifarPixel.
std::string CifarRecordBytes(const std::vector<std::vector<uint8_t>>& labels,
                             int64_t first_record = 0) {
  std::string out;
  for (size_t k = 0; k < labels.size(); ++k) {
    for (uint8_t label : labels[k]) out.push_back(static_cast<char>(label));
    for (int64_t j = 0; j < kCifarPixelBytes; ++j) {
      out.push_back(static_cast<char>(CifarPixel(first_record + k, j)));
    }
  }
  return out;
}

// What records first .. first+count-1 must load as: image r's pixel (c, y, x)
// is file byte c*1024 + y*32 + x of its record, over 255.
torch::Tensor ExpectedCifarImages(int64_t first, int64_t count) {
  torch::Tensor out =
      torch::empty({count, 3, 32, 32}, torch::kFloat32);
  auto a = out.accessor<float, 4>();
  for (int64_t r = 0; r < count; ++r)
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t y = 0; y < 32; ++y)
        for (int64_t x = 0; x < 32; ++x)
          a[r][c][y][x] =
              static_cast<float>(CifarPixel(first + r, c * 1024 + y * 32 + x)) /
              255.0f;
  return out;
}

ShardSpec Cifar(std::vector<std::string> files) {
  ShardSpec spec;
  spec.kind = ShardSpec::Kind::kCifar;
  spec.record_files = std::move(files);
  return spec;
}

TEST_F(ShardTest, LoadsCifar10RecordsExactly) {
  auto shard = LoadShard(
      Cifar({Write("data_batch_1.bin", CifarRecordBytes({{3}, {0}, {9}}))}));
  ASSERT_TRUE(shard.ok()) << shard.status();
  EXPECT_EQ(shard->inputs.sizes().vec(), (std::vector<int64_t>{3, 3, 32, 32}));
  EXPECT_EQ(shard->inputs.scalar_type(), torch::kFloat32);
  EXPECT_EQ(shard->targets.scalar_type(), torch::kInt64);
  EXPECT_TRUE(torch::equal(shard->targets, torch::tensor({3, 0, 9},
                                                         torch::kInt64)));
  EXPECT_TRUE(torch::equal(shard->inputs, ExpectedCifarImages(0, 3)));
  // Channel planes in file order R, G, B, each row-major: record 1's bytes
  // 1024 (green, top left), 32 (red, second row) and 3071 (blue, bottom right).
  EXPECT_EQ(shard->inputs[1][1][0][0].item<float>(), CifarPixel(1, 1024) / 255.0f);
  EXPECT_EQ(shard->inputs[1][0][1][0].item<float>(), CifarPixel(1, 32) / 255.0f);
  EXPECT_EQ(shard->inputs[1][2][31][31].item<float>(),
            CifarPixel(1, 3071) / 255.0f);
}

// A record whose red plane is all 10, green all 20 and blue all 30 loads as
// channels 0, 1, 2 in that order.
TEST_F(ShardTest, CifarChannelsAreRedGreenBlue) {
  std::string record(1, '\x04');
  for (char value : {'\x0a', '\x14', '\x1e'}) record.append(1024, value);
  auto shard = LoadShard(Cifar({Write("planes.bin", record)}));
  ASSERT_TRUE(shard.ok()) << shard.status();
  for (int64_t c = 0; c < 3; ++c) {
    EXPECT_TRUE(torch::equal(shard->inputs[0][c],
                             torch::full({32, 32}, (10.0f * (c + 1)) / 255.0f)));
  }
  EXPECT_EQ(shard->targets[0].item<int64_t>(), 4);
}

// A directory's five training batches are one shard, read in order; offset
// and limit select across the files as in one.
TEST_F(ShardTest, CifarBatchFilesConcatenateInOrder) {
  ASSERT_EQ(mkdir((dir_ + "/cifar-10-batches-bin").c_str(), 0755), 0);
  for (int batch = 1; batch <= 5; ++batch) {
    const int64_t first = 2 * (batch - 1);
    Write("cifar-10-batches-bin/data_batch_" + std::to_string(batch) + ".bin",
          CifarRecordBytes({{static_cast<uint8_t>(first)},
                            {static_cast<uint8_t>(first + 1)}},
                           first));
  }
  Write("cifar-10-batches-bin/test_batch.bin", CifarRecordBytes({{7}}, 100));
  const std::string uri =
      "file://" + dir_ + "/cifar-10-batches-bin?format=cifar10";
  auto parse = [&](const std::string& query) {
    absl::StatusOr<ShardSpec> spec = ParseShardUri(uri + query, {dir_});
    EXPECT_TRUE(spec.ok()) << spec.status();
    return spec.value_or(ShardSpec());
  };
  auto whole = LoadShard(parse(""));
  ASSERT_TRUE(whole.ok()) << whole.status();
  EXPECT_TRUE(torch::equal(whole->targets, torch::arange(10, torch::kInt64)));
  EXPECT_TRUE(torch::equal(whole->inputs, ExpectedCifarImages(0, 10)));

  auto slice = LoadShard(parse("&offset=3&limit=4"));  // batches 2 to 4
  ASSERT_TRUE(slice.ok()) << slice.status();
  EXPECT_TRUE(
      torch::equal(slice->targets, torch::arange(3, 7, torch::kInt64)));
  EXPECT_TRUE(torch::equal(slice->inputs, ExpectedCifarImages(3, 4)));

  // As for idx: a limit beyond the end takes what there is from the offset; an
  // offset at the end is an empty shard.
  auto rest = LoadShard(parse("&offset=3&limit=100"));
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_EQ(rest->size(), 7);
  ExpectInvalid(LoadShard(parse("&offset=10")), "shard is empty: it has 10");

  auto test = LoadShard(parse("&split=test"));
  ASSERT_TRUE(test.ok()) << test.status();
  EXPECT_TRUE(torch::equal(test->targets, torch::tensor({7}, torch::kInt64)));
  EXPECT_TRUE(torch::equal(test->inputs, ExpectedCifarImages(100, 1)));
}

TEST_F(ShardTest, Cifar100TakesTheChosenLabelAndNormalises) {
  const std::string file =
      Write("train.bin", CifarRecordBytes({{19, 99}, {0, 5}, {7, 42}}));
  const std::string uri = "file://" + file + "?format=cifar100";
  auto load = [&](const std::string& query) {
    absl::StatusOr<ShardSpec> spec = ParseShardUri(uri + query, {dir_});
    EXPECT_TRUE(spec.ok()) << spec.status();
    return LoadShard(spec.value_or(ShardSpec()));
  };
  auto fine = load("");
  ASSERT_TRUE(fine.ok()) << fine.status();
  EXPECT_TRUE(
      torch::equal(fine->targets, torch::tensor({99, 5, 42}, torch::kInt64)));
  EXPECT_TRUE(torch::equal(fine->inputs, ExpectedCifarImages(0, 3)));
  auto coarse = load("&label=coarse");
  ASSERT_TRUE(coarse.ok()) << coarse.status();
  EXPECT_TRUE(
      torch::equal(coarse->targets, torch::tensor({19, 0, 7}, torch::kInt64)));

  // mean_std: (pixel / 255 - mean[c]) / std[c] with CIFAR-100's statistics.
  auto normalised = load("&normalize=mean_std");
  ASSERT_TRUE(normalised.ok()) << normalised.status();
  const float mean[3] = {0.5071f, 0.4865f, 0.4409f};
  const float stddev[3] = {0.2673f, 0.2564f, 0.2762f};
  const torch::Tensor plain = ExpectedCifarImages(0, 3);
  for (int64_t c = 0; c < 3; ++c) {
    SCOPED_TRACE(c);
    EXPECT_TRUE(torch::allclose(normalised->inputs.select(1, c),
                                (plain.select(1, c) - mean[c]) / stddev[c],
                                /*rtol=*/1e-6, /*atol=*/1e-6));
  }
  EXPECT_FLOAT_EQ(normalised->inputs[2][1][3][4].item<float>(),
                  (CifarPixel(2, 1024 + 3 * 32 + 4) / 255.0f - mean[1]) /
                      stddev[1]);
}

TEST_F(ShardTest, GzippedCifarBatchLoads) {
  auto shard =
      LoadShard(Cifar({WriteGzip("batch.bin.gz", CifarRecordBytes({{1}, {2}}))}));
  ASSERT_TRUE(shard.ok()) << shard.status();
  EXPECT_TRUE(torch::equal(shard->inputs, ExpectedCifarImages(0, 2)));
}

TEST_F(ShardTest, CifarFilesThatAreNotWholeRecordsOrHaveBadLabelsAreRejected) {
  const std::string good = Write("good.bin", CifarRecordBytes({{1}}));
  const std::string records = CifarRecordBytes({{1}, {2}});
  const std::string cut = Write("cut.bin", records.substr(0, records.size() - 5));
  ExpectInvalid(LoadShard(Cifar({good, cut})),
                cut + ": 6141 bytes are not whole CIFAR-10 records of 3073 "
                      "bytes (1 label byte then 3072 pixel bytes)");
  const std::string bad_label =
      Write("label.bin", CifarRecordBytes({{9}, {10}}));
  ExpectInvalid(LoadShard(Cifar({good, bad_label})),
                bad_label +
                    ": record 1's label byte is 10; CIFAR-10 labels are 0 to 9");
  // A CIFAR-10 file read as CIFAR-100 is not whole records of 3074 bytes.
  ShardSpec as100 =
      ParseShardUri("file://" + good + "?format=cifar100", {dir_}).value();
  ExpectInvalid(LoadShard(as100),
                "3073 bytes are not whole CIFAR-100 records of 3074 bytes (2 "
                "label bytes then 3072 pixel bytes)");
  const std::string fine =
      Write("fine.bin", CifarRecordBytes({{3, 99}, {3, 100}}));
  ShardSpec spec =
      ParseShardUri("file://" + fine + "?format=cifar100", {dir_}).value();
  ExpectInvalid(LoadShard(spec),
                "record 1's fine label byte is 100; CIFAR-100 fine labels are "
                "0 to 99");
  // The coarse label is checked whichever label is the target.
  const std::string coarse = Write("coarse.bin", CifarRecordBytes({{20, 1}}));
  spec = ParseShardUri("file://" + coarse + "?format=cifar100", {dir_}).value();
  ExpectInvalid(LoadShard(spec),
                "record 0's coarse label byte is 20; CIFAR-100 coarse labels "
                "are 0 to 19");
  ExpectInvalid(LoadShard(Cifar({Write("empty.bin", "")})), "shard is empty");
  ExpectInvalid(LoadShard(Cifar({})), "needs at least one batch file");
  EXPECT_EQ(LoadShard(Cifar({good, dir_ + "/absent.bin"})).status().code(),
            absl::StatusCode::kNotFound);
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
