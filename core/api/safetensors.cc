#include "core/api/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/api/data_roots.h"
#include "nlohmann/json.hpp"

namespace curvd::core {
namespace {

using Json = nlohmann::json;

constexpr size_t kHeaderLengthBytes = 8;
// A valid header nests three deep (object, tensor entry, shape array). Deeper
// input is rejected before parsing because the JSON parser recurses once per
// level.
constexpr int kMaxJsonDepth = 4;

absl::Status Invalid(const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("safetensors: ", what));
}

// Returns the deepest nesting of arrays and objects in `text`, not counting
// brackets inside strings.
int JsonDepth(const char* text, size_t size) {
  int depth = 0;
  int max_depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < size; ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      max_depth = std::max(max_depth, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return max_depth;
}

// Element count of `shape` times `element_size`, or an error when a dimension
// is negative or the product does not fit in 63 bits.
absl::StatusOr<uint64_t> ByteSize(const std::string& name,
                                  const std::vector<int64_t>& shape,
                                  int element_size) {
  uint64_t bytes = static_cast<uint64_t>(element_size);
  for (int64_t dim : shape) {
    if (dim < 0) {
      return Invalid(
          absl::StrCat("tensor '", name, "' has a negative dimension"));
    }
    if (__builtin_mul_overflow(bytes, static_cast<uint64_t>(dim), &bytes) ||
        bytes > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Invalid(absl::StrCat("tensor '", name, "' has a shape [",
                                  absl::StrJoin(shape, ", "),
                                  "] whose size overflows"));
    }
  }
  return bytes;
}

// A header entry, its offsets relative to the data buffer.
struct Entry {
  SafetensorsEntry tensor;
  uint64_t begin = 0;
  uint64_t end = 0;
};

absl::StatusOr<Entry> ParseEntry(const std::string& name, const Json& value,
                                 uint64_t data_size) {
  if (!value.is_object()) {
    return Invalid(absl::StrCat("entry '", name, "' is not an object"));
  }
  Entry entry;
  entry.tensor.name = name;
  auto dtype = value.find("dtype");
  if (dtype == value.end() || !dtype->is_string()) {
    return Invalid(absl::StrCat("tensor '", name, "' has no dtype string"));
  }
  entry.tensor.dtype = dtype->get<std::string>();
  const int element_size = SafetensorsDtypeSize(entry.tensor.dtype);
  if (element_size == 0) {
    return Invalid(absl::StrCat("tensor '", name, "' has unknown dtype '",
                                entry.tensor.dtype, "'"));
  }
  auto shape = value.find("shape");
  if (shape == value.end() || !shape->is_array()) {
    return Invalid(absl::StrCat("tensor '", name, "' has no shape array"));
  }
  for (const Json& dim : *shape) {
    if (!dim.is_number_unsigned() ||
        dim.get<uint64_t>() >
            static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Invalid(absl::StrCat(
          "tensor '", name,
          "' has a shape entry that is not a non-negative integer"));
    }
    entry.tensor.shape.push_back(static_cast<int64_t>(dim.get<uint64_t>()));
  }
  auto offsets = value.find("data_offsets");
  if (offsets == value.end() || !offsets->is_array() || offsets->size() != 2 ||
      !(*offsets)[0].is_number_unsigned() ||
      !(*offsets)[1].is_number_unsigned()) {
    return Invalid(absl::StrCat(
        "tensor '", name,
        "' needs data_offsets [begin, end] of non-negative integers"));
  }
  entry.begin = (*offsets)[0].get<uint64_t>();
  entry.end = (*offsets)[1].get<uint64_t>();
  if (entry.begin > entry.end || entry.end > data_size) {
    return Invalid(absl::StrCat("tensor '", name, "' has data_offsets [",
                                entry.begin, ", ", entry.end, "] outside the ",
                                data_size, " data bytes"));
  }
  auto bytes = ByteSize(name, entry.tensor.shape, element_size);
  if (!bytes.ok()) return bytes.status();
  if (*bytes != entry.end - entry.begin) {
    return Invalid(absl::StrCat(
        "tensor '", name, "' of dtype ", entry.tensor.dtype, " and shape [",
        absl::StrJoin(entry.tensor.shape, ", "), "] needs ", *bytes,
        " bytes but its data_offsets span ", entry.end - entry.begin));
  }
  return entry;
}

// The length the first 8 bytes give, checked against the `available` bytes
// after them and against `max_header_bytes`.
absl::StatusOr<uint64_t> HeaderLength(const char* length_bytes,
                                      uint64_t available,
                                      uint64_t max_header_bytes) {
  uint64_t header_size = 0;
  for (size_t i = 0; i < kHeaderLengthBytes; ++i) {
    header_size |=
        static_cast<uint64_t>(static_cast<unsigned char>(length_bytes[i]))
        << (8 * i);
  }
  if (header_size > available) {
    return Invalid(absl::StrCat("header length ", header_size,
                                " is larger than the ", available,
                                " bytes after it"));
  }
  if (header_size > max_header_bytes) {
    return Invalid(absl::StrCat("header length ", header_size,
                                " exceeds the limit of ", max_header_bytes,
                                " bytes"));
  }
  return header_size;
}

// The entries of the JSON header `text`, sorted by name, their file offsets
// set; `data_size` bytes follow the header.
absl::StatusOr<std::vector<SafetensorsEntry>> ParseHeader(
    const char* text, uint64_t size, uint64_t data_size) {
  if (JsonDepth(text, size) > kMaxJsonDepth) {
    return Invalid("header JSON is nested too deeply");
  }
  const Json header = Json::parse(text, text + size,
                                  /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded()) return Invalid("header is not valid JSON");
  if (!header.is_object()) return Invalid("header is not a JSON object");

  std::vector<Entry> entries;
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") continue;
    auto entry = ParseEntry(name, value, data_size);
    if (!entry.ok()) return entry.status();
    entries.push_back(std::move(*entry));
  }

  // The format requires the tensors to tile the data buffer exactly: no gaps,
  // no overlaps, nothing left over. Checking this catches headers that lie.
  std::vector<const Entry*> by_offset;
  for (const Entry& e : entries) by_offset.push_back(&e);
  std::stable_sort(
      by_offset.begin(), by_offset.end(), [](const Entry* a, const Entry* b) {
        return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
      });
  uint64_t expected_begin = 0;
  for (const Entry* e : by_offset) {
    if (e->begin != expected_begin) {
      return Invalid(
          absl::StrCat("tensor '", e->tensor.name, "' starts at data offset ",
                       e->begin, " but the previous tensor ends at ",
                       expected_begin, " (offsets must be contiguous)"));
    }
    expected_begin = e->end;
  }
  if (expected_begin != data_size) {
    return Invalid(absl::StrCat("tensors cover ", expected_begin,
                                " data bytes but the file has ", data_size));
  }
  // header.items() iterates keys in sorted order, so `entries` is sorted by
  // name.
  std::vector<SafetensorsEntry> out;
  out.reserve(entries.size());
  const uint64_t data_start = kHeaderLengthBytes + size;
  for (Entry& e : entries) {
    e.tensor.offset = data_start + e.begin;
    e.tensor.bytes = e.end - e.begin;
    out.push_back(std::move(e.tensor));
  }
  return out;
}

// `status` with "NAME: " before its message.
absl::Status Named(const std::string& name, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat(name, ": ", status.message()));
}

}  // namespace

int SafetensorsDtypeSize(const std::string& dtype) {
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16")
    return 2;
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL") return 1;
  return 0;
}

absl::StatusOr<std::vector<SafetensorsTensor>> ParseSafetensors(
    const std::string& bytes) {
  if (bytes.size() < kHeaderLengthBytes) {
    return Invalid(
        absl::StrCat("file of ", bytes.size(),
                     " bytes is too short for the 8-byte header length"));
  }
  const uint64_t available = bytes.size() - kHeaderLengthBytes;
  absl::StatusOr<uint64_t> header_size =
      HeaderLength(bytes.data(), available, kMaxSafetensorsHeaderBytes);
  if (!header_size.ok()) return header_size.status();
  absl::StatusOr<std::vector<SafetensorsEntry>> entries =
      ParseHeader(bytes.data() + kHeaderLengthBytes, *header_size,
                  available - *header_size);
  if (!entries.ok()) return entries.status();
  std::vector<SafetensorsTensor> tensors;
  tensors.reserve(entries->size());
  for (SafetensorsEntry& e : *entries) {
    tensors.push_back({std::move(e.name), std::move(e.dtype),
                       std::move(e.shape), bytes.substr(e.offset, e.bytes)});
  }
  return tensors;
}

absl::StatusOr<std::vector<SafetensorsEntry>> ReadSafetensorsIndex(
    int fd, const std::string& name, uint64_t max_header_bytes) {
  absl::StatusOr<uint64_t> file_size = FileSize(fd, name);
  if (!file_size.ok()) return file_size.status();
  if (*file_size < kHeaderLengthBytes) {
    return Named(name, Invalid(absl::StrCat(
                           "file of ", *file_size,
                           " bytes is too short for the 8-byte header length")));
  }
  char length_bytes[kHeaderLengthBytes];
  absl::Status read =
      ReadExactly(fd, 0, kHeaderLengthBytes, length_bytes, name);
  if (!read.ok()) return read;
  const uint64_t available = *file_size - kHeaderLengthBytes;
  absl::StatusOr<uint64_t> header_size =
      HeaderLength(length_bytes, available, max_header_bytes);
  if (!header_size.ok()) return Named(name, header_size.status());
  std::string header(*header_size, '\0');
  read = ReadExactly(fd, kHeaderLengthBytes, *header_size, header.data(), name);
  if (!read.ok()) return read;
  absl::StatusOr<std::vector<SafetensorsEntry>> entries =
      ParseHeader(header.data(), header.size(), available - *header_size);
  if (!entries.ok()) return Named(name, entries.status());
  return entries;
}

absl::StatusOr<std::vector<SafetensorsTensor>> ReadSafetensorsFile(
    const std::string& path) {
  absl::StatusOr<FileDescriptor> fd = OpenDataFile(path, {});
  if (!fd.ok()) return fd.status();
  absl::StatusOr<std::vector<SafetensorsEntry>> entries =
      ReadSafetensorsIndex(fd->get(), path);
  if (!entries.ok()) return entries.status();
  std::vector<SafetensorsTensor> tensors;
  tensors.reserve(entries->size());
  for (SafetensorsEntry& e : *entries) {
    std::string data(e.bytes, '\0');
    absl::Status read = ReadExactly(fd->get(), e.offset, e.bytes, data.data(), path);
    if (!read.ok()) return read;
    tensors.push_back({std::move(e.name), std::move(e.dtype),
                       std::move(e.shape), std::move(data)});
  }
  return tensors;
}

SafetensorsTensor Float64SafetensorsTensor(std::string name,
                                           std::vector<int64_t> shape,
                                           const double* values, size_t count) {
  SafetensorsTensor t;
  t.name = std::move(name);
  t.dtype = "F64";
  t.shape = std::move(shape);
  t.data.assign(reinterpret_cast<const char*>(values), count * sizeof(double));
  return t;
}

absl::StatusOr<std::string> SerializeSafetensors(
    const std::vector<SafetensorsTensor>& tensors) {
  std::vector<const SafetensorsTensor*> sorted;
  for (const SafetensorsTensor& t : tensors) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(),
            [](const SafetensorsTensor* a, const SafetensorsTensor* b) {
              return a->name < b->name;
            });
  Json header = Json::object();
  uint64_t offset = 0;
  for (size_t i = 0; i < sorted.size(); ++i) {
    const SafetensorsTensor& t = *sorted[i];
    if (t.name.empty() || t.name == "__metadata__") {
      return Invalid(absl::StrCat("invalid tensor name '", t.name, "'"));
    }
    if (i > 0 && sorted[i - 1]->name == t.name) {
      return Invalid(absl::StrCat("duplicate tensor name '", t.name, "'"));
    }
    const int element_size = SafetensorsDtypeSize(t.dtype);
    if (element_size == 0) {
      return Invalid(absl::StrCat("tensor '", t.name, "' has unknown dtype '",
                                  t.dtype, "'"));
    }
    auto bytes = ByteSize(t.name, t.shape, element_size);
    if (!bytes.ok()) return bytes.status();
    if (*bytes != t.data.size()) {
      return Invalid(absl::StrCat("tensor '", t.name, "' of dtype ", t.dtype,
                                  " and shape [", absl::StrJoin(t.shape, ", "),
                                  "] needs ", *bytes, " bytes but has ",
                                  t.data.size()));
    }
    header[t.name] = {{"dtype", t.dtype},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + *bytes}}};
    offset += *bytes;
  }
  std::string header_text;
  try {
    header_text = header.dump();
  } catch (const Json::exception& e) {
    // dump() refuses names that are not valid UTF-8, which JSON cannot carry.
    return Invalid(absl::StrCat("cannot write header: ", e.what()));
  }
  // Readers that map the file expect the data to start 8-byte aligned; the
  // format pads the header with spaces for that.
  header_text.append((8 - header_text.size() % 8) % 8, ' ');
  std::string out;
  out.reserve(kHeaderLengthBytes + header_text.size() + offset);
  const uint64_t header_size = header_text.size();
  for (size_t i = 0; i < kHeaderLengthBytes; ++i) {
    out.push_back(static_cast<char>((header_size >> (8 * i)) & 0xff));
  }
  out += header_text;
  for (const SafetensorsTensor* t : sorted) out += t->data;
  return out;
}

}  // namespace curvd::core
