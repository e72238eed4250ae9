// The arrays of a result too large for its measurement's row, stored as
// content-addressed blobs (the blob store uploads go to) before the
// measurement is recorded SUCCEEDED, and referenced from the stored result:
// gop's eigenvectors (docs/adr/0013). A crash between the two leaves an
// unreferenced blob, never a result whose blob is missing.
#ifndef CURVD_SERVER_RESULT_BLOBS_H_
#define CURVD_SERVER_RESULT_BLOBS_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "core/api/measurement.h"
#include "curvd/v1/resources.pb.h"
#include "server/blob_store.h"

namespace curvd::server {

// A committed safetensors blob of a gop result: "eigenvectors" F64 [rows,
// cols] (row-major) and "eigenvalues" F64 [rows].
struct GopEigenvectorBlob {
  std::string digest;
  int64_t rows = 0;  // num_eigenvectors
  int64_t cols = 0;  // M
};

// The most eigenvector entries (k x M) whose blob, with its k eigenvalues and
// header, fits in `max_blob_bytes`: (max_blob_bytes - 1 KiB) / 16, at least 1.
// The server lowers --gop_max_eigenvector_floats to it, so that a request
// whose blob could not be stored is refused before any work.
int64_t GopEigenvectorFloatsInBlob(int64_t max_blob_bytes);

// The blobs of one result, by the kind whose arrays they hold.
struct ResultBlobs {
  std::optional<GopEigenvectorBlob> gop;
};

// Writes the arrays of `result` that travel as blobs into `blobs`, durably (a
// committed blob), and returns their references: gop's eigenvectors, with
// their eigenvalues, when it has any. Bytes already stored are not written
// again. The blob store's errors: ResourceExhausted past its max_blob_bytes,
// Internal on an I/O error.
absl::StatusOr<ResultBlobs> StoreResultBlobs(
    const core::MeasurementResult& result, BlobStore* blobs);

// Records `blobs` in the results of their kinds in `measurement` (its own
// result, or its plan's when the spec is a plan), which ApplyResult wrote.
void ReferenceResultBlobs(const ResultBlobs& blobs,
                          curvd::v1::Measurement* measurement);

}  // namespace curvd::server

#endif  // CURVD_SERVER_RESULT_BLOBS_H_
