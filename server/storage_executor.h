// The threads that do the service's disk work (store calls, blob chunk writes
// and fsyncs), so that gRPC callback threads never block on the disk: a
// reaction hands its work here and the task finishes the reaction
// (docs/adr/0006-storage-executor.md).
#ifndef CURVD_SERVER_STORAGE_EXECUTOR_H_
#define CURVD_SERVER_STORAGE_EXECUTOR_H_

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace curvd::server {

// A fixed pool of threads running tasks in the order they were scheduled
// (several at once, one per thread). Thread-safe. Tasks must not block on
// other tasks; one caller's tasks keep their order only if it schedules the
// next after the previous ran (as a reactor does: one read at a time).
class StorageExecutor {
 public:
  // Starts `threads` (>= 1) threads.
  explicit StorageExecutor(int threads);
  // Stop().
  ~StorageExecutor();
  StorageExecutor(const StorageExecutor&) = delete;
  StorageExecutor& operator=(const StorageExecutor&) = delete;

  // Runs `task` on a pool thread; after Stop, on the calling thread, so that a
  // reaction scheduled late still finishes.
  void Schedule(std::function<void()> task);

  // Runs the tasks already scheduled, then joins the threads. Idempotent.
  void Stop();

 private:
  void Loop();

  absl::Mutex mu_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace curvd::server

#endif  // CURVD_SERVER_STORAGE_EXECUTOR_H_
