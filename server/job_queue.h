// The bounded queue of measurements waiting for a device: fair across runs,
// and preferring the device that already holds a job's model and shard.
#ifndef CURVD_SERVER_JOB_QUEUE_H_
#define CURVD_SERVER_JOB_QUEUE_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/recent_loads.h"

namespace curvd::server {

struct Job {
  std::string measurement_name;
  std::string run_name;
  // Device class the job asked for: "" (any), "cpu" or "cuda".
  std::string device_class;
  // What the job loads: the core::ModelSource and core::ShardSpec cache keys
  // of its checkpoint and shard. Empty when unknown: no device is warm for it.
  std::string model_key;
  std::string shard_key;
};

// "cpu" for "cpu", "cuda" for "cuda:N": what a Job's device_class is matched
// with.
std::string DeviceClassOf(const std::string& device);

// The fair order is round-robin over the runs with queued work and FIFO within
// a run, so one run streaming many checkpoints cannot starve another; a run
// goes to the back of the turn whenever a job of it is taken. Without keys (or
// with one device that recently loaded them all) Pop serves exactly that order.
//
// Affinity. The queue remembers, for each device, the model and shard keys of
// the last kRemembered jobs it took (RecentLoads: the worker loads what it
// takes). A device's warmth for a job is 2 if it holds the job's model plus 1
// if it holds its shard. Another device claims a job from `device` when it
// holds the job's model and `device` does not. Pop(device), over the jobs of
// its class:
//  1. takes the first job in fair order that has been overtaken kMaxOvertakes
//     times, if there is one; otherwise
//  2. leaves the jobs claimed by another device that were queued less than
//     `affinity_wait` ago (that device is busy, or it would have taken the job
//     itself, and may be done soon), and takes, of the others, an unclaimed
//     job rather than a claimed one, then the warmest for `device`, then the
//     first in fair order; it waits while there is none.
// A job is overtaken when a device of its class takes a job behind it in fair
// order. So no job waits for ever: it is held back from a device for at most
// `affinity_wait`, overtaken at most kMaxOvertakes times, and otherwise served
// in fair order. All methods are thread-safe.
class JobQueue {
 public:
  static constexpr int kMaxOvertakes = 8;
  static constexpr size_t kRemembered = 4;
  static constexpr absl::Duration kDefaultAffinityWait = absl::Seconds(2);

  // `on_depth_change`, if set, is called with the new depth after every change,
  // under the queue's lock (keep it cheap: a gauge update).
  explicit JobQueue(size_t capacity,
                    std::function<void(size_t)> on_depth_change = nullptr,
                    absl::Duration affinity_wait = kDefaultAffinityWait);

  // Appends `job`. ResourceExhausted when `capacity` jobs are queued (unless
  // `over_capacity_ok`, for re-queueing recovered work at start-up);
  // Unavailable after Close().
  absl::Status Push(Job job, bool over_capacity_ok = false);

  // Blocks until a job that a worker on `device` (e.g. "cuda:0") may take by
  // the rules above is queued and returns it, or returns nullopt once the queue
  // is closed. Records the job's keys as loaded by `device`.
  std::optional<Job> Pop(const std::string& device);

  // For a job `device` took that may be split: reserves up to `most` other
  // devices of its class that wait in Pop now, when no queued job could go
  // to one of them (or whatever is queued, with `even_if_queued`), and
  // returns their names (sorted; empty when none). A reserved device's Pop
  // takes no job and does not return, not even after Close, until Release:
  // its worker stays blocked there, so its engine is the caller's to use
  // meanwhile. So a split never takes a device busy with another
  // measurement, and, unless forced, never one a queued job needs.
  std::vector<std::string> ReserveIdle(const std::string& device,
                                       bool even_if_queued, int most);
  // Ends the reservation of `devices` (ReserveIdle's result).
  void Release(const std::vector<std::string>& devices);
  // Devices of `device_class` waiting in Pop and not reserved: what a split
  // could have.
  int Idle(const std::string& device_class) const;

  // Removes the queued job of `measurement_name`; false if it is not queued (it
  // was never queued, or a worker took it).
  bool Remove(const std::string& measurement_name);

  // Wakes every Pop with nullopt; later Pushes fail. Queued jobs stay unserved
  // (they are QUEUED in the store and are queued again at the next start).
  void Close();

  size_t size() const;

 private:
  struct Queued {
    Job job;
    absl::Time queued_time;
    int overtaken = 0;
  };
  // A queued job's place: its run's index in turn_, its index in the run.
  struct Place {
    size_t turn = 0;
    size_t index = 0;
  };
  struct Device {
    std::string device_class;
    RecentLoads loads{kRemembered};
  };

  // The job Pop(device) takes at `now` by the rules above, or nullopt; lowers
  // `*next_change` (if set) to the time a job held back from `device` is
  // released.
  std::optional<Place> Choose(const std::string& device, absl::Time now,
                              absl::Time* next_change) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether a device other than `device` claims `job`.
  bool Claimed(const std::string& device, const Job& job) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Removes the job at `place` for `device`, counting the overtakes and
  // recording its keys.
  Job Take(const std::string& device, Place place)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void NotifyDepth() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t capacity_;
  const std::function<void(size_t)> on_depth_change_;
  const absl::Duration affinity_wait_;
  mutable absl::Mutex mu_;
  // Runs with queued work, in the order they will next be served.
  std::deque<std::string> turn_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::deque<Queued>> by_run_
      ABSL_GUARDED_BY(mu_);
  size_t size_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  // Every device that has taken a job, by name.
  absl::flat_hash_map<std::string, Device> devices_ ABSL_GUARDED_BY(mu_);
  // Devices whose worker is inside Pop, and those of them reserved.
  absl::flat_hash_set<std::string> waiting_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> reserved_ ABSL_GUARDED_BY(mu_);
};

}  // namespace curvd::server

#endif  // CURVD_SERVER_JOB_QUEUE_H_
