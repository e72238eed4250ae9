#include "server/thread_priority.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace curvd::server {
namespace {

// On Linux the nice value belongs to the thread (PRIO_PROCESS with a thread
// id), unlike POSIX's per-process value; a new thread starts with its
// creator's.
id_t ThisThread() { return static_cast<id_t>(syscall(SYS_gettid)); }

}  // namespace

int CurrentThreadNice() {
  errno = 0;
  return getpriority(PRIO_PROCESS, ThisThread());
}

absl::Status LowerCurrentThreadPriority(int increment) {
  if (increment < 0 || increment > 19) {
    return absl::InvalidArgumentError(
        absl::StrCat("a nice increment must be in 0..19, got ", increment));
  }
  if (increment == 0) return absl::OkStatus();
  const int target = std::min(19, CurrentThreadNice() + increment);
  if (setpriority(PRIO_PROCESS, ThisThread(), target) != 0) {
    return absl::InternalError(absl::StrCat("setpriority(nice ", target,
                                            "): ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace curvd::server
