// Fuzzes the data-root walk (core/api/data_roots.h) with a path, "$ROOT" and
// "$REAL" in it naming the fuzz tree's root (fuzz/data_root_tree.h), whose
// symlinked alias is the only data root. Contract held, beyond no crash and no
// sanitizer report: NormalizeAbsolutePath refuses exactly the relative paths
// and those with a ".." component, and what it returns is absolute, has no
// empty, "." or ".." component and normalises to itself; ResolveInDataRoots
// never accepts a path whose target lies outside the root: what it returns is
// the kernel's realpath of the path (so "f/" and "f/." for a file f are
// refused, as ENOTDIR), inside the real root, a directory or a regular file as
// it says; OpenDataFile opens exactly the regular files it resolves, the same
// inode; errors are InvalidArgument, PermissionDenied or
// NotFound.
#include <sys/stat.h>

#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "core/api/data_roots.h"
#include "fuzz/data_root_tree.h"
#include "fuzz/fuzz_check.h"

namespace curvd::fuzz {
namespace {

bool HasDotDot(const std::string& path) {
  for (absl::string_view part : absl::StrSplit(path, '/'))
    if (part == "..") return true;
  return false;
}

void CheckNormalized(const std::string& path) {
  absl::StatusOr<std::string> normal = core::NormalizeAbsolutePath(path);
  const bool valid = !path.empty() && path[0] == '/' && !HasDotDot(path);
  FUZZ_CHECK(normal.ok() == valid);
  if (!normal.ok()) {
    FUZZ_CHECK(normal.status().code() == absl::StatusCode::kInvalidArgument);
    return;
  }
  FUZZ_CHECK(absl::StartsWith(*normal, "/"));
  if (*normal != "/") {
    std::vector<absl::string_view> parts =
        absl::StrSplit(absl::string_view(*normal).substr(1), '/');
    for (absl::string_view part : parts)
      FUZZ_CHECK(!part.empty() && part != "." && part != "..");
  }
  absl::StatusOr<std::string> again = core::NormalizeAbsolutePath(*normal);
  FUZZ_CHECK(again.ok() && *again == *normal);
}

bool Failure(const absl::Status& status) {
  return status.code() == absl::StatusCode::kInvalidArgument ||
         status.code() == absl::StatusCode::kPermissionDenied ||
         status.code() == absl::StatusCode::kNotFound;
}

}  // namespace
}  // namespace curvd::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace curvd;
  const std::string path =
      fuzz::InRoot(std::string(reinterpret_cast<const char*>(data), size));
  // A NUL ends the path the kernel sees; the walk splits the string itself.
  if (path.find('\0') != std::string::npos || path.size() > PATH_MAX) return 0;
  fuzz::CheckNormalized(path);

  const std::vector<std::string> roots = {fuzz::TheDataRootTree().alias};
  absl::StatusOr<core::RootedPath> found = core::ResolveInDataRoots(path, roots);
  absl::StatusOr<core::FileDescriptor> opened = core::OpenDataFile(path, roots);
  if (!found.ok()) {
    FUZZ_CHECK(fuzz::Failure(found.status()));
    FUZZ_CHECK(!opened.ok());
    return 0;
  }
  FUZZ_CHECK(fuzz::CanonicalInsideRoot(found->canonical));
  char real[PATH_MAX];
  FUZZ_CHECK(realpath(path.c_str(), real) != nullptr &&
             found->canonical == real);
  struct stat info;
  FUZZ_CHECK(stat(found->canonical.c_str(), &info) == 0);
  FUZZ_CHECK(found->directory ? S_ISDIR(info.st_mode) : S_ISREG(info.st_mode));
  FUZZ_CHECK(opened.ok() == !found->directory);
  if (opened.ok()) {
    struct stat opened_info;
    FUZZ_CHECK(fstat(opened->get(), &opened_info) == 0);
    FUZZ_CHECK(opened_info.st_ino == info.st_ino &&
               opened_info.st_dev == info.st_dev);
  } else {
    FUZZ_CHECK(opened.status().code() == absl::StatusCode::kInvalidArgument);
  }
  return 0;
}
