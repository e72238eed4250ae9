// The safetensors file `curvctl export` writes for a gop measurement: its
// arrays as float64 tensors that numpy, torch and safetensors read.
#ifndef CURVD_CLIENT_GOP_EXPORT_H_
#define CURVD_CLIENT_GOP_EXPORT_H_

#include <string>

#include "absl/status/statusor.h"
#include "curvd/v1/resources.pb.h"

namespace curvd::client {

// The gop result of `measurement` (its own, or its plan's).
// FailedPrecondition unless it SUCCEEDED; InvalidArgument when it measured
// no gop.
absl::StatusOr<curvd::v1::GopResult> GopResultOf(
    const curvd::v1::Measurement& measurement);

// The bytes of a safetensors file of `gop`, all F64:
//   "eigenvalues" [rank]: the non-zero spectrum, descending;
//   "top_eigenvalues" [k]: metrics.top_eigenvalues;
//   "eigenvectors" [num_eigenvectors, M]: row j the unit eigenvector of
//     top_eigenvalues[j], when the result has eigenvectors;
//   "layers.<name>.eigenvalues" [rank]: each per_layer group's spectrum.
// `blob` holds the bytes of gop.eigenvectors_blob_digest (the server's
// safetensors file of them), "" when the result has none or carries them in
// the message (results stored before they became blobs). InvalidArgument
// when the blob or the message's eigenvectors do not have the shape the
// result states.
absl::StatusOr<std::string> GopExportFile(const curvd::v1::GopResult& gop,
                                          const std::string& blob);

}  // namespace curvd::client

#endif  // CURVD_CLIENT_GOP_EXPORT_H_
