// Content-addressed blobs (checkpoints, archives, shards), uploaded in chunks
// and resumable, behind an interface so that the service can be tested against
// any implementation (DiskBlobStore is the one curvd serves from).
#ifndef CURVD_SERVER_BLOB_STORE_H_
#define CURVD_SERVER_BLOB_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace curvd::server {

// How much a blob store may hold; 0 turns off the two last.
struct BlobStoreLimits {
  // The largest blob an upload may declare.
  int64_t max_blob_bytes = int64_t{1} << 30;
  // Bytes that partial uploads may reserve, all together and those of one
  // client: an open upload reserves its declared size, one left unfinished
  // what it wrote, and each at least kMinPartialReservation.
  int64_t max_partial_bytes = int64_t{4} << 30;
  int64_t max_partial_bytes_per_client = int64_t{2} << 30;
  // The state directory's bytes: committed blobs, partial uploads (what they
  // reserve) and the database beside them.
  int64_t max_state_bytes = 0;
  // Free bytes that uploads leave on the state directory's file system.
  int64_t min_free_disk_bytes = 0;
};

// What the smallest partial upload reserves: a file system block, so that
// empty uploads cannot pile up without bound.
inline constexpr int64_t kMinPartialReservation = 4096;

// The client that the server's own uploads (result arrays) are charged to; no
// gRPC peer is named so.
inline constexpr char kServerClient[] = "curvd";

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
  // when committed (which makes it young again for CommittedBefore), else the
  // bytes of an upload to resume (0 if none). InvalidArgument for a bad
  // digest.
  virtual absl::StatusOr<BlobState> Status(const std::string& digest) const = 0;

  // Starts or resumes the upload of `digest` of `size_bytes` for `client`
  // (whose partial uploads max_partial_bytes_per_client bounds). Returns
  // nullptr when the blob is already committed. RESOURCE_EXHAUSTED, naming the
  // limit, if `size_bytes` exceeds max_blob_bytes, if reserving it would pass
  // a partial-upload quota, or if CheckSpace refuses it (nothing is written);
  // InvalidArgument for a bad digest or negative size, Aborted while another
  // upload of the same blob is open. Costs O(1) in the bytes an earlier upload
  // appended.
  virtual absl::StatusOr<std::unique_ptr<BlobWriter>> OpenWriter(
      const std::string& digest, int64_t size_bytes,
      const std::string& client) = 0;

  // RESOURCE_EXHAUSTED, naming the limit, when `more_bytes` more would pass
  // max_state_bytes or leave less than min_free_disk_bytes free.
  virtual absl::Status CheckSpace(int64_t more_bytes) const = 0;

  // Removes the committed blob `digest` and returns its size (0 if it was not
  // there). The caller makes sure that nothing references it.
  virtual absl::StatusOr<int64_t> Remove(const std::string& digest) = 0;

  // The committed blobs last written or asked for (Status, OpenWriter) before
  // `before`: the candidates of a sweep for blobs that nothing references.
  virtual std::vector<std::string> CommittedBefore(absl::Time before) const = 0;

  // Removes the partial uploads without an open writer that were last
  // appended to before `before`; returns how many.
  virtual int RemovePartialsBefore(absl::Time before) = 0;

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

// Opens the blob store kept under a state directory, within `limits`.
using BlobStoreFactory =
    std::function<absl::StatusOr<std::unique_ptr<BlobStore>>(
        const std::string& state_dir, const BlobStoreLimits& limits)>;

}  // namespace curvd::server

#endif  // CURVD_SERVER_BLOB_STORE_H_
