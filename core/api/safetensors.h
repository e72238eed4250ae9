// The safetensors file format (8-byte little-endian header length, a JSON
// header of tensor names to dtype/shape/data_offsets, then the raw data), read
// and written without torch so that trainers and the server share one
// implementation.
#ifndef CURVD_CORE_API_SAFETENSORS_H_
#define CURVD_CORE_API_SAFETENSORS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace curvd::core {

// dtype names as in the format: "F64", "F32", "F16", "BF16", "I64", "I32",
// "I16", "I8", "U8", "BOOL".
struct SafetensorsTensor {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  std::string data;  // raw little-endian bytes, element count * dtype size
};

// A tensor of a safetensors file whose data has not been read.
struct SafetensorsEntry {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  uint64_t offset = 0;  // of its data, from the start of the file
  uint64_t bytes = 0;   // element count * dtype size
};

// The cap on a header's length unless a reader asks for less. The reference
// implementation allows 100 MB; a header of that size is no model this
// service measures (a thousand tensors take about 100 KB) and parsing one
// costs gigabytes.
constexpr uint64_t kMaxSafetensorsHeaderBytes = uint64_t{16} << 20;

// Bytes per element of a safetensors dtype, or 0 for an unknown dtype.
int SafetensorsDtypeSize(const std::string& dtype);

// Parses a whole file's bytes. InvalidArgument when the header is longer than
// kMaxSafetensorsHeaderBytes, is not valid JSON of the expected form, names a
// dtype it does not know, or its offsets or shapes do not agree with the data
// (a header that lies about sizes). Tensors come back sorted by name;
// "__metadata__" is skipped.
absl::StatusOr<std::vector<SafetensorsTensor>> ParseSafetensors(
    const std::string& bytes);

// The header of the safetensors file open at `fd`, checked as ParseSafetensors
// checks it against the file's size, reading nothing but the length and the
// header: InvalidArgument before anything more is read or allocated when the
// length exceeds `max_header_bytes`. Errors start with `name`; DataLoss for a
// failed read.
absl::StatusOr<std::vector<SafetensorsEntry>> ReadSafetensorsIndex(
    int fd, const std::string& name,
    uint64_t max_header_bytes = kMaxSafetensorsHeaderBytes);

// Reads and parses the file at `path`, each tensor's data read once into its
// string: errors as ReadSafetensorsIndex, NotFound if it cannot be opened.
absl::StatusOr<std::vector<SafetensorsTensor>> ReadSafetensorsFile(
    const std::string& path);

// A float64 ("F64") tensor of `values` (row-major, count = the product of
// `shape`, which the caller ensures).
SafetensorsTensor Float64SafetensorsTensor(std::string name,
                                           std::vector<int64_t> shape,
                                           const double* values, size_t count);

// Serialises tensors (data sizes must match dtype and shape, else
// InvalidArgument).
absl::StatusOr<std::string> SerializeSafetensors(
    const std::vector<SafetensorsTensor>& tensors);

}  // namespace curvd::core

#endif  // CURVD_CORE_API_SAFETENSORS_H_
