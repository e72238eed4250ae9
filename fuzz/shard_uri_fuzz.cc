// Fuzzes the shard and data URI parsers (core/api/sources.h) with a URI,
// "$ROOT" and "$REAL" in it naming the fuzz tree's root
// (fuzz/data_root_tree.h), whose symlinked alias is the only data root.
// Contract held, beyond no crash and no sanitizer report: every path an
// accepted file:// shard names (the file, an idx labels file, each CIFAR batch
// file) is a canonical regular file inside the root, whatever symlinks led
// there; an accepted URI's cache key, parsed again, gives the same shard and
// key (it is canonical); ResolveDataPath accepts only regular files inside the
// root; errors are InvalidArgument, PermissionDenied or NotFound.
#include <sys/stat.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "core/api/sources.h"
#include "fuzz/data_root_tree.h"
#include "fuzz/fuzz_check.h"

namespace curvd::fuzz {
namespace {

bool RegularInsideRoot(const std::string& path) {
  struct stat info;
  return CanonicalInsideRoot(path) && stat(path.c_str(), &info) == 0 &&
         S_ISREG(info.st_mode);
}

bool Failure(const absl::Status& status) {
  return status.code() == absl::StatusCode::kInvalidArgument ||
         status.code() == absl::StatusCode::kPermissionDenied ||
         status.code() == absl::StatusCode::kNotFound;
}

void CheckFileShard(const core::ShardSpec& spec) {
  using Kind = core::ShardSpec::Kind;
  FUZZ_CHECK(spec.kind != Kind::kBuiltin);
  FUZZ_CHECK(CanonicalInsideRoot(spec.path));
  FUZZ_CHECK(absl::StartsWith(spec.cache_key, "file://" + spec.path));
  if (spec.kind == Kind::kCifar) {
    FUZZ_CHECK(!spec.record_files.empty());
    for (const std::string& file : spec.record_files)
      FUZZ_CHECK(RegularInsideRoot(file));
  } else {
    FUZZ_CHECK(RegularInsideRoot(spec.path));
  }
  FUZZ_CHECK((spec.kind == Kind::kIdx) == !spec.labels_path.empty());
  if (spec.kind == Kind::kIdx) FUZZ_CHECK(RegularInsideRoot(spec.labels_path));
}

}  // namespace
}  // namespace curvd::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace curvd;
  const std::string uri =
      fuzz::InRoot(std::string(reinterpret_cast<const char*>(data), size));
  // A NUL ends the path the kernel sees; the walk splits the string itself.
  if (uri.find('\0') != std::string::npos) return 0;
  const std::vector<std::string> roots = {fuzz::TheDataRootTree().alias};

  absl::StatusOr<std::string> file = core::ResolveDataPath(uri, roots);
  if (file.ok()) {
    FUZZ_CHECK(fuzz::RegularInsideRoot(*file));
  } else {
    FUZZ_CHECK(fuzz::Failure(file.status()));
  }

  absl::StatusOr<core::ShardSpec> spec = core::ParseShardUri(uri, roots);
  if (!spec.ok()) {
    FUZZ_CHECK(fuzz::Failure(spec.status()));
    return 0;
  }
  if (absl::StartsWith(uri, "file://")) {
    fuzz::CheckFileShard(*spec);
    FUZZ_CHECK(spec->data_roots == roots);
  } else {
    FUZZ_CHECK(spec->kind == core::ShardSpec::Kind::kBuiltin);
    FUZZ_CHECK(absl::StartsWith(spec->cache_key,
                                "builtin://" + spec->generator + "?"));
  }
  absl::StatusOr<core::ShardSpec> again =
      core::ParseShardUri(spec->cache_key, roots);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again->cache_key == spec->cache_key);
  FUZZ_CHECK(again->kind == spec->kind && again->path == spec->path &&
             again->labels_path == spec->labels_path &&
             again->record_files == spec->record_files &&
             again->params == spec->params && again->offset == spec->offset &&
             again->limit == spec->limit);
  return 0;
}
