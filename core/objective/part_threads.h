// Threads that run the parts of a split objective side by side, one host
// thread per device: a device's work is launched by one thread at a time, and
// several devices are kept busy only by several threads. Internal to core.
#ifndef CURVD_CORE_OBJECTIVE_PART_THREADS_H_
#define CURVD_CORE_OBJECTIVE_PART_THREADS_H_

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/functional/function_ref.h"

namespace curvd::core {

// `count` lanes: lane 0 is the caller's own thread, lanes 1.. are threads
// started at construction and joined at destruction. Not thread-safe: one
// Run at a time, from one thread.
class PartThreads {
 public:
  explicit PartThreads(int count);
  ~PartThreads();
  PartThreads(const PartThreads&) = delete;
  PartThreads& operator=(const PartThreads&) = delete;

  int count() const { return static_cast<int>(threads_.size()) + 1; }

  // Calls body(lane) for every lane at the same time, lane 0 on the calling
  // thread, and returns once every call has returned. When calls throw, the
  // exception of the lowest lane is rethrown here after all have finished, so
  // that no lane still runs when the caller unwinds.
  void Run(absl::FunctionRef<void(int)> body);

 private:
  void Serve(int lane);

  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  // The body of the Run under way, null between Runs.
  absl::FunctionRef<void(int)>* body_ = nullptr;
  // Incremented by each Run: a lane runs the body once per generation.
  uint64_t generation_ = 0;
  int running_ = 0;  // lanes 1.. still in the body of this generation
  bool stopping_ = false;
  std::vector<std::exception_ptr> errors_;  // per lane, of this generation
  std::vector<std::thread> threads_;
};

}  // namespace curvd::core

#endif  // CURVD_CORE_OBJECTIVE_PART_THREADS_H_
