// The CPU priority of the calling thread, so that measurement work yields the
// host's cores to a trainer running beside the server.
#ifndef CURVD_SERVER_THREAD_PRIORITY_H_
#define CURVD_SERVER_THREAD_PRIORITY_H_

#include "absl/status/status.h"

namespace curvd::server {

// Raises the calling thread's nice value by `increment` (0 to 19; the result is
// capped at 19), lowering its CPU priority; threads it creates afterwards (the
// CPU kernels' thread pool it starts) inherit the new value, other threads of
// the process keep theirs. Raising needs no privilege. InvalidArgument for an
// increment outside 0..19; Internal (with errno's text) if the OS refuses.
absl::Status LowerCurrentThreadPriority(int increment);

// The calling thread's nice value.
int CurrentThreadNice();

}  // namespace curvd::server

#endif  // CURVD_SERVER_THREAD_PRIORITY_H_
