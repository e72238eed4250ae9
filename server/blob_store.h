// Content-addressed blobs (checkpoints, archives, shards) on local disk:
// <root>/sha256/<hex> once committed, <root>/partial/<hex> while uploading.
#ifndef CURVD_SERVER_BLOB_STORE_H_
#define CURVD_SERVER_BLOB_STORE_H_

#include <openssl/evp.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace curvd::server {

struct BlobState {
  std::string digest;
  int64_t committed_size_bytes = 0;
  bool complete = false;
};

class BlobStore;

// One upload of one blob, holding the exclusive right to append to its partial
// file. Thread-compatible: one stream drives it. Destroying it keeps the
// partial file, so that a later upload resumes where this one stopped.
class BlobWriter {
 public:
  ~BlobWriter();
  BlobWriter(const BlobWriter&) = delete;
  BlobWriter& operator=(const BlobWriter&) = delete;

  // Bytes in the partial file.
  int64_t committed_size() const { return committed_; }

  // Appends `data` at `offset`. FailedPrecondition (naming the committed size)
  // unless `offset` equals the committed size; InvalidArgument if the blob
  // would grow past its declared size; Internal on an I/O error.
  absl::Status Append(int64_t offset, absl::string_view data);

  // Checks the size and the SHA-256 of what was written and commits it
  // atomically (rename). InvalidArgument if short (the partial file is kept for
  // a resume) or "digest mismatch: expected X, got Y" (the partial file is
  // discarded).
  absl::StatusOr<BlobState> Finish();

 private:
  friend class BlobStore;
  BlobWriter(BlobStore* store, std::string digest, int64_t size);

  absl::Status Open();

  BlobStore* store_;
  std::string digest_;
  int64_t size_;
  int64_t committed_ = 0;
  std::FILE* file_ = nullptr;
  EVP_MD_CTX* sha_ = nullptr;
  bool finished_ = false;
};

class BlobStore {
 public:
  // A blob store rooted at `root` (created if missing) that accepts blobs of at
  // most `max_blob_bytes`. Removes nothing at start: partial files stay
  // resumable.
  static absl::StatusOr<std::unique_ptr<BlobStore>> Open(
      const std::string& root, int64_t max_blob_bytes);

  // InvalidArgument unless `digest` is "sha256:" followed by 64 lowercase hex.
  static absl::Status ValidateDigest(absl::string_view digest);

  // Committed size and completeness of `digest`: complete with the full size
  // when committed, else the bytes of an upload in progress (0 if none).
  // Thread-safe.
  absl::StatusOr<BlobState> Status(const std::string& digest) const;

  // Starts or resumes the upload of `digest` of `size_bytes`. Returns nullptr
  // when the blob is already committed. RESOURCE_EXHAUSTED if `size_bytes`
  // exceeds the limit (nothing is written), InvalidArgument for a bad digest or
  // negative size, Aborted while another upload of the same blob is open.
  // Thread-safe.
  absl::StatusOr<std::unique_ptr<BlobWriter>> OpenWriter(
      const std::string& digest, int64_t size_bytes);

  // The path of a committed blob; FailedPrecondition if it is not (yet)
  // committed. Thread-safe.
  absl::StatusOr<std::string> PathOf(const std::string& digest) const;

  // The directory holding committed blobs, for shard paths that must stay
  // inside it.
  std::string committed_dir() const;

  int64_t max_blob_bytes() const { return max_blob_bytes_; }

 private:
  friend class BlobWriter;
  BlobStore(std::string root, int64_t max_blob_bytes)
      : root_(std::move(root)), max_blob_bytes_(max_blob_bytes) {}

  std::string CommittedPath(absl::string_view digest) const;
  std::string PartialPath(absl::string_view digest) const;
  void Release(const std::string& digest);

  const std::string root_;
  const int64_t max_blob_bytes_;
  absl::Mutex mu_;
  // Digests with an open BlobWriter: one writer per blob, so appends never
  // interleave.
  absl::flat_hash_set<std::string> writing_ ABSL_GUARDED_BY(mu_);
};

}  // namespace curvd::server

#endif  // CURVD_SERVER_BLOB_STORE_H_
