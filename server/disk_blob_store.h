// The BlobStore on local disk: <root>/sha256/<hex> once committed;
// <root>/partial/<hex> while uploading, beside <hex>.sha256, the SHA-256 state
// of its first bytes, rewritten after each chunk so that a resume reads
// neither the bytes nor more than that record. The bytes it holds are counted
// in memory (a scan at open), so that quota checks read no directory.
#ifndef CURVD_SERVER_DISK_BLOB_STORE_H_
#define CURVD_SERVER_DISK_BLOB_STORE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "server/blob_store.h"
#include "server/sha256_stream.h"

namespace curvd::server {

class DiskBlobStore : public BlobStore {
 public:
  // A blob store rooted at `root` (created if missing) within `limits`; the
  // regular files directly in `database_dir` (if not empty: the database
  // beside the blobs) count toward max_state_bytes too. Removes nothing at
  // start: partial uploads stay resumable until RemovePartialsBefore. A
  // partial upload's saved state is trusted only in the boot that wrote it
  // (`boot_id`, by default the kernel's): after a reboot the page cache it
  // describes may be lost, and the upload starts again from 0. Partial
  // uploads found at start reserve what they hold and belong to no client.
  static absl::StatusOr<std::unique_ptr<DiskBlobStore>> Open(
      const std::string& root, const BlobStoreLimits& limits,
      std::string boot_id = CurrentBootId(), std::string database_dir = "");

  // Opens <state_dir>/blobs, counting the files of state_dir toward
  // max_state_bytes: what curvd serves from.
  static BlobStoreFactory Factory();

  // /proc/sys/kernel/random/boot_id, or "" (never trusted) where it is
  // missing.
  static std::string CurrentBootId();

  absl::StatusOr<BlobState> Status(const std::string& digest) const override;
  absl::StatusOr<std::unique_ptr<BlobWriter>> OpenWriter(
      const std::string& digest, int64_t size_bytes,
      const std::string& client) override;
  absl::StatusOr<std::string> PathOf(const std::string& digest) const override;
  std::string committed_dir() const override;
  int64_t max_blob_bytes() const override { return limits_.max_blob_bytes; }
  absl::Status CheckSpace(int64_t more_bytes) const override;
  absl::StatusOr<int64_t> Remove(const std::string& digest) override;
  std::vector<std::string> CommittedBefore(absl::Time before) const override;
  int RemovePartialsBefore(absl::Time before) override;

 private:
  friend class DiskBlobWriter;
  // A partial upload's share of the quotas.
  struct Partial {
    int64_t reserved = 0;
    std::string client;  // "" for one found at start
    bool open = false;   // a writer holds the right to append
  };

  DiskBlobStore(std::string root, const BlobStoreLimits& limits,
                std::string boot_id, std::string database_dir)
      : root_(std::move(root)),
        limits_(limits),
        boot_id_(std::move(boot_id)),
        database_dir_(std::move(database_dir)) {}

  std::string CommittedPath(absl::string_view digest) const;
  std::string PartialPath(absl::string_view digest) const;
  std::string StatePath(absl::string_view digest) const;
  // The saved state of a partial upload of `digest` if it can be resumed: it
  // was written in this boot and the partial file holds at least its bytes.
  std::optional<Sha256Stream> ResumableState(absl::string_view digest) const;
  // The record that ResumableState reads.
  std::string StateRecord(const Sha256Stream& state) const;
  // Reserves `reserved` bytes for an open upload of `digest` by `client`.
  absl::Status ReserveLocked(const std::string& digest, int64_t reserved,
                             const std::string& client)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CheckSpaceLocked(int64_t more_bytes) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sets or (nullopt) forgets the partial upload of `digest`, keeping the
  // totals.
  void SetPartialLocked(const std::string& digest,
                        std::optional<Partial> partial)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends the upload of `digest` that held the right to append: it keeps
  // `bytes_kept` on disk, or nothing (nullopt: committed, discarded, never
  // begun).
  void Release(const std::string& digest, std::optional<int64_t> bytes_kept);
  // Counts a blob just committed.
  void AddCommitted(int64_t bytes);

  const std::string root_;
  const BlobStoreLimits limits_;
  const std::string boot_id_;
  const std::string database_dir_;
  mutable absl::Mutex mu_;
  // The partial uploads on disk or open, by digest: one writer per blob, so
  // appends never interleave.
  absl::flat_hash_map<std::string, Partial> partials_ ABSL_GUARDED_BY(mu_);
  int64_t partial_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<std::string, int64_t> client_bytes_ ABSL_GUARDED_BY(mu_);
  int64_t committed_bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace curvd::server

#endif  // CURVD_SERVER_DISK_BLOB_STORE_H_
