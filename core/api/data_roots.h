// Files named inside the data roots, found and opened in one walk that never
// lets the kernel follow a symlink: every component is opened relative to the
// directory before it, so a directory swapped for a symlink between a check
// and a read cannot lead out of the roots (docs/adr/0020-data-root-walk.md).
// Torch-free; thread-safe (no state).
#ifndef CURVD_CORE_API_DATA_ROOTS_H_
#define CURVD_CORE_API_DATA_ROOTS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace curvd::core {

// An open file descriptor, closed when this is destroyed. Move-only.
class FileDescriptor {
 public:
  FileDescriptor() = default;
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor();
  FileDescriptor(FileDescriptor&& other) noexcept : fd_(other.release()) {}
  FileDescriptor& operator=(FileDescriptor&& other) noexcept;
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Gives up ownership: the caller closes the descriptor.
  int release();

 private:
  int fd_ = -1;
};

// Normalises an absolute path lexically: collapses "//" and "." components.
// ".." is refused (InvalidArgument) rather than collapsed, because it would
// change meaning once symlinks are followed and has no legitimate use in a
// data reference; so are a relative path and a NUL byte (where the kernel
// would end the name).
absl::StatusOr<std::string> NormalizeAbsolutePath(const std::string& path);

// A path resolved inside the roots: its canonical form (the root's real path,
// then the components walked, symlinks replaced by what they name) and
// whether it is a directory; otherwise it is a regular file.
struct RootedPath {
  std::string canonical;
  bool directory = false;
};

// Resolves `path` (absolute, no ".." component: InvalidArgument otherwise)
// inside one of `roots` (absolute directories). Symlinks are followed only
// while they stay inside the roots: a relative target whose ".." do not climb
// above the root being walked, or an absolute target inside one of the roots;
// the walk never reads anything a target names outside them. Errors:
// PermissionDenied "path 'P' is outside the data roots" for a path not inside
// a root and for one that leads out of them, dangling or not (one message
// that tells nothing of what is outside); NotFound "no such file: 'P'" for a
// path missing inside a root; InvalidArgument "path 'P' is not a regular
// file" for a FIFO, socket or device; PermissionDenied naming the error for
// any other failure (a directory it may not search, a symlink loop).
absl::StatusOr<RootedPath> ResolveInDataRoots(
    const std::string& path, const std::vector<std::string>& roots);

// Opens the regular file `path` for reading: found by the same walk as
// ResolveInDataRoots when `roots` is not empty (with its errors, and
// InvalidArgument "path 'P' is not a regular file" for a directory), or as it
// is for an empty `roots` (paths the caller trusts), NotFound "cannot open
// P" when that fails. The descriptor reads the file the walk found, whatever
// is renamed afterwards.
absl::StatusOr<FileDescriptor> OpenDataFile(
    const std::string& path, const std::vector<std::string>& roots);

// The size in bytes of the open file `fd`; DataLoss naming `name` if fstat
// fails.
absl::StatusOr<uint64_t> FileSize(int fd, const std::string& name);

// Reads exactly `size` bytes at `offset` of `fd` into `out` (pread, retried on
// short reads and EINTR). DataLoss naming `name` when the file ends first or a
// read fails.
absl::Status ReadExactly(int fd, uint64_t offset, uint64_t size, void* out,
                         const std::string& name);

}  // namespace curvd::core

#endif  // CURVD_CORE_API_DATA_ROOTS_H_
