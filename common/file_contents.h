// Whole small files (keys, certificates, token lists, archives) as bytes.
#ifndef CURVD_COMMON_FILE_CONTENTS_H_
#define CURVD_COMMON_FILE_CONTENTS_H_

#include <string>

#include "absl/status/statusor.h"

namespace curvd::common {

// The bytes of the file at `path`. NotFound ("cannot open PATH") when it
// cannot be opened, DataLoss when a read fails half way. Thread-safe.
absl::StatusOr<std::string> ReadFileContents(const std::string& path);

}  // namespace curvd::common

#endif  // CURVD_COMMON_FILE_CONTENTS_H_
