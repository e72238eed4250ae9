#include "server/blob_download.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace curvd::server {

absl::Status BlobDownload::Open(const BlobStore& blobs,
                                const curvd::v1::ReadBlobRequest& request) {
  CURVD_RETURN_IF_ERROR(BlobStore::ValidateDigest(request.digest()));
  if (request.read_offset() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "read_offset must be >= 0, got ", request.read_offset()));
  }
  CURVD_ASSIGN_OR_RETURN(BlobState state, blobs.Status(request.digest()));
  if (!state.complete) {
    return absl::NotFoundError(
        absl::StrCat("blob ", request.digest(), " is not stored"));
  }
  if (request.read_offset() > state.committed_size_bytes) {
    return absl::OutOfRangeError(absl::StrCat(
        "read_offset ", request.read_offset(), " is past the end of blob ",
        request.digest(), " (", state.committed_size_bytes, " bytes)"));
  }
  CURVD_ASSIGN_OR_RETURN(std::string path, blobs.PathOf(request.digest()));
  in_.open(path, std::ios::binary);
  in_.seekg(request.read_offset());
  if (!in_) {
    return absl::InternalError(
        absl::StrCat("cannot read blob ", request.digest()));
  }
  remaining_ = state.committed_size_bytes - request.read_offset();
  return absl::OkStatus();
}

absl::Status BlobDownload::Next(curvd::v1::ReadBlobResponse* response,
                                bool* done) {
  *done = remaining_ == 0;
  if (*done) return absl::OkStatus();
  const int64_t length = std::min(kReadBlobChunkBytes, remaining_);
  std::string* data = response->mutable_data();
  data->resize(length);
  if (!in_.read(data->data(), length)) {
    return absl::InternalError("a blob ended before its committed size");
  }
  remaining_ -= length;
  return absl::OkStatus();
}

}  // namespace curvd::server
