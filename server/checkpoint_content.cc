#include "server/checkpoint_content.h"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace curvd::server {
namespace {

namespace v1 = ::curvd::v1;

constexpr absl::string_view kZipMagic("PK\x03\x04", 4);
constexpr size_t kSafetensorsPrefix = 9;  // the header length, then '{'

bool LooksLikeTorchScript(absl::string_view head) {
  return absl::StartsWith(head, kZipMagic);
}

bool LooksLikeSafetensors(absl::string_view head, uint64_t file_size) {
  if (head.size() < kSafetensorsPrefix || head[8] != '{') return false;
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) {
    header_size = (header_size << 8) | static_cast<unsigned char>(head[i]);
  }
  return header_size <= file_size - 8;
}

// What `head` (the first bytes of a file of `file_size` bytes) looks like, for
// the message.
std::string Describe(absl::string_view head, uint64_t file_size) {
  if (LooksLikeTorchScript(head)) {
    return "a zip archive (\"PK\\x03\\x04\"), as torch.jit.save writes";
  }
  if (LooksLikeSafetensors(head, file_size)) {
    return "a safetensors file (an 8-byte header length, then '{')";
  }
  if (file_size == 0) return "empty";
  return absl::StrCat(
      "neither a zip archive (\"PK\\x03\\x04\", TorchScript) nor a safetensors "
      "file (an 8-byte little-endian header length, then '{'): its first "
      "bytes are \"",
      absl::CHexEscape(head), "\"");
}

}  // namespace

absl::Status CheckCheckpointContent(v1::CheckpointFormat format, bool defaulted,
                                    const std::string& path) {
  std::error_code error;
  const uint64_t file_size = std::filesystem::file_size(path, error);
  std::ifstream in(path, std::ios::binary);
  if (error || !in) {
    return absl::NotFoundError(absl::StrCat("cannot read ", path));
  }
  std::string head(kSafetensorsPrefix, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<size_t>(in.gcount()));
  const bool safetensors = format == v1::CHECKPOINT_FORMAT_SAFETENSORS;
  if (safetensors ? LooksLikeSafetensors(head, file_size)
                  : LooksLikeTorchScript(head)) {
    return absl::OkStatus();
  }
  // The trap of the default: a state dict sent for an archive run without a
  // format.
  const bool state_dict_as_archive =
      !safetensors && LooksLikeSafetensors(head, file_size);
  return absl::InvalidArgumentError(absl::StrCat(
      "checkpoint.format is ", v1::CheckpointFormat_Name(format),
      defaulted ? " (the default for this run)" : "", " but the content is ",
      Describe(head, file_size),
      state_dict_as_archive
          ? "; set checkpoint.format to CHECKPOINT_FORMAT_SAFETENSORS"
          : ""));
}

}  // namespace curvd::server
