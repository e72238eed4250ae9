#include "core/api/sources.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace curvd::core {
namespace {

using ::testing::HasSubstr;

// A data root with a few files, a sibling directory outside it, and symlinks.
class SourcesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "/sources_test_XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    char resolved[PATH_MAX];
    ASSERT_NE(realpath(pattern.c_str(), resolved), nullptr);
    base_ = resolved;
    root_ = base_ + "/data";
    outside_ = base_ + "/secret";
    ASSERT_EQ(mkdir(root_.c_str(), 0755), 0);
    ASSERT_EQ(mkdir((root_ + "/mnist").c_str(), 0755), 0);
    ASSERT_EQ(mkdir(outside_.c_str(), 0755), 0);
    Touch(root_ + "/shard.safetensors");
    Touch(root_ + "/mnist/train-images-idx3-ubyte.gz");
    Touch(root_ + "/mnist/train-labels-idx1-ubyte.gz");
    Touch(outside_ + "/stolen.safetensors");
    ASSERT_EQ(symlink((outside_ + "/stolen.safetensors").c_str(),
                      (root_ + "/escape.safetensors").c_str()),
              0);
    ASSERT_EQ(symlink((root_ + "/shard.safetensors").c_str(),
                      (root_ + "/alias.safetensors").c_str()),
              0);
    // The directory layouts CIFAR-10 and CIFAR-100 ship as.
    cifar10_ = root_ + "/cifar-10-batches-bin";
    cifar100_ = root_ + "/cifar-100-binary";
    ASSERT_EQ(mkdir(cifar10_.c_str(), 0755), 0);
    ASSERT_EQ(mkdir(cifar100_.c_str(), 0755), 0);
    for (const char* name :
         {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
          "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"}) {
      Touch(cifar10_ + "/" + name);
    }
    Touch(cifar100_ + "/train.bin");
    Touch(cifar100_ + "/test.bin");
  }

  static void Touch(const std::string& path) {
    std::ofstream out(path);
    out << "x";
  }

  absl::StatusOr<ShardSpec> Parse(const std::string& uri) {
    return ParseShardUri(uri, {root_});
  }

  static void ExpectError(const absl::StatusOr<ShardSpec>& spec,
                          absl::StatusCode code,
                          const std::string& message_part) {
    ASSERT_FALSE(spec.ok());
    EXPECT_EQ(spec.status().code(), code) << spec.status();
    EXPECT_THAT(std::string(spec.status().message()), HasSubstr(message_part));
  }

  std::string base_;
  std::string root_;
  std::string outside_;
  std::string cifar10_;
  std::string cifar100_;
};

TEST_F(SourcesTest, SafetensorsFileWithSlice) {
  auto spec =
      Parse("file://" + root_ + "/shard.safetensors?offset=10&limit=20");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->kind, ShardSpec::Kind::kSafetensors);
  EXPECT_EQ(spec->path, root_ + "/shard.safetensors");
  EXPECT_EQ(spec->offset, 10);
  EXPECT_EQ(spec->limit, 20);
  EXPECT_EQ(spec->cache_key,
            "file://" + root_ + "/shard.safetensors?limit=20&offset=10");
  // What the engine opens the path beneath when it loads it.
  EXPECT_EQ(spec->data_roots, std::vector<std::string>{root_});
}

TEST_F(SourcesTest, CacheKeyIsCanonical) {
  auto direct = Parse("file://" + root_ + "/shard.safetensors?limit=5");
  auto other =
      Parse("file://" + root_ + "//./alias.safetensors?limit=5&offset=0");
  ASSERT_TRUE(direct.ok() && other.ok()) << other.status();
  EXPECT_EQ(direct->cache_key, other->cache_key);
  EXPECT_EQ(other->path, root_ + "/shard.safetensors");
}

TEST_F(SourcesTest, IdxImagesWithRelativeAndAbsoluteLabels) {
  const std::string images = root_ + "/mnist/train-images-idx3-ubyte.gz";
  const std::string labels = root_ + "/mnist/train-labels-idx1-ubyte.gz";
  auto relative =
      Parse("file://" + images + "?labels=train-labels-idx1-ubyte.gz");
  ASSERT_TRUE(relative.ok()) << relative.status();
  EXPECT_EQ(relative->kind, ShardSpec::Kind::kIdx);
  EXPECT_EQ(relative->path, images);
  EXPECT_EQ(relative->labels_path, labels);
  auto absolute = Parse("file://" + images + "?labels=" + labels);
  ASSERT_TRUE(absolute.ok()) << absolute.status();
  EXPECT_EQ(absolute->cache_key, relative->cache_key);
}

TEST_F(SourcesTest, IdxImagesNeedLabelsInsideTheRoots) {
  const std::string images =
      "file://" + root_ + "/mnist/train-images-idx3-ubyte.gz";
  ExpectError(Parse(images), absl::StatusCode::kInvalidArgument,
              "?labels=FILE");
  ExpectError(Parse(images + "?labels=" + outside_ + "/stolen.safetensors"),
              absl::StatusCode::kPermissionDenied, "outside the data roots");
  ExpectError(Parse(images + "?labels=../../secret/stolen.safetensors"),
              absl::StatusCode::kInvalidArgument, "'..'");
  ExpectError(Parse(images + "?labels=absent-labels"),
              absl::StatusCode::kNotFound, "no such file");
}

TEST_F(SourcesTest, PathOutsideTheRootsIsPermissionDenied) {
  ExpectError(Parse("file://" + outside_ + "/stolen.safetensors"),
              absl::StatusCode::kPermissionDenied, "outside the data roots");
  // Also for files that do not exist: the answer must not reveal which exist.
  ExpectError(Parse("file://" + outside_ + "/absent.safetensors"),
              absl::StatusCode::kPermissionDenied, "outside the data roots");
  // A prefix of the root's name is not inside it.
  ExpectError(ParseShardUri("file://" + outside_ + "/stolen.safetensors",
                            {base_ + "/sec"}),
              absl::StatusCode::kPermissionDenied, "outside the data roots");
}

TEST_F(SourcesTest, DotDotIsRejected) {
  ExpectError(Parse("file://" + root_ + "/../secret/stolen.safetensors"),
              absl::StatusCode::kInvalidArgument, "must not contain '..'");
  ExpectError(Parse("file://" + root_ + "/mnist/../shard.safetensors"),
              absl::StatusCode::kInvalidArgument, "must not contain '..'");
}

// The message names the path asked for, not where the symlink points.
TEST_F(SourcesTest, SymlinkEscapingTheRootsIsPermissionDenied) {
  auto spec = Parse("file://" + root_ + "/escape.safetensors");
  ExpectError(spec, absl::StatusCode::kPermissionDenied,
              "path '" + root_ + "/escape.safetensors' is outside the data "
              "roots");
  EXPECT_THAT(std::string(spec.status().message()),
              ::testing::Not(HasSubstr(outside_)));
}

TEST_F(SourcesTest, RelativePathIsRejected) {
  ExpectError(Parse("file://data/shard.safetensors"),
              absl::StatusCode::kInvalidArgument, "must be absolute");
}

TEST_F(SourcesTest, MissingFileIsNotFound) {
  ExpectError(Parse("file://" + root_ + "/absent.safetensors"),
              absl::StatusCode::kNotFound, "no such file");
}

// The name with the slash is no idx name: accepted, it parsed as safetensors
// with a cache key (the canonical path) that did not parse again.
TEST_F(SourcesTest, FileNamedWithATrailingSlashIsNotFound) {
  ExpectError(Parse("file://" + root_ + "/mnist/train-images-idx3-ubyte.gz/"),
              absl::StatusCode::kNotFound, "no such file");
}

TEST_F(SourcesTest, DirectoryIsNotAShard) {
  ExpectError(Parse("file://" + root_ + "/mnist"),
              absl::StatusCode::kInvalidArgument, "not a regular file");
}

TEST_F(SourcesTest, BadQueriesAreRejected) {
  const std::string file = "file://" + root_ + "/shard.safetensors";
  ExpectError(Parse(file + "?limit=0"), absl::StatusCode::kInvalidArgument,
              "limit='0'");
  ExpectError(Parse(file + "?limit=-3"), absl::StatusCode::kInvalidArgument,
              "limit='-3'");
  ExpectError(Parse(file + "?offset=-1"), absl::StatusCode::kInvalidArgument,
              "offset='-1'");
  ExpectError(Parse(file + "?limit=ten"), absl::StatusCode::kInvalidArgument,
              "limit='ten'");
  ExpectError(Parse(file + "?limit=1&limit=2"),
              absl::StatusCode::kInvalidArgument, "'limit' repeated");
  ExpectError(Parse(file + "?shuffle=1"), absl::StatusCode::kInvalidArgument,
              "unknown query parameter 'shuffle'");
  ExpectError(Parse(file + "?labels=x"), absl::StatusCode::kInvalidArgument,
              "unknown query parameter 'labels'");
  ExpectError(Parse(file + "?limit"), absl::StatusCode::kInvalidArgument,
              "not key=value");
}

TEST_F(SourcesTest, UnsupportedSchemes) {
  ExpectError(Parse("s3://bucket/shard"), absl::StatusCode::kInvalidArgument,
              "unsupported URI");
  ExpectError(Parse("blob://sha256:00"), absl::StatusCode::kInvalidArgument,
              "resolved to an uploaded blob by the server");
}

TEST_F(SourcesTest, CifarBatchFileWithSlice) {
  auto spec = Parse("file://" + cifar10_ +
                    "/data_batch_2.bin?format=cifar10&limit=100&offset=5");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->kind, ShardSpec::Kind::kCifar);
  EXPECT_EQ(spec->record_files,
            std::vector<std::string>{cifar10_ + "/data_batch_2.bin"});
  EXPECT_EQ(spec->cifar.format, "cifar10");
  ASSERT_EQ(spec->cifar.labels.size(), 1u);
  EXPECT_EQ(spec->cifar.labels[0].classes, 10);
  EXPECT_EQ(spec->cifar.mean, (std::array<float, 3>{0, 0, 0}));
  EXPECT_EQ(spec->cifar.stddev, (std::array<float, 3>{1, 1, 1}));
  EXPECT_EQ(spec->offset, 5);
  EXPECT_EQ(spec->limit, 100);
  EXPECT_EQ(spec->cache_key, "file://" + cifar10_ +
                                 "/data_batch_2.bin?format=cifar10&limit=100&"
                                 "offset=5");
}

// A directory is its split's batch files in order: the five training batches
// (the whole 50,000-image training set) by default, the test batch with
// split=test.
TEST_F(SourcesTest, CifarDirectoryIsItsSplitsBatchFiles) {
  auto train = Parse("file://" + cifar10_ + "?format=cifar10");
  ASSERT_TRUE(train.ok()) << train.status();
  std::vector<std::string> batches;
  for (int i = 1; i <= 5; ++i)
    batches.push_back(cifar10_ + "/data_batch_" + std::to_string(i) + ".bin");
  EXPECT_EQ(train->record_files, batches);
  EXPECT_EQ(train->path, cifar10_);
  EXPECT_EQ(train->cache_key,
            "file://" + cifar10_ + "?format=cifar10&split=train");
  auto same = Parse("file://" + cifar10_ + "/.?split=train&format=cifar10");
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_EQ(same->cache_key, train->cache_key);

  auto test = Parse("file://" + cifar10_ + "?format=cifar10&split=test");
  ASSERT_TRUE(test.ok()) << test.status();
  EXPECT_EQ(test->record_files,
            std::vector<std::string>{cifar10_ + "/test_batch.bin"});
  EXPECT_NE(test->cache_key, train->cache_key);
}

TEST_F(SourcesTest, Cifar100ChoosesItsLabelAndNormalisation) {
  auto fine = Parse("file://" + cifar100_ + "?format=cifar100");
  ASSERT_TRUE(fine.ok()) << fine.status();
  EXPECT_EQ(fine->record_files,
            std::vector<std::string>{cifar100_ + "/train.bin"});
  ASSERT_EQ(fine->cifar.labels.size(), 2u);
  EXPECT_EQ(fine->cifar.labels[0].classes, 20);   // coarse
  EXPECT_EQ(fine->cifar.labels[1].classes, 100);  // fine
  EXPECT_EQ(fine->cifar.target_label, 1u);
  EXPECT_EQ(fine->cache_key, "file://" + cifar100_ +
                                 "?format=cifar100&label=fine&split=train");
  auto coarse = Parse("file://" + cifar100_ +
                      "/test.bin?format=cifar100&label=coarse&normalize=mean_std");
  ASSERT_TRUE(coarse.ok()) << coarse.status();
  EXPECT_EQ(coarse->cifar.target_label, 0u);
  EXPECT_EQ(coarse->cifar.mean,
            (std::array<float, 3>{0.5071f, 0.4865f, 0.4409f}));
  EXPECT_EQ(coarse->cifar.stddev,
            (std::array<float, 3>{0.2673f, 0.2564f, 0.2762f}));
  EXPECT_EQ(coarse->cache_key,
            "file://" + cifar100_ +
                "/test.bin?format=cifar100&label=coarse&normalize=mean_std");
  auto cifar10 =
      Parse("file://" + cifar10_ + "?format=cifar10&normalize=mean_std");
  ASSERT_TRUE(cifar10.ok()) << cifar10.status();
  EXPECT_EQ(cifar10->cifar.mean,
            (std::array<float, 3>{0.4914f, 0.4822f, 0.4465f}));
  EXPECT_EQ(cifar10->cifar.stddev,
            (std::array<float, 3>{0.2470f, 0.2435f, 0.2616f}));
}

TEST_F(SourcesTest, CifarErrorsNameTheParameterOrFile) {
  const std::string dir = "file://" + cifar10_;
  const std::string file = dir + "/data_batch_1.bin";
  ExpectError(Parse(file + "?format=cifar"),
              absl::StatusCode::kInvalidArgument,
              "format='cifar' must be cifar10 or cifar100");
  ExpectError(Parse(file + "?format=cifar10&label=fine"),
              absl::StatusCode::kInvalidArgument,
              "unknown query parameter 'label'");
  ExpectError(Parse("file://" + cifar100_ + "?format=cifar100&label=super"),
              absl::StatusCode::kInvalidArgument,
              "label='super' must be fine or coarse");
  ExpectError(Parse(file + "?format=cifar10&normalize=yes"),
              absl::StatusCode::kInvalidArgument,
              "normalize='yes' must be none or mean_std");
  ExpectError(Parse(file + "?format=cifar10&shuffle=1"),
              absl::StatusCode::kInvalidArgument,
              "unknown query parameter 'shuffle'");
  ExpectError(Parse(file + "?format=cifar10&split=test"),
              absl::StatusCode::kInvalidArgument,
              "unknown query parameter 'split'");  // a file is not a split
  ExpectError(Parse(dir + "?format=cifar10&split=validation"),
              absl::StatusCode::kInvalidArgument,
              "split='validation' must be train or test");
  ExpectError(Parse(file + "?format=cifar10&limit=0"),
              absl::StatusCode::kInvalidArgument, "limit='0'");
  ExpectError(Parse(file + "?format=cifar10&limit=-1"),
              absl::StatusCode::kInvalidArgument, "limit='-1'");
  ExpectError(Parse("file://" + root_ + "/mnist?format=cifar10"),
              absl::StatusCode::kNotFound,
              "no such file: '" + root_ + "/mnist/data_batch_1.bin'");
  ExpectError(Parse("file://" + root_ + "/absent.bin?format=cifar10"),
              absl::StatusCode::kNotFound, "no such file");
}

TEST_F(SourcesTest, CifarFilesMustLieInsideTheRoots) {
  const std::string stolen = outside_ + "/cifar";
  ASSERT_EQ(mkdir(stolen.c_str(), 0755), 0);
  Touch(stolen + "/test_batch.bin");
  ExpectError(Parse("file://" + stolen + "/test_batch.bin?format=cifar10"),
              absl::StatusCode::kPermissionDenied, "outside the data roots");
  ExpectError(Parse("file://" + stolen + "?format=cifar10&split=test"),
              absl::StatusCode::kPermissionDenied, "outside the data roots");
  ExpectError(Parse("file://" + cifar10_ + "/../../secret/cifar?format=cifar10"),
              absl::StatusCode::kInvalidArgument, "must not contain '..'");
  // A directory inside the roots whose batch file links out of them.
  const std::string linked = root_ + "/linked-cifar";
  ASSERT_EQ(mkdir(linked.c_str(), 0755), 0);
  ASSERT_EQ(symlink((stolen + "/test_batch.bin").c_str(),
                    (linked + "/test_batch.bin").c_str()),
            0);
  auto linked_spec = Parse("file://" + linked + "?format=cifar10&split=test");
  ExpectError(linked_spec, absl::StatusCode::kPermissionDenied,
              "outside the data roots");
  EXPECT_THAT(std::string(linked_spec.status().message()),
              ::testing::Not(HasSubstr(stolen)));
}

TEST_F(SourcesTest, GaussianRegressionWithDefaults) {
  auto spec = Parse("builtin://gaussian_regression?n=100&d=5");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->kind, ShardSpec::Kind::kBuiltin);
  EXPECT_EQ(spec->generator, "gaussian_regression");
  EXPECT_EQ(spec->params.at("n"), "100");
  EXPECT_EQ(spec->params.at("d"), "5");
  EXPECT_EQ(spec->params.at("outputs"), "1");
  EXPECT_EQ(spec->params.at("seed"), "0");
  EXPECT_EQ(spec->cache_key,
            "builtin://gaussian_regression?d=5&n=100&outputs=1&seed=0");
  auto same = Parse("builtin://gaussian_regression?seed=0&outputs=1&d=5&n=100");
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->cache_key, spec->cache_key);
  auto sliced =
      Parse("builtin://gaussian_regression?n=100&d=5&offset=90&limit=5&seed=7");
  ASSERT_TRUE(sliced.ok()) << sliced.status();
  EXPECT_EQ(sliced->offset, 90);
  EXPECT_EQ(sliced->limit, 5);
  EXPECT_EQ(sliced->cache_key,
            "builtin://"
            "gaussian_regression?d=5&limit=5&n=100&offset=90&outputs=1&seed=7");
}

TEST_F(SourcesTest, BuiltinErrors) {
  ExpectError(Parse("builtin://teacher_student?n=97"),
              absl::StatusCode::kInvalidArgument,
              "unknown builtin generator 'teacher_student'");
  ExpectError(Parse("builtin://gaussian_regression?n=10"),
              absl::StatusCode::kInvalidArgument, "needs n= and d=");
  ExpectError(Parse("builtin://gaussian_regression?n=0&d=3"),
              absl::StatusCode::kInvalidArgument, "n='0'");
  ExpectError(Parse("builtin://gaussian_regression?n=10&d=3&noise=0.5"),
              absl::StatusCode::kInvalidArgument,
              "unknown query parameter 'noise'");
  ExpectError(Parse("builtin://gaussian_regression?n=10&d=3&seed=-1"),
              absl::StatusCode::kInvalidArgument, "seed='-1'");
  ExpectError(Parse("builtin://gaussian_regression?n=10&d=3&limit=0"),
              absl::StatusCode::kInvalidArgument, "limit='0'");
  ExpectError(Parse("builtin://gaussian_regression?n=10&d=3&offset=10"),
              absl::StatusCode::kInvalidArgument, "offset='10'");
  ExpectError(Parse("builtin://gaussian_regression?n=10000000&d=100000"),
              absl::StatusCode::kInvalidArgument, "exceeds");
}

TEST_F(SourcesTest, ResolveDataPath) {
  auto path =
      ResolveDataPath("file://" + root_ + "/alias.safetensors", {root_});
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(*path, root_ + "/shard.safetensors");
  EXPECT_EQ(ResolveDataPath("file://" + root_ + "/escape.safetensors", {root_})
                .status()
                .code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(
      ResolveDataPath("file://" + root_ + "/x/../shard.safetensors", {root_})
          .status()
          .code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveDataPath("file://" + root_ + "/absent.pt", {root_})
                .status()
                .code(),
            absl::StatusCode::kNotFound);
  auto query = ResolveDataPath("file://" + root_ + "/shard.safetensors?limit=1",
                               {root_});
  EXPECT_THAT(std::string(query.status().message()),
              HasSubstr("must not have a query"));
  EXPECT_EQ(ResolveDataPath("builtin://gaussian_regression?n=1&d=1", {root_})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  // With no roots nothing is readable.
  EXPECT_EQ(ResolveDataPath("file://" + root_ + "/shard.safetensors", {})
                .status()
                .code(),
            absl::StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace curvd::core
