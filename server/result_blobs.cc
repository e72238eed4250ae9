#include "server/result_blobs.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "core/api/safetensors.h"
#include "server/sha256_stream.h"

namespace curvd::server {
namespace {

// Commits `bytes` under their digest unless the store holds them already.
absl::StatusOr<std::string> Put(const std::string& bytes, BlobStore* blobs) {
  Sha256Stream sha;
  sha.Update(bytes);
  const std::string digest = sha.Digest();
  CURVD_ASSIGN_OR_RETURN(std::unique_ptr<BlobWriter> writer,
                         blobs->OpenWriter(digest, bytes.size(), kServerClient));
  if (writer == nullptr) return digest;  // committed before
  // A partial blob left by a crash restarts from where it stopped.
  const int64_t from = writer->committed_size();
  CURVD_RETURN_IF_ERROR(
      writer->Append(from, absl::string_view(bytes).substr(from)));
  CURVD_RETURN_IF_ERROR(writer->Finish().status());
  return digest;
}

}  // namespace

int64_t GopEigenvectorFloatsInBlob(int64_t max_blob_bytes) {
  // k <= k x M, so the eigenvalues add at most as many floats again; the
  // header of two tensors is a few hundred bytes.
  constexpr int64_t kHeaderBytes = 1024;
  constexpr int64_t kBytesPerEntry = 2 * int64_t{sizeof(double)};
  return std::max<int64_t>(1,
                           (max_blob_bytes - kHeaderBytes) / kBytesPerEntry);
}

absl::StatusOr<ResultBlobs> StoreResultBlobs(
    const core::MeasurementResult& result, BlobStore* blobs) {
  ResultBlobs stored;
  const core::GopMethod* gop = result.Find<core::GopMethod>();
  if (gop == nullptr || gop->result.num_eigenvectors == 0) return stored;
  const core::GopResult& r = gop->result;
  const int64_t rows = r.num_eigenvectors;
  const int64_t cols = r.num_parameters;
  if (static_cast<int64_t>(r.eigenvectors.size()) != rows * cols ||
      static_cast<int64_t>(r.metrics.top_eigenvalues.size()) < rows) {
    return absl::InternalError(absl::StrCat(
        "gop returned ", r.eigenvectors.size(), " eigenvector entries and ",
        r.metrics.top_eigenvalues.size(), " top eigenvalues for ", rows,
        " eigenvectors of ", cols, " parameters"));
  }
  CURVD_ASSIGN_OR_RETURN(
      const std::string bytes,
      core::SerializeSafetensors(
          {core::Float64SafetensorsTensor("eigenvalues", {rows},
                                          r.metrics.top_eigenvalues.data(),
                                          rows),
           core::Float64SafetensorsTensor("eigenvectors", {rows, cols},
                                          r.eigenvectors.data(),
                                          r.eigenvectors.size())}));
  absl::StatusOr<std::string> digest = Put(bytes, blobs);
  if (!digest.ok()) {
    return absl::Status(digest.status().code(),
                        absl::StrCat("the gop eigenvectors could not be stored "
                                     "as a blob: ",
                                     digest.status().message()));
  }
  stored.gop = GopEigenvectorBlob{*std::move(digest), rows, cols};
  return stored;
}

void ReferenceResultBlobs(const ResultBlobs& blobs,
                          curvd::v1::Measurement* measurement) {
  if (!blobs.gop.has_value()) return;
  curvd::v1::GopResult* gop = measurement->spec().has_plan()
                                  ? measurement->mutable_plan()->mutable_gop()
                                  : measurement->mutable_gop();
  gop->set_eigenvectors_blob_digest(blobs.gop->digest);
  gop->add_eigenvectors_shape(blobs.gop->rows);
  gop->add_eigenvectors_shape(blobs.gop->cols);
}

}  // namespace curvd::server
