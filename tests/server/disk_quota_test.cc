// The disk blob store's bounds: what partial uploads may reserve in all and
// per client, their expiry, the state directory's quota and free-space
// reserve, and the removal of committed blobs.
#include <fcntl.h>
#include <sys/stat.h>

#include <fstream>
#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/disk_blob_store.h"
#include "server/sha256_stream.h"
#include "test_dirs.h"

namespace curvd::server {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;

std::string DigestOf(const std::string& data) {
  Sha256Stream sha;
  sha.Update(data);
  return sha.Digest();
}

// Sets the modification time of `path` `age` in the past.
void Age(const std::string& path, absl::Duration age) {
  const timespec then = absl::ToTimespec(absl::Now() - age);
  const timespec times[2] = {then, then};
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), times, 0), 0) << path;
}

class DiskQuotaTest : public ::testing::Test {
 protected:
  void SetUp() override { root_ = testing::MakeTempDir(); }

  std::unique_ptr<DiskBlobStore> Open(const std::string& database_dir = "") {
    auto store = DiskBlobStore::Open(root_, limits_, "boot", database_dir);
    EXPECT_TRUE(store.ok()) << store.status();
    return *std::move(store);
  }

  // Commits `data` as client "a".
  void Commit(DiskBlobStore& store, const std::string& data) {
    auto writer = store.OpenWriter(DigestOf(data), data.size(), "a");
    ASSERT_TRUE(writer.ok()) << writer.status();
    ASSERT_TRUE((*writer)->Append(0, data).ok());
    ASSERT_TRUE((*writer)->Finish().ok());
  }

  std::string PartialPath(const std::string& data) const {
    return root_ + "/partial/" + DigestOf(data).substr(7);
  }

  std::string root_;
  BlobStoreLimits limits_;
};

// An open upload reserves its declared size, one left unfinished what it
// wrote (at least 4 KiB): the second 8000-byte upload fits only once the
// first stopped at 1000 bytes (4096 + 8000 <= 13000).
TEST_F(DiskQuotaTest, PartialUploadsTogetherStayUnderTheirQuota) {
  limits_.max_partial_bytes = 13000;
  auto store = Open();
  const std::string first(8000, 'f'), second(8000, 's');
  {
    auto open = store->OpenWriter(DigestOf(first), first.size(), "a");
    ASSERT_TRUE(open.ok()) << open.status();
    ASSERT_TRUE((*open)->Append(0, first.substr(0, 1000)).ok());
    auto refused = store->OpenWriter(DigestOf(second), second.size(), "b");
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
    EXPECT_THAT(refused.status().message(),
                HasSubstr("--max_partial_upload_bytes"));
    EXPECT_FALSE(std::ifstream(PartialPath(second)).good());
  }
  auto admitted = store->OpenWriter(DigestOf(second), second.size(), "b");
  EXPECT_TRUE(admitted.ok()) << admitted.status();
  // Empty uploads reserve a block each, so they cannot pile up for free.
  admitted->reset();  // 4096 + 4096 reserved now
  int empty = 0;
  while (empty < 10 &&
         store->OpenWriter(DigestOf(std::to_string(empty)), 0, "c").ok()) {
    ++empty;
  }
  EXPECT_EQ(empty, 1);
}

TEST_F(DiskQuotaTest, OneClientsPartialUploadsStayUnderItsQuota) {
  limits_.max_partial_bytes_per_client = 10000;
  auto store = Open();
  const std::string first(6000, 'f'), second(6000, 's');
  auto a_first = store->OpenWriter(DigestOf(first), first.size(), "a");
  ASSERT_TRUE(a_first.ok());
  auto a_second = store->OpenWriter(DigestOf(second), second.size(), "a");
  EXPECT_EQ(a_second.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(a_second.status().message(),
              HasSubstr("--max_partial_upload_bytes_per_client"));
  EXPECT_TRUE(store->OpenWriter(DigestOf(second), second.size(), "b").ok());
}

// Partial uploads found at start reserve what they hold.
TEST_F(DiskQuotaTest, PartialUploadsOfAnEarlierProcessCount) {
  limits_.max_partial_bytes = 12000;
  const std::string left(8000, 'l'), next(8000, 'n');
  {
    auto store = Open();
    auto writer = store->OpenWriter(DigestOf(left), left.size(), "a");
    ASSERT_TRUE((*writer)->Append(0, left.substr(0, 6000)).ok());
  }
  auto store = Open();
  EXPECT_EQ(store->OpenWriter(DigestOf(next), next.size(), "b").status().code(),
            absl::StatusCode::kResourceExhausted);
  // Its own resume takes over what it reserved.
  auto resumed = store->OpenWriter(DigestOf(left), left.size(), "a");
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ((*resumed)->committed_size(), 6000);
}

TEST_F(DiskQuotaTest, StalePartialUploadsExpireButOpenAndFreshOnesStay) {
  limits_.max_partial_bytes = 16000;
  auto store = Open();
  const std::string stale(6000, 's'), open(2000, 'o'), fresh(1000, 'f');
  for (const std::string* data : {&stale, &fresh}) {
    auto writer = store->OpenWriter(DigestOf(*data), data->size(), "a");
    ASSERT_TRUE((*writer)->Append(0, data->substr(0, 10)).ok());
  }
  auto writing = store->OpenWriter(DigestOf(open), open.size(), "a");
  ASSERT_TRUE(writing.ok());
  const std::string another(6000, 'n');  // 3 x 4096 + 6000 > 16000
  EXPECT_FALSE(store->OpenWriter(DigestOf(another), another.size(), "b").ok());
  for (const std::string* data : {&stale, &open}) {
    Age(PartialPath(*data), absl::Hours(2));
    Age(PartialPath(*data) + ".sha256", absl::Hours(2));
  }
  // A state record whose data file is gone (a crash) goes too.
  const std::string orphan = root_ + "/partial/" + std::string(64, 'e');
  std::ofstream(orphan + ".sha256") << "x";
  Age(orphan + ".sha256", absl::Hours(2));

  EXPECT_EQ(store->RemovePartialsBefore(absl::Now() - absl::Hours(1)), 2);
  EXPECT_FALSE(std::ifstream(PartialPath(stale)).good());
  EXPECT_FALSE(std::ifstream(PartialPath(stale) + ".sha256").good());
  EXPECT_FALSE(std::ifstream(orphan + ".sha256").good());
  EXPECT_TRUE(std::ifstream(PartialPath(open)).good());
  EXPECT_TRUE(std::ifstream(PartialPath(fresh)).good());
  EXPECT_EQ(store->Status(DigestOf(stale))->committed_size_bytes, 0);
  // What the stale upload reserved is free again.
  EXPECT_TRUE(store->OpenWriter(DigestOf(another), another.size(), "b").ok());
}

TEST_F(DiskQuotaTest, TheStateDirectoryQuotaCountsBlobsUploadsAndDatabase) {
  const std::string state_dir = testing::MakeTempDir();
  std::ofstream(state_dir + "/curvd.db") << std::string(3000, 'd');
  root_ = state_dir + "/blobs";
  limits_.max_state_bytes = 20000;
  auto store = Open(state_dir);
  const std::string blob(6000, 'b');
  Commit(*store, blob);  // 3000 + 6000
  EXPECT_TRUE(store->CheckSpace(11000).ok());
  const absl::Status full = store->CheckSpace(11001);
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(full.message(), HasSubstr("--max_state_bytes"));
  const std::string big(12000, 'g');
  auto refused = store->OpenWriter(DigestOf(big), big.size(), "a");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  // A blob that is stored needs no room: it is answered as stored.
  auto stored = store->OpenWriter(DigestOf(blob), blob.size(), "a");
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(*stored, nullptr);
  // Removing the blob frees its bytes; a reopened store counts what is there.
  EXPECT_EQ(store->Remove(DigestOf(blob)).value(), 6000);
  EXPECT_TRUE(store->OpenWriter(DigestOf(big), big.size(), "a").ok());
  Commit(*Open(state_dir), blob);
  EXPECT_FALSE(Open(state_dir)->CheckSpace(11001).ok());
}

TEST_F(DiskQuotaTest, UploadsLeaveTheFreeSpaceReserve) {
  limits_.min_free_disk_bytes = int64_t{1} << 62;
  auto store = Open();
  auto refused = store->OpenWriter(DigestOf("x"), 1, "a");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.status().message(), HasSubstr("--min_free_disk_bytes"));
}

TEST_F(DiskQuotaTest, CommittedBlobsAgeUntilAskedForAndCanBeRemoved) {
  auto store = Open();
  Commit(*store, "old");
  Commit(*store, "asked");
  const std::string old_path = store->PathOf(DigestOf("old")).value();
  const std::string asked_path = store->PathOf(DigestOf("asked")).value();
  Age(old_path, absl::Hours(2));
  Age(asked_path, absl::Hours(2));
  ASSERT_TRUE(store->Status(DigestOf("asked"))->complete);  // young again
  const auto before = store->CommittedBefore(absl::Now() - absl::Hours(1));
  EXPECT_THAT(before, Contains(DigestOf("old")));
  EXPECT_THAT(before, Not(Contains(DigestOf("asked"))));
  EXPECT_EQ(store->Remove(DigestOf("old")).value(), 3);
  EXPECT_FALSE(store->Status(DigestOf("old"))->complete);
  EXPECT_EQ(store->Remove(DigestOf("old")).value(), 0);
}

}  // namespace
}  // namespace curvd::server
