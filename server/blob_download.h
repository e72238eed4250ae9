// The server side of one ReadBlob stream: a committed blob read in chunks
// from an offset.
#ifndef CURVD_SERVER_BLOB_DOWNLOAD_H_
#define CURVD_SERVER_BLOB_DOWNLOAD_H_

#include <cstdint>
#include <fstream>

#include "absl/status/status.h"
#include "curvd/v1/curvd_service.pb.h"
#include "server/blob_store.h"

namespace curvd::server {

// Bytes per ReadBlob message: what the client uploads in (1 MiB), well under
// a client's receive limit.
inline constexpr int64_t kReadBlobChunkBytes = 1 << 20;

// Thread-compatible: one stream drives it, one call at a time.
class BlobDownload {
 public:
  // Opens `request.digest()` of `blobs` at request.read_offset().
  // InvalidArgument for a malformed digest or a negative offset, NotFound
  // for a blob not committed (never uploaded, or an upload not finished),
  // OutOfRange for an offset past its end, Internal if it cannot be read.
  absl::Status Open(const BlobStore& blobs,
                    const curvd::v1::ReadBlobRequest& request);

  // The next chunk (at most kReadBlobChunkBytes) into `*response`, or `*done`
  // (and nothing) after the last. Internal on an I/O error.
  absl::Status Next(curvd::v1::ReadBlobResponse* response, bool* done);

 private:
  std::ifstream in_;
  int64_t remaining_ = 0;
};

}  // namespace curvd::server

#endif  // CURVD_SERVER_BLOB_DOWNLOAD_H_
