#include "core/api/safetensors.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace curvd::core {
namespace {

using Json = nlohmann::json;

constexpr size_t kHeaderLengthBytes = 8;
// The reference implementation refuses headers above 100 MB; a larger one is an
// attack or a corrupt file, and parsing it would only waste memory.
constexpr uint64_t kMaxHeaderBytes = 100u << 20;
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

struct Entry {
  SafetensorsTensor tensor;
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
  uint64_t header_size = 0;
  for (size_t i = 0; i < kHeaderLengthBytes; ++i) {
    header_size |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i]))
                   << (8 * i);
  }
  const uint64_t available = bytes.size() - kHeaderLengthBytes;
  if (header_size > available) {
    return Invalid(absl::StrCat("header length ", header_size,
                                " is larger than the ", available,
                                " bytes after it"));
  }
  if (header_size > kMaxHeaderBytes) {
    return Invalid(absl::StrCat("header length ", header_size,
                                " exceeds the limit of ", kMaxHeaderBytes));
  }
  const char* header_begin = bytes.data() + kHeaderLengthBytes;
  if (JsonDepth(header_begin, header_size) > kMaxJsonDepth) {
    return Invalid("header JSON is nested too deeply");
  }
  const Json header = Json::parse(header_begin, header_begin + header_size,
                                  /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded()) return Invalid("header is not valid JSON");
  if (!header.is_object()) return Invalid("header is not a JSON object");

  const uint64_t data_size = available - header_size;
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

  const char* data = header_begin + header_size;
  std::vector<SafetensorsTensor> tensors;
  tensors.reserve(entries.size());
  // header.items() iterates keys in sorted order, so `entries` is sorted by
  // name.
  for (Entry& e : entries) {
    e.tensor.data.assign(data + e.begin, e.end - e.begin);
    tensors.push_back(std::move(e.tensor));
  }
  return tensors;
}

absl::StatusOr<std::vector<SafetensorsTensor>> ReadSafetensorsFile(
    const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad())
    return absl::DataLossError(absl::StrCat("error reading ", path));
  auto tensors = ParseSafetensors(contents.str());
  if (!tensors.ok()) {
    return absl::Status(tensors.status().code(),
                        absl::StrCat(path, ": ", tensors.status().message()));
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
