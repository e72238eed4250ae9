// Content-addressed blobs (checkpoints, archives, shards), uploaded in chunks
// and resumable, behind an interface so that the service can be tested against
// any implementation (DiskBlobStore is the one curvd serves from).
#ifndef CURVD_SERVER_BLOB_STORE_H_
#define CURVD_SERVER_BLOB_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace curvd::server {

struct BlobState {
  std::string digest;
  int64_t committed_size_bytes = 0;
  bool complete = false;
};

// One upload of one blob, holding the exclusive right to append to it.
// Thread-compatible: one stream drives it. Destroying it keeps what was
// appended, so that a later upload resumes where this one stopped.
class BlobWriter {
 public:
  virtual ~BlobWriter() = default;

  // Bytes appended so far, by this upload and the ones it resumes.
  virtual int64_t committed_size() const = 0;

  // Appends `data` at `offset`. FailedPrecondition (naming the committed size)
  // unless `offset` equals the committed size; InvalidArgument if the blob
  // would grow past its declared size; Internal on an I/O error.
  virtual absl::Status Append(int64_t offset, absl::string_view data) = 0;

  // Checks the size and the SHA-256 of what was written and commits it
  // atomically and durably. InvalidArgument if short (what was appended is
  // kept for a resume) or "digest mismatch: expected X, got Y" (it is
  // discarded).
  virtual absl::StatusOr<BlobState> Finish() = 0;
};

// All methods are thread-safe.
class BlobStore {
 public:
  virtual ~BlobStore() = default;

  // InvalidArgument unless `digest` is "sha256:" followed by 64 lowercase hex.
  static absl::Status ValidateDigest(absl::string_view digest);

  // Committed size and completeness of `digest`: complete with the full size
  // when committed, else the bytes of an upload to resume (0 if none).
  // InvalidArgument for a bad digest.
  virtual absl::StatusOr<BlobState> Status(const std::string& digest) const = 0;

  // Starts or resumes the upload of `digest` of `size_bytes`. Returns nullptr
  // when the blob is already committed. RESOURCE_EXHAUSTED if `size_bytes`
  // exceeds max_blob_bytes() (nothing is written), InvalidArgument for a bad
  // digest or negative size, Aborted while another upload of the same blob is
  // open. Costs O(1) in the bytes an earlier upload appended.
  virtual absl::StatusOr<std::unique_ptr<BlobWriter>> OpenWriter(
      const std::string& digest, int64_t size_bytes) = 0;

  // The local path of a committed blob; FailedPrecondition if it is not (yet)
  // committed.
  virtual absl::StatusOr<std::string> PathOf(
      const std::string& digest) const = 0;

  // The directory holding committed blobs, for shard paths that must stay
  // inside it.
  virtual std::string committed_dir() const = 0;

  // The largest blob an upload may declare.
  virtual int64_t max_blob_bytes() const = 0;
};

// Opens the blob store kept under a state directory, accepting blobs of at
// most `max_blob_bytes`.
using BlobStoreFactory =
    std::function<absl::StatusOr<std::unique_ptr<BlobStore>>(
        const std::string& state_dir, int64_t max_blob_bytes)>;

}  // namespace curvd::server

#endif  // CURVD_SERVER_BLOB_STORE_H_
