// TorchScript archives loaded in a child process before this one loads them:
// LibTorch's TorchScript importer can crash (SIGSEGV) on a malformed archive,
// and a crash there must fail one request, not the server (ADR 0026).
#ifndef CURVD_CORE_DATA_ARCHIVE_CHECK_H_
#define CURVD_CORE_DATA_ARCHIVE_CHECK_H_

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace curvd::core {

// How curvd_archive_check exits when the loader refuses the archive (0: it
// loaded; anything else says nothing of the archive).
inline constexpr int kArchiveRefusedExitCode = 3;

// Loads the TorchScript archive open for reading on `fd` in a child process
// running `checker` (core/tools/curvd_archive_check.cc, which reads the
// archive from its standard input), and waits at most `timeout` for it.
// OK when the child loaded the archive. InvalidArgument when it did not, with
// the loader's own message when it refused the archive and with the signal
// when the loader crashed on it (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT,
// SIGTRAP); Unavailable when the child was killed by another signal (the
// kernel's out-of-memory killer, say); DeadlineExceeded when it took longer
// than `timeout` (the child is killed); FailedPrecondition when `checker`
// cannot be run or exits otherwise. Messages say what happened to the
// archive, not which it is: the caller names it. The child runs with no
// signal blocked and none of this process's descriptors beyond the three
// standard ones. A verdict (OK or InvalidArgument) is kept for the file's
// identity (device, inode, size, modification and change times) when the
// file did not change during the check, so a file already checked is not
// checked again (two checks of one file at once may both run a child).
// Leaves `fd`'s offset at 0. Thread-safe.
absl::Status CheckArchiveInChild(int fd, const std::string& checker,
                                 absl::Duration timeout = absl::Minutes(5));

}  // namespace curvd::core

#endif  // CURVD_CORE_DATA_ARCHIVE_CHECK_H_
