// The walk that finds and opens files inside the data roots
// (core/api/data_roots.h): symlinks inside a root, the one message for
// whatever is outside, and a directory swapped for a symlink while shards
// load.
#include "core/api/data_roots.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <torch/torch.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "core/api/safetensors.h"
#include "core/api/sources.h"
#include "core/data/shard.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace curvd::core {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class DataRootsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "/data_roots_test_XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    char resolved[PATH_MAX];
    ASSERT_NE(realpath(pattern.c_str(), resolved), nullptr);
    root_ = std::string(resolved) + "/data";
    outside_ = std::string(resolved) + "/secret";
    ASSERT_EQ(mkdir(root_.c_str(), 0755), 0);
    ASSERT_EQ(mkdir((root_ + "/sub").c_str(), 0755), 0);
    ASSERT_EQ(mkdir(outside_.c_str(), 0755), 0);
    Write(root_ + "/sub/file", "inside");
    Write(outside_ + "/file", "secret");
  }

  static void Write(const std::string& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary);
    out << bytes;
    ASSERT_TRUE(out.good()) << path;
  }

  void Link(const std::string& target, const std::string& name) {
    ASSERT_EQ(symlink(target.c_str(), (root_ + "/" + name).c_str()), 0)
        << name;
  }

  absl::StatusOr<RootedPath> Resolve(const std::string& path) {
    return ResolveInDataRoots(path, {root_});
  }

  // The contents of `path` read through OpenDataFile, or its error.
  absl::StatusOr<std::string> Read(const std::string& path) {
    absl::StatusOr<FileDescriptor> fd = OpenDataFile(path, {root_});
    if (!fd.ok()) return fd.status();
    char buffer[64];
    const ssize_t n = read(fd->get(), buffer, sizeof(buffer));
    return std::string(buffer, n < 0 ? 0 : n);
  }

  std::string root_;
  std::string outside_;
};

TEST_F(DataRootsTest, SymlinksThatStayInsideTheRootAreFollowed) {
  Link(root_ + "/sub/file", "absolute");
  Link("sub/file", "relative");
  Link("sub", "directory");
  Link("../sub/file", "sub/up-and-back");
  Link("relative", "chain");
  for (const std::string name :
       {"absolute", "relative", "directory/file", "sub/up-and-back", "chain"}) {
    absl::StatusOr<RootedPath> found = Resolve(root_ + "/" + name);
    ASSERT_TRUE(found.ok()) << name << ": " << found.status();
    EXPECT_EQ(found->canonical, root_ + "/sub/file") << name;
    EXPECT_FALSE(found->directory);
    EXPECT_EQ(Read(root_ + "/" + name).value_or(""), "inside") << name;
  }
  absl::StatusOr<RootedPath> directory = Resolve(root_ + "/directory");
  ASSERT_TRUE(directory.ok()) << directory.status();
  EXPECT_TRUE(directory->directory);
  EXPECT_EQ(directory->canonical, root_ + "/sub");
}

// Whatever leads out of the roots gets one message, naming only the path
// asked for: not whether the target exists, nor where a symlink points.
TEST_F(DataRootsTest, EverythingOutsideTheRootsGetsOneMessage) {
  Link(outside_ + "/file", "to-existing");
  Link(outside_ + "/absent", "to-absent");
  Link("../secret/file", "climbing");
  Link("/", "to-slash");
  Link(root_ + "/../secret/file", "absolute-climbing");
  for (const std::string& path :
       {root_ + "/to-existing", root_ + "/to-absent", root_ + "/climbing",
        root_ + "/to-slash/etc/passwd", root_ + "/absolute-climbing",
        outside_ + "/file", outside_ + "/absent"}) {
    for (const absl::Status& status :
         {Resolve(path).status(), Read(path).status()}) {
      EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << path;
      EXPECT_EQ(status.message(),
                "path '" + path + "' is outside the data roots");
      if (path.rfind(root_, 0) == 0) {
        EXPECT_THAT(std::string(status.message()),
                    Not(HasSubstr("secret/")));
      }
    }
  }
}

TEST_F(DataRootsTest, WhatIsMissingInsideARootIsNotFound) {
  EXPECT_EQ(Resolve(root_ + "/absent").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(Resolve(root_ + "/sub/file/below").status().code(),
            absl::StatusCode::kNotFound);
  // A trailing "/" or "/." names a directory, as for the kernel's ENOTDIR.
  EXPECT_EQ(Resolve(root_ + "/sub/file/").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(Read(root_ + "/sub/file/.").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(Resolve(root_ + "/sub/").ok());
  Link("sub/file/", "slashed-link");
  EXPECT_EQ(Read(root_ + "/slashed-link").status().code(),
            absl::StatusCode::kNotFound);
  Link("sub/", "slashed-directory-link");
  EXPECT_TRUE(Resolve(root_ + "/slashed-directory-link/file").ok());
  Link(root_ + "/sub/file/", "absolute-slashed-link");
  EXPECT_EQ(Read(root_ + "/absolute-slashed-link").status().code(),
            absl::StatusCode::kNotFound);
  Link(root_ + "/sub/", "absolute-slashed-directory-link");
  EXPECT_TRUE(Read(root_ + "/absolute-slashed-directory-link/file").ok());
  EXPECT_TRUE(Resolve(root_ + "/").ok());
  Link("sub/absent", "dangling-inside");
  EXPECT_EQ(Read(root_ + "/dangling-inside").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(Resolve(root_ + "/../secret/file").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(DataRootsTest, OnlyRegularFilesAreOpened) {
  ASSERT_EQ(mkfifo((root_ + "/fifo").c_str(), 0644), 0);
  EXPECT_THAT(std::string(Read(root_ + "/fifo").status().message()),
              HasSubstr("is not a regular file"));
  EXPECT_THAT(std::string(Read(root_ + "/sub").status().message()),
              HasSubstr("is not a regular file"));
  Link("loop", "loop");
  EXPECT_EQ(Read(root_ + "/loop").status().code(),
            absl::StatusCode::kPermissionDenied);
}

// A shard whose inputs are all `value`.
std::string ShardOf(float value) {
  const std::vector<float> inputs(8, value);
  const std::vector<float> targets(4, value);
  SafetensorsTensor in{"inputs", "F32", {4, 2}, ""};
  in.data.assign(reinterpret_cast<const char*>(inputs.data()), 32);
  SafetensorsTensor out{"targets", "F32", {4}, ""};
  out.data.assign(reinterpret_cast<const char*>(targets.data()), 16);
  return SerializeSafetensors({in, out}).value();
}

// The race of issue 15: a shard is checked (ParseShardUri) and then loaded,
// while another thread keeps swapping its directory for a symlink to a
// directory outside the roots. Not one load may read the outside shard.
TEST_F(DataRootsTest, DirectorySwappedForASymlinkNeverLeadsOut) {
  ASSERT_EQ(mkdir((outside_ + "/d").c_str(), 0755), 0);
  ASSERT_EQ(mkdir((root_ + "/d").c_str(), 0755), 0);
  Write(outside_ + "/d/shard.safetensors", ShardOf(-1));
  Write(root_ + "/d/shard.safetensors", ShardOf(1));
  Link(outside_ + "/d", "d.link");
  const std::string dir = root_ + "/d";
  const std::string real = root_ + "/d.real";
  const std::string link = root_ + "/d.link";
  std::atomic<bool> stop{false};
  std::atomic<int> swaps{0};
  std::thread swapper([&] {
    while (!stop.load()) {
      std::rename(dir.c_str(), real.c_str());
      std::rename(link.c_str(), dir.c_str());
      std::this_thread::yield();
      std::rename(dir.c_str(), link.c_str());
      std::rename(real.c_str(), dir.c_str());
      ++swaps;
      std::this_thread::yield();
    }
  });
  int inside = 0;
  int outside = 0;
  // At least 1000 checks and 1000 swaps, however the threads are scheduled.
  for (int i = 0; i < 1000 || (swaps.load() < 1000 && i < 100000); ++i) {
    absl::StatusOr<ShardSpec> spec =
        ParseShardUri("file://" + dir + "/shard.safetensors", {root_});
    if (!spec.ok()) continue;  // checked while the link was in place
    // Each check is followed by several loads, as a measurement's spec is
    // resolved once and read later.
    for (int load = 0; load < 5; ++load) {
      absl::StatusOr<Shard> shard = LoadShard(*spec);
      if (!shard.ok()) continue;
      (shard->inputs[0][0].item<float>() > 0 ? inside : outside) += 1;
    }
  }
  stop = true;
  swapper.join();
  EXPECT_EQ(outside, 0);
  EXPECT_GT(inside, 0);
}

}  // namespace
}  // namespace curvd::core
