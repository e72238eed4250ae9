// Fuzzes the safetensors reader (core/api/safetensors.h) with whole files.
// Contract held, beyond no crash and no sanitizer report: ParseSafetensors and
// ReadSafetensorsIndex (through a memfd) accept the same files; an accepted
// file's entries lie after its header and inside its bytes, tile the data
// with no gap or overlap, each spanning its shape times its dtype's size, and
// come sorted by name; and what SerializeSafetensors writes of them (it
// refuses only an empty name) parses back to the same tensors.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/api/data_roots.h"
#include "core/api/safetensors.h"
#include "fuzz/fuzz_check.h"

namespace curvd::fuzz {
namespace {

using core::SafetensorsEntry;
using core::SafetensorsTensor;

// The index ReadSafetensorsIndex gives of `bytes`, read from a memfd.
absl::StatusOr<std::vector<SafetensorsEntry>> IndexOf(
    const std::string& bytes) {
  core::FileDescriptor fd(memfd_create("safetensors_fuzz", MFD_CLOEXEC));
  FUZZ_CHECK(fd.valid());
  FUZZ_CHECK(write(fd.get(), bytes.data(), bytes.size()) ==
             static_cast<ssize_t>(bytes.size()));
  return core::ReadSafetensorsIndex(fd.get(), "fuzz");
}

uint64_t ElementCount(const std::vector<int64_t>& shape) {
  uint64_t count = 1;
  for (int64_t dim : shape) count *= static_cast<uint64_t>(dim);
  return count;
}

bool SameTensors(const std::vector<SafetensorsTensor>& a,
                 const std::vector<SafetensorsTensor>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].name != b[i].name || a[i].dtype != b[i].dtype ||
        a[i].shape != b[i].shape || a[i].data != b[i].data)
      return false;
  }
  return true;
}

void CheckIndex(const std::string& bytes,
                const std::vector<SafetensorsEntry>& index,
                const std::vector<SafetensorsTensor>& tensors) {
  FUZZ_CHECK(index.size() == tensors.size());
  uint64_t header_length = 0;
  for (int i = 0; i < 8; ++i)
    header_length |= uint64_t{static_cast<unsigned char>(bytes[i])} << (8 * i);
  uint64_t next = 8 + header_length;  // where the next tensor must start
  std::vector<const SafetensorsEntry*> by_offset;
  for (size_t i = 0; i < index.size(); ++i) {
    const SafetensorsEntry& e = index[i];
    FUZZ_CHECK(e.name != "__metadata__");
    FUZZ_CHECK(i == 0 || index[i - 1].name < e.name);
    FUZZ_CHECK(e.offset >= 8 + header_length);
    FUZZ_CHECK(e.offset <= bytes.size() && e.bytes <= bytes.size() - e.offset);
    FUZZ_CHECK(e.bytes == ElementCount(e.shape) *
                              static_cast<uint64_t>(
                                  core::SafetensorsDtypeSize(e.dtype)));
    FUZZ_CHECK(e.name == tensors[i].name && e.dtype == tensors[i].dtype &&
               e.shape == tensors[i].shape);
    FUZZ_CHECK(tensors[i].data == bytes.substr(e.offset, e.bytes));
    by_offset.push_back(&e);
  }
  std::stable_sort(by_offset.begin(), by_offset.end(),
                   [](const SafetensorsEntry* a, const SafetensorsEntry* b) {
                     return a->offset != b->offset ? a->offset < b->offset
                                                   : a->bytes < b->bytes;
                   });
  for (const SafetensorsEntry* e : by_offset) {
    FUZZ_CHECK(e->offset == next);
    next += e->bytes;
  }
  FUZZ_CHECK(next == bytes.size());
}

}  // namespace
}  // namespace curvd::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace curvd;
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<std::vector<core::SafetensorsTensor>> tensors =
      core::ParseSafetensors(bytes);
  absl::StatusOr<std::vector<core::SafetensorsEntry>> index =
      fuzz::IndexOf(bytes);
  FUZZ_CHECK(tensors.ok() == index.ok());
  if (!tensors.ok()) {
    FUZZ_CHECK(tensors.status().code() == absl::StatusCode::kInvalidArgument);
    return 0;
  }
  fuzz::CheckIndex(bytes, *index, *tensors);

  bool empty_name = false;
  for (const core::SafetensorsTensor& t : *tensors)
    empty_name = empty_name || t.name.empty();
  absl::StatusOr<std::string> written = core::SerializeSafetensors(*tensors);
  FUZZ_CHECK(written.ok() != empty_name);
  if (!written.ok()) return 0;
  absl::StatusOr<std::vector<core::SafetensorsTensor>> again =
      core::ParseSafetensors(*written);
  FUZZ_CHECK(again.ok() && fuzz::SameTensors(*again, *tensors));
  return 0;
}
