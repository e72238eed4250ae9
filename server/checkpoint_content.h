// What a checkpoint's bytes are, judged by their first bytes, so that a
// checkpoint whose content does not match its format is refused when it is
// created rather than failing every measurement of it.
#ifndef CURVD_SERVER_CHECKPOINT_CONTENT_H_
#define CURVD_SERVER_CHECKPOINT_CONTENT_H_

#include <string>

#include "absl/status/status.h"
#include "curvd/v1/resources.pb.h"

namespace curvd::server {

// OK when the file at `path` starts as `format` says: a TorchScript archive is
// a zip file ("PK\x03\x04"); a safetensors file is an 8-byte little-endian
// header length that fits the file, then '{'. Otherwise InvalidArgument naming
// checkpoint.format, the format (with " (the default for this run)" when
// `defaulted`) and what the bytes look like instead. NotFound when the file
// cannot be read. Only the first bytes are read: a file that starts right but
// is corrupt further on fails when a measurement loads it.
absl::Status CheckCheckpointContent(curvd::v1::CheckpointFormat format,
                                    bool defaulted, const std::string& path);

}  // namespace curvd::server

#endif  // CURVD_SERVER_CHECKPOINT_CONTENT_H_
