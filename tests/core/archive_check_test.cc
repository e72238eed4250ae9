#include "core/data/archive_check.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <torch/script.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "absl/time/clock.h"
#include "core/data/model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace curvd::core {
namespace {

using ::testing::HasSubstr;

// The checker built with this test (core/tools/curvd_archive_check.cc).
constexpr char kChecker[] = CURVD_ARCHIVE_CHECKER;

class ArchiveCheckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/archive_check_test_XXXXXX";
    ASSERT_NE(mkdtemp(dir_.data()), nullptr);
  }

  std::string Write(const std::string& name, const std::string& bytes,
                    mode_t mode = 0644) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << bytes;
    EXPECT_EQ(chmod(path.c_str(), mode), 0);
    return path;
  }

  // A checker that ends as `body` (a shell script) says.
  std::string FakeChecker(const std::string& name, const std::string& body) {
    return Write(name, "#!/bin/sh\n" + body + "\n", 0755);
  }

  std::string SaveArchive(const std::string& name) {
    torch::jit::Module module("Scaled");
    module.register_parameter("weight", torch::ones({3}), false);
    module.define("def forward(self, x):\n    return x * self.weight\n");
    const std::string path = dir_ + "/" + name;
    module.save(path);
    return path;
  }

  absl::Status Check(const std::string& path, const std::string& checker,
                     absl::Duration timeout = absl::Minutes(1)) {
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    EXPECT_GE(fd, 0) << path;
    absl::Status status = CheckArchiveInChild(fd, checker, timeout);
    EXPECT_EQ(lseek(fd, 0, SEEK_CUR), 0) << "the offset is left at 0";
    close(fd);
    return status;
  }

  std::string dir_;
};

TEST_F(ArchiveCheckTest, AnArchiveThatLoadsIsOk) {
  EXPECT_TRUE(Check(SaveArchive("good.pt"), kChecker).ok());
}

// A server whose standard input was closed opens its files as 0, 1, ...: the
// archive on descriptor 0 still reaches the child as its standard input.
TEST_F(ArchiveCheckTest, AnArchiveOnDescriptorZeroIsChecked) {
  const int saved_stdin = dup(STDIN_FILENO);
  ASSERT_GE(saved_stdin, 0);
  const std::string archive = SaveArchive("on_zero.pt");
  close(STDIN_FILENO);
  // Close-on-exec, as every descriptor curvd opens.
  ASSERT_EQ(open(archive.c_str(), O_RDONLY | O_CLOEXEC), STDIN_FILENO);
  const absl::Status status = CheckArchiveInChild(STDIN_FILENO, kChecker);
  EXPECT_EQ(lseek(STDIN_FILENO, 0, SEEK_CUR), 0);
  ASSERT_EQ(dup2(saved_stdin, STDIN_FILENO), STDIN_FILENO);
  close(saved_stdin);
  EXPECT_TRUE(status.ok()) << status;
}

TEST_F(ArchiveCheckTest, ARefusedArchiveGetsTheLoadersMessage) {
  const absl::Status status = Check(Write("zip.pt", "not a zip"), kChecker);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("zip archive"));
  EXPECT_THAT(std::string(status.message()),
              ::testing::Not(HasSubstr("Exception raised from")));
}

// One byte changed in an archive's code: LibTorch's loader died of SIGSEGV on
// it inside a server that had loaded other archives first (it stayed in
// tests/reliability/known_crashes/ until this check existed).
TEST_F(ArchiveCheckTest, TheArchiveThatCrashedTheServerIsRefused) {
  const absl::Status status =
      Check(std::string(CURVD_SOURCE_DIR) +
                "/tests/reliability/corpus/archive/"
                "segfault-flipped-byte-in-linear-code",
            kChecker);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
}

TEST_F(ArchiveCheckTest, ALoaderCrashIsInvalidArgumentNamingTheSignal) {
  const absl::Status status = Check(
      SaveArchive("crashes.pt"), FakeChecker("segfaults", "kill -SEGV $$"));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("crashed"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("signal 11"));
}

TEST_F(ArchiveCheckTest, ASilentRefusalIsStillARefusal) {
  const absl::Status status =
      Check(SaveArchive("silent.pt"), FakeChecker("silent", "exit 3"));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("said nothing"));
}

// A checker that cannot load its own libraries (127), or that something
// outside kills (the out-of-memory killer's SIGKILL), says nothing of the
// archive: not a refusal, and not kept.
TEST_F(ArchiveCheckTest, WhatSaysNothingOfTheArchiveIsNotAVerdict) {
  const std::string archive = SaveArchive("unjudged.pt");
  const absl::Status broken =
      Check(archive, FakeChecker("broken", "echo 'libtorch.so: not found'; exit 127"));
  EXPECT_EQ(broken.code(), absl::StatusCode::kFailedPrecondition) << broken;
  EXPECT_THAT(std::string(broken.message()), HasSubstr("status 127"));
  EXPECT_THAT(std::string(broken.message()), HasSubstr("libtorch.so"));
  const absl::Status killed =
      Check(archive, FakeChecker("killed", "kill -KILL $$"));
  EXPECT_EQ(killed.code(), absl::StatusCode::kUnavailable) << killed;
  EXPECT_TRUE(Check(archive, kChecker).ok());
}

TEST_F(ArchiveCheckTest, ALoaderThatHangsIsStoppedAtTheTimeout) {
  const absl::Time start = absl::Now();
  const absl::Status status =
      Check(SaveArchive("hangs.pt"), FakeChecker("hangs", "exec sleep 60"),
            absl::Milliseconds(300));
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded) << status;
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

TEST_F(ArchiveCheckTest, ACheckerThatCannotRunIsFailedPrecondition) {
  const absl::Status status =
      Check(SaveArchive("unchecked.pt"), dir_ + "/no-such-checker");
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), HasSubstr("no-such-checker"));
}

// The second check of a file finds the first's verdict, whatever the checker;
// a file changed since is checked again.
TEST_F(ArchiveCheckTest, AVerdictIsKeptUntilTheFileChanges) {
  const std::string archive = SaveArchive("kept.pt");
  const std::string crashing = FakeChecker("crashing", "kill -SEGV $$");
  ASSERT_TRUE(Check(archive, kChecker).ok());
  EXPECT_TRUE(Check(archive, crashing).ok());
  Write("kept.pt", "not a zip any more");
  EXPECT_EQ(Check(archive, crashing).code(),
            absl::StatusCode::kInvalidArgument);
  // The same size again, a clock tick later: the times tell.
  absl::SleepFor(absl::Milliseconds(20));
  Write("kept.pt", "not a zip any more");
  EXPECT_EQ(Check(archive, FakeChecker("refusing", "exit 3")).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(Check(archive, crashing).message()),
              HasSubstr("said nothing"));
}

// LoadModel runs the source's checker before it loads the archive itself, and
// names the archive in what it says.
TEST_F(ArchiveCheckTest, LoadModelRefusesWhatTheCheckerRefuses) {
  ModelSource source;
  source.kind = ModelSource::Kind::kTorchScript;
  source.archive_path = SaveArchive("loaded.pt");
  source.archive_checker = FakeChecker("refuses", "echo 'no, thank you'; exit 3");
  const auto refused = LoadModel(source);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("cannot load TorchScript archive " +
                        source.archive_path));
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("no, thank you"));

  source.archive_path = SaveArchive("loaded_too.pt");
  source.archive_checker = kChecker;
  EXPECT_TRUE(LoadModel(source).ok());
}

}  // namespace
}  // namespace curvd::core
