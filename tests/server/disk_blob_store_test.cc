// The on-disk blob store: uploads resume from the saved SHA-256 state without
// reading what was written, and only in the boot that saved it.
#include "server/disk_blob_store.h"

#include <fstream>
#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/sha256_stream.h"
#include "test_dirs.h"

namespace curvd::server {
namespace {

using ::testing::HasSubstr;

const std::string kData = std::string(3000, 'a') + std::string(1000, 'b');

std::string DigestOf(const std::string& data) {
  Sha256Stream sha;
  sha.Update(data);
  return sha.Digest();
}

TEST(Sha256StreamTest, KnownAnswersAndASavedStateGoesOn) {
  EXPECT_EQ(Sha256Stream().Digest(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  Sha256Stream abc;
  abc.Update("ab");
  std::optional<Sha256Stream> resumed = Sha256Stream::Parse(abc.Serialize());
  ASSERT_TRUE(resumed.has_value());
  resumed->Update("c");
  EXPECT_EQ(resumed->Digest(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(resumed->bytes(), 3);
  EXPECT_FALSE(Sha256Stream::Parse("not a state").has_value());
  std::string torn = abc.Serialize();
  torn.pop_back();
  EXPECT_FALSE(Sha256Stream::Parse(torn).has_value());
}

class DiskBlobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { root_ = testing::MakeTempDir(); }

  std::unique_ptr<DiskBlobStore> Open(const std::string& boot = "boot-1") {
    BlobStoreLimits limits;
    limits.max_blob_bytes = 1 << 20;
    auto store = DiskBlobStore::Open(root_, limits, boot);
    EXPECT_TRUE(store.ok()) << store.status();
    return *std::move(store);
  }

  // Writes the first `n` bytes of kData in one upload that then stops.
  void WritePrefix(DiskBlobStore& store, int64_t n) {
    auto writer = store.OpenWriter(DigestOf(kData), kData.size(), "client");
    ASSERT_TRUE(writer.ok()) << writer.status();
    ASSERT_TRUE((*writer)->Append(0, kData.substr(0, n)).ok());
  }

  std::string PartialPath() const {
    return root_ + "/partial/" + DigestOf(kData).substr(7);
  }

  std::string root_;
};

// The resume hashes from the saved state, not from the file: overwriting the
// written bytes (same length) between the uploads does not change the digest
// that Finish computes. Re-hashing the file, as a resume once did, would give
// a digest mismatch here.
TEST_F(DiskBlobStoreTest, ResumeDoesNotReadTheWrittenBytes) {
  auto store = Open();
  WritePrefix(*store, 3000);
  {
    std::fstream partial(PartialPath(),
                         std::ios::in | std::ios::out | std::ios::binary);
    partial << std::string(3000, 'z');
  }
  auto writer = store->OpenWriter(DigestOf(kData), kData.size(), "client");
  ASSERT_TRUE(writer.ok()) << writer.status();
  EXPECT_EQ((*writer)->committed_size(), 3000);
  ASSERT_TRUE((*writer)->Append(3000, kData.substr(3000)).ok());
  auto state = (*writer)->Finish();
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_TRUE(state->complete);
  EXPECT_FALSE(std::ifstream(PartialPath() + ".sha256").good());
}

TEST_F(DiskBlobStoreTest, ResumesAcrossStoresOfOneBoot) {
  WritePrefix(*Open(), 1500);
  auto store = Open();  // a restarted process, same boot
  EXPECT_EQ(store->Status(DigestOf(kData))->committed_size_bytes, 1500);
  auto writer = store->OpenWriter(DigestOf(kData), kData.size(), "client");
  ASSERT_TRUE(writer.ok());
  EXPECT_EQ((*writer)->Append(0, "a").code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE((*writer)->Append(1500, kData.substr(1500)).ok());
  ASSERT_TRUE((*writer)->Finish().ok());
  auto path = store->PathOf(DigestOf(kData));
  ASSERT_TRUE(path.ok());
  std::ifstream in(*path, std::ios::binary);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), kData);
}

// Bytes written after the last saved state (a process that died between the
// two writes) are cut off: the upload resumes where the state ends.
TEST_F(DiskBlobStoreTest, BytesBeyondTheSavedStateAreCutOff) {
  WritePrefix(*Open(), 1000);
  std::ofstream(PartialPath(), std::ios::app | std::ios::binary) << "aaaa";
  auto store = Open();
  EXPECT_EQ(store->Status(DigestOf(kData))->committed_size_bytes, 1000);
  auto writer = store->OpenWriter(DigestOf(kData), kData.size(), "client");
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->Append(1000, kData.substr(1000)).ok());
  EXPECT_TRUE((*writer)->Finish().ok());
}

// After a reboot the page cache that the state describes may be gone: the
// upload starts again from 0.
TEST_F(DiskBlobStoreTest, AStateFromAnotherBootIsNotTrusted) {
  WritePrefix(*Open("boot-1"), 2000);
  auto store = Open("boot-2");
  EXPECT_EQ(store->Status(DigestOf(kData))->committed_size_bytes, 0);
  auto writer = store->OpenWriter(DigestOf(kData), kData.size(), "client");
  ASSERT_TRUE(writer.ok());
  EXPECT_EQ((*writer)->committed_size(), 0);
  ASSERT_TRUE((*writer)->Append(0, kData).ok());
  EXPECT_TRUE((*writer)->Finish().ok());
  // Without a boot id nothing is ever resumed.
  auto unknown = Open("");
  const std::string other = DigestOf("other");
  {
    auto w = unknown->OpenWriter(other, 5, "client");
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Append(0, "ot").ok());
  }
  EXPECT_EQ(unknown->Status(other)->committed_size_bytes, 0);
}

TEST_F(DiskBlobStoreTest, DigestMismatchDiscardsTheUploadAndItsState) {
  auto store = Open();
  const std::string claimed = DigestOf("something else");
  auto writer = store->OpenWriter(claimed, 4, "client");
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->Append(0, "abcd").ok());
  auto finished = (*writer)->Finish();
  EXPECT_THAT(finished.status().message(), HasSubstr("digest mismatch"));
  EXPECT_FALSE(std::ifstream(root_ + "/partial/" + claimed.substr(7)).good());
  EXPECT_FALSE(
      std::ifstream(root_ + "/partial/" + claimed.substr(7) + ".sha256").good());
}

}  // namespace
}  // namespace curvd::server
