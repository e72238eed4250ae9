#include "core/api/sources.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

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

TEST_F(SourcesTest, SymlinkEscapingTheRootsIsPermissionDenied) {
  ExpectError(Parse("file://" + root_ + "/escape.safetensors"),
              absl::StatusCode::kPermissionDenied, "resolved to '" + outside_);
}

TEST_F(SourcesTest, RelativePathIsRejected) {
  ExpectError(Parse("file://data/shard.safetensors"),
              absl::StatusCode::kInvalidArgument, "must be absolute");
}

TEST_F(SourcesTest, MissingFileIsNotFound) {
  ExpectError(Parse("file://" + root_ + "/absent.safetensors"),
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
