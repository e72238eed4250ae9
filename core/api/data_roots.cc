// The walk: each component is opened with O_PATH | O_NOFOLLOW relative to the
// descriptor of the directory before it, so the kernel resolves nothing by
// name beyond one entry of a directory already held. A symlink is opened as
// itself and read through its descriptor; its target is then walked by the
// same rules, ".." popping a directory held and an absolute target starting
// again from the root it names. openat2(RESOLVE_BENEATH) would refuse the
// absolute symlinks inside a root that datasets are often linked with, hence
// this walk in user space on every kernel.
#include "core/api/data_roots.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <optional>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"

namespace curvd::core {
namespace {

// As the kernel's MAXSYMLINKS.
constexpr int kMaxSymlinks = 40;

using Components = std::vector<std::string>;

Components Split(const std::string& path) {
  return absl::StrSplit(path, '/', absl::SkipEmpty());
}

// Whether `path` ends in "/" or "/.", which for the kernel names a directory
// (a file so named is ENOTDIR).
bool NamesADirectory(const std::string& path) {
  return absl::EndsWith(path, "/") || absl::EndsWith(path, "/.");
}

struct Root {
  std::string real;       // realpath of the root
  Components lexical;     // the root as given, normalised
  Components real_parts;  // `real`, split
};

std::vector<Root> MakeRoots(const std::vector<std::string>& roots) {
  std::vector<Root> out;
  for (const std::string& root : roots) {
    absl::StatusOr<std::string> normal = NormalizeAbsolutePath(root);
    char buffer[PATH_MAX];
    if (!normal.ok() || realpath(normal->c_str(), buffer) == nullptr) continue;
    out.push_back({buffer, Split(*normal), Split(buffer)});
  }
  return out;
}

// The components of `parts` below `prefix`, when `parts` starts with it.
std::optional<Components> Below(const Components& parts,
                                const Components& prefix) {
  if (parts.size() < prefix.size() ||
      !std::equal(prefix.begin(), prefix.end(), parts.begin())) {
    return std::nullopt;
  }
  return Components(parts.begin() + prefix.size(), parts.end());
}

// The root `parts` (an absolute path, split) lies in, by its name as given or
// its real path, and the components below it.
std::optional<std::pair<size_t, Components>> FindRoot(
    const std::vector<Root>& roots, const Components& parts) {
  for (size_t i = 0; i < roots.size(); ++i) {
    for (const Components* form : {&roots[i].lexical, &roots[i].real_parts}) {
      if (std::optional<Components> below = Below(parts, *form))
        return std::make_pair(i, *std::move(below));
    }
  }
  return std::nullopt;
}

absl::Status Outside(const std::string& shown) {
  return absl::PermissionDeniedError(
      absl::StrCat("path '", shown, "' is outside the data roots"));
}

absl::Status CannotResolve(const std::string& shown, int error) {
  return absl::PermissionDeniedError(
      absl::StrCat("cannot resolve '", shown, "': ", std::strerror(error)));
}

absl::Status NoSuchFile(const std::string& shown) {
  return absl::NotFoundError(absl::StrCat("no such file: '", shown, "'"));
}

absl::Status NotRegular(const std::string& shown) {
  return absl::InvalidArgumentError(
      absl::StrCat("path '", shown, "' is not a regular file"));
}

// Where a walk ended: the O_PATH descriptor of what it found and of the
// directory holding it (the same root descriptor for a root itself).
struct WalkEnd {
  FileDescriptor found;
  FileDescriptor parent;
  std::string name;  // in `parent`; empty for a root
  std::string canonical;
  struct stat info;
};

class Walk {
 public:
  Walk(const std::vector<Root>& roots, std::string shown)
      : roots_(roots), shown_(std::move(shown)) {}

  absl::StatusOr<WalkEnd> Run(size_t root, Components pending_parts) {
    CURVD_RETURN_IF_ERROR(Restart(root));
    std::deque<std::string> pending(pending_parts.begin(), pending_parts.end());
    int links = 0;
    while (!pending.empty()) {
      const std::string part = std::move(pending.front());
      pending.pop_front();
      // "." stays only where it asks for a directory, as after a trailing "/".
      if (part == ".") {
        if (!top_is_directory_) return NoSuchFile(shown_);
        continue;
      }
      if (part == "..") {
        // Only a symlink's target gets here: the requested path has none.
        if (names_.empty()) return Outside(shown_);
        dirs_.pop_back();
        names_.pop_back();
        top_is_directory_ = true;
        continue;
      }
      // Below a file, as the kernel's ENOTDIR.
      if (!top_is_directory_) return NoSuchFile(shown_);
      FileDescriptor fd(openat(dirs_.back().get(), part.c_str(),
                               O_PATH | O_NOFOLLOW | O_CLOEXEC));
      if (!fd.valid()) {
        if (errno == ENOENT || errno == ENOTDIR) return NoSuchFile(shown_);
        return CannotResolve(shown_, errno);
      }
      struct stat info;
      if (fstat(fd.get(), &info) != 0) return CannotResolve(shown_, errno);
      if (S_ISLNK(info.st_mode)) {
        if (++links > kMaxSymlinks) return CannotResolve(shown_, ELOOP);
        CURVD_ASSIGN_OR_RETURN(std::string target, ReadLink(fd.get()));
        Components target_parts = Split(target);
        if (NamesADirectory(target)) target_parts.push_back(".");
        pending.insert(pending.begin(), target_parts.begin(),
                       target_parts.end());
        if (target[0] == '/') {
          std::optional<std::pair<size_t, Components>> found =
              FindRoot(roots_, target_parts);
          if (!found.has_value()) return Outside(shown_);
          CURVD_RETURN_IF_ERROR(Restart(found->first));
          pending.erase(pending.begin(),
                        pending.begin() + (target_parts.size() -
                                           found->second.size()));
        }
        continue;
      }
      dirs_.push_back(std::move(fd));
      names_.push_back(part);
      top_is_directory_ = S_ISDIR(info.st_mode);
    }
    WalkEnd end;
    if (fstat(dirs_.back().get(), &end.info) != 0)
      return CannotResolve(shown_, errno);
    end.canonical = names_.empty() ? roots_[root_].real
                                   : absl::StrCat(roots_[root_].real == "/"
                                                      ? ""
                                                      : roots_[root_].real,
                                                  "/", absl::StrJoin(names_, "/"));
    end.found = std::move(dirs_.back());
    dirs_.pop_back();
    if (dirs_.empty()) {
      end.parent = FileDescriptor(fcntl(end.found.get(), F_DUPFD_CLOEXEC, 0));
    } else {
      end.parent = std::move(dirs_.back());
      end.name = names_.back();
    }
    return end;
  }

 private:
  absl::Status Restart(size_t root) {
    root_ = root;
    dirs_.clear();
    names_.clear();
    FileDescriptor fd(
        open(roots_[root].real.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid()) return CannotResolve(shown_, errno);
    dirs_.push_back(std::move(fd));
    top_is_directory_ = true;
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> ReadLink(int fd) {
    char buffer[PATH_MAX];
    const ssize_t n = readlinkat(fd, "", buffer, sizeof(buffer));
    if (n < 0) return CannotResolve(shown_, errno);
    if (n == 0 || n == sizeof(buffer)) return CannotResolve(shown_, ENAMETOOLONG);
    return std::string(buffer, n);
  }

  const std::vector<Root>& roots_;
  const std::string shown_;
  size_t root_ = 0;
  // dirs_[0] is the root; dirs_[i] was opened as names_[i - 1] in dirs_[i-1].
  std::vector<FileDescriptor> dirs_;
  Components names_;
  bool top_is_directory_ = true;
};

absl::StatusOr<WalkEnd> WalkInRoots(const std::string& path,
                                    const std::vector<std::string>& roots) {
  CURVD_ASSIGN_OR_RETURN(std::string normal, NormalizeAbsolutePath(path));
  const std::vector<Root> resolved = MakeRoots(roots);
  const Components parts = Split(normal);
  // Nested roots: the first whose walk stays inside the roots.
  for (size_t i = 0; i < resolved.size(); ++i) {
    std::optional<Components> below = Below(parts, resolved[i].lexical);
    if (!below.has_value()) below = Below(parts, resolved[i].real_parts);
    if (!below.has_value()) continue;
    if (NamesADirectory(path)) below->push_back(".");
    absl::StatusOr<WalkEnd> end = Walk(resolved, normal).Run(i, *below);
    if (end.ok() || end.status() != Outside(normal)) return end;
  }
  return Outside(normal);
}

}  // namespace

FileDescriptor::~FileDescriptor() {
  if (fd_ >= 0) close(fd_);
}

FileDescriptor& FileDescriptor::operator=(FileDescriptor&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = other.release();
  }
  return *this;
}

int FileDescriptor::release() { return std::exchange(fd_, -1); }

absl::StatusOr<std::string> NormalizeAbsolutePath(const std::string& path) {
  if (path.empty() || path[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("path '", path, "' must be absolute (file:///abs/path)"));
  }
  // The kernel would end the name at a NUL byte and open another file than
  // the one named.
  if (path.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "path '", absl::CHexEscape(path), "' must not contain a NUL byte"));
  }
  std::vector<absl::string_view> parts;
  for (absl::string_view part : absl::StrSplit(path, '/', absl::SkipEmpty())) {
    if (part == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat("path '", path, "' must not contain '..'"));
    }
    if (part != ".") parts.push_back(part);
  }
  return absl::StrCat("/", absl::StrJoin(parts, "/"));
}

absl::StatusOr<RootedPath> ResolveInDataRoots(
    const std::string& path, const std::vector<std::string>& roots) {
  CURVD_ASSIGN_OR_RETURN(WalkEnd end, WalkInRoots(path, roots));
  if (!S_ISDIR(end.info.st_mode) && !S_ISREG(end.info.st_mode))
    return NotRegular(NormalizeAbsolutePath(path).value());
  return RootedPath{end.canonical, S_ISDIR(end.info.st_mode)};
}

absl::StatusOr<FileDescriptor> OpenDataFile(
    const std::string& path, const std::vector<std::string>& roots) {
  if (roots.empty()) {
    FileDescriptor fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid())
      return absl::NotFoundError(absl::StrCat("cannot open ", path));
    return fd;
  }
  CURVD_ASSIGN_OR_RETURN(WalkEnd end, WalkInRoots(path, roots));
  const std::string shown = NormalizeAbsolutePath(path).value();
  if (!S_ISREG(end.info.st_mode)) return NotRegular(shown);
  // Reopened for reading by its name in the directory held, then compared
  // with what the walk found: O_PATH descriptors cannot read. O_NONBLOCK so
  // that a FIFO swapped in meanwhile is refused below rather than waited on.
  FileDescriptor fd(openat(end.parent.get(), end.name.c_str(),
                           O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC |
                               O_NOCTTY));
  struct stat info;
  if (!fd.valid() || fstat(fd.get(), &info) != 0 ||
      info.st_dev != end.info.st_dev || info.st_ino != end.info.st_ino) {
    return absl::AbortedError(
        absl::StrCat("path '", shown, "' changed while it was opened"));
  }
  const int flags = fcntl(fd.get(), F_GETFL);
  if (flags < 0 || fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK) != 0)
    return CannotResolve(shown, errno);
  return fd;
}

absl::StatusOr<uint64_t> FileSize(int fd, const std::string& name) {
  struct stat info;
  if (fstat(fd, &info) != 0) {
    return absl::DataLossError(
        absl::StrCat("cannot read the size of ", name, ": ",
                     std::strerror(errno)));
  }
  return static_cast<uint64_t>(info.st_size);
}

absl::Status ReadExactly(int fd, uint64_t offset, uint64_t size, void* out,
                         const std::string& name) {
  char* at = static_cast<char*>(out);
  while (size > 0) {
    const ssize_t n = pread(fd, at, size, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return absl::DataLossError(
          absl::StrCat("error reading ", name, ": ", std::strerror(errno)));
    }
    if (n == 0) {
      return absl::DataLossError(
          absl::StrCat(name, " ended ", size, " bytes early"));
    }
    at += n;
    offset += static_cast<uint64_t>(n);
    size -= static_cast<uint64_t>(n);
  }
  return absl::OkStatus();
}

}  // namespace curvd::core
