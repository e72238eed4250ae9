// The bounded queue of measurements waiting for a device, fair across runs.
#ifndef CURVD_SERVER_JOB_QUEUE_H_
#define CURVD_SERVER_JOB_QUEUE_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace curvd::server {

struct Job {
  std::string measurement_name;
  std::string run_name;
  // Device class the job asked for: "" (any), "cpu" or "cuda".
  std::string device_class;
};

// "cpu" for "cpu", "cuda" for "cuda:N": what a Job's device_class is matched
// with.
std::string DeviceClassOf(const std::string& device);

// Jobs are served round-robin over the runs that have queued work, in FIFO
// order within a run, so one run streaming many checkpoints cannot starve
// another. All methods are thread-safe.
class JobQueue {
 public:
  // `on_depth_change`, if set, is called with the new depth after every change,
  // under the queue's lock (keep it cheap: a gauge update).
  explicit JobQueue(size_t capacity,
                    std::function<void(size_t)> on_depth_change = nullptr);

  // Appends `job`. ResourceExhausted when `capacity` jobs are queued (unless
  // `over_capacity_ok`, for re-queueing recovered work at start-up);
  // Unavailable after Close().
  absl::Status Push(Job job, bool over_capacity_ok = false);

  // Blocks until a job that a worker on `device` (e.g. "cuda:0") may run is
  // available and returns it, or returns nullopt once the queue is closed.
  std::optional<Job> Pop(const std::string& device);

  // Removes the queued job of `measurement_name`; false if it is not queued (it
  // was never queued, or a worker took it).
  bool Remove(const std::string& measurement_name);

  // Wakes every Pop with nullopt; later Pushes fail. Queued jobs stay unserved
  // (they are QUEUED in the store and are queued again at the next start).
  void Close();

  size_t size() const;

 private:
  bool HasJobFor(const std::string& device_class) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void NotifyDepth() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t capacity_;
  const std::function<void(size_t)> on_depth_change_;
  mutable absl::Mutex mu_;
  // Runs with queued work, in the order they will next be served.
  std::deque<std::string> turn_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::deque<Job>> by_run_
      ABSL_GUARDED_BY(mu_);
  size_t size_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace curvd::server

#endif  // CURVD_SERVER_JOB_QUEUE_H_
