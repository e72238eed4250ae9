// The BlobStore on local disk: <root>/sha256/<hex> once committed;
// <root>/partial/<hex> while uploading, beside <hex>.sha256, the SHA-256 state
// of its first bytes, rewritten after each chunk so that a resume reads
// neither the bytes nor more than that record.
#ifndef CURVD_SERVER_DISK_BLOB_STORE_H_
#define CURVD_SERVER_DISK_BLOB_STORE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "server/blob_store.h"
#include "server/sha256_stream.h"

namespace curvd::server {

class DiskBlobStore : public BlobStore {
 public:
  // A blob store rooted at `root` (created if missing) that accepts blobs of at
  // most `max_blob_bytes`. Removes nothing at start: partial uploads stay
  // resumable. A partial upload's saved state is trusted only in the boot that
  // wrote it (`boot_id`, by default the kernel's): after a reboot the page
  // cache it describes may be lost, and the upload starts again from 0.
  static absl::StatusOr<std::unique_ptr<DiskBlobStore>> Open(
      const std::string& root, int64_t max_blob_bytes,
      std::string boot_id = CurrentBootId());

  // Opens <state_dir>/blobs: what curvd serves from.
  static BlobStoreFactory Factory();

  // /proc/sys/kernel/random/boot_id, or "" (never trusted) where it is
  // missing.
  static std::string CurrentBootId();

  absl::StatusOr<BlobState> Status(const std::string& digest) const override;
  absl::StatusOr<std::unique_ptr<BlobWriter>> OpenWriter(
      const std::string& digest, int64_t size_bytes) override;
  absl::StatusOr<std::string> PathOf(const std::string& digest) const override;
  std::string committed_dir() const override;
  int64_t max_blob_bytes() const override { return max_blob_bytes_; }

 private:
  friend class DiskBlobWriter;
  DiskBlobStore(std::string root, int64_t max_blob_bytes, std::string boot_id)
      : root_(std::move(root)),
        max_blob_bytes_(max_blob_bytes),
        boot_id_(std::move(boot_id)) {}

  std::string CommittedPath(absl::string_view digest) const;
  std::string PartialPath(absl::string_view digest) const;
  std::string StatePath(absl::string_view digest) const;
  // The saved state of a partial upload of `digest` if it can be resumed: it
  // was written in this boot and the partial file holds at least its bytes.
  std::optional<Sha256Stream> ResumableState(absl::string_view digest) const;
  // The record that ResumableState reads.
  std::string StateRecord(const Sha256Stream& state) const;
  // Ends the upload of `digest` that held the right to append.
  void Release(const std::string& digest);

  const std::string root_;
  const int64_t max_blob_bytes_;
  const std::string boot_id_;
  absl::Mutex mu_;
  // Digests with an open writer: one writer per blob, so appends never
  // interleave.
  absl::flat_hash_set<std::string> writing_ ABSL_GUARDED_BY(mu_);
};

}  // namespace curvd::server

#endif  // CURVD_SERVER_DISK_BLOB_STORE_H_
