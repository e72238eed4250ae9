#include "server/job_queue.h"

#include <algorithm>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace curvd::server {
namespace {

bool Accepts(const std::string& device_class, const Job& job) {
  return job.device_class.empty() || job.device_class == device_class;
}

}  // namespace

std::string DeviceClassOf(const std::string& device) {
  return device.substr(0, device.find(':'));
}

JobQueue::JobQueue(size_t capacity, std::function<void(size_t)> on_depth_change,
                   absl::Duration affinity_wait)
    : capacity_(capacity),
      on_depth_change_(std::move(on_depth_change)),
      affinity_wait_(affinity_wait) {}

absl::Status JobQueue::Push(Job job, bool over_capacity_ok) {
  absl::MutexLock lock(&mu_);
  if (closed_) return absl::UnavailableError("the server is shutting down");
  if (!over_capacity_ok && size_ >= capacity_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the measurement queue is full (", capacity_, " queued); retry later"));
  }
  std::deque<Queued>& jobs = by_run_[job.run_name];
  if (jobs.empty()) turn_.push_back(job.run_name);
  jobs.push_back(Queued{std::move(job), absl::Now()});
  ++size_;
  NotifyDepth();
  return absl::OkStatus();
}

bool JobQueue::Claimed(const std::string& device, const Job& job) const {
  if (auto own = devices_.find(device);
      own != devices_.end() && own->second.loads.HoldsModel(job.model_key)) {
    return false;
  }
  for (const auto& [other, state] : devices_) {
    if (other != device && Accepts(state.device_class, job) &&
        state.loads.HoldsModel(job.model_key)) {
      return true;
    }
  }
  return false;
}

std::optional<JobQueue::Place> JobQueue::Choose(const std::string& device,
                                                absl::Time now,
                                                absl::Time* next_change) const {
  const std::string device_class = DeviceClassOf(device);
  const auto own = devices_.find(device);
  std::optional<Place> best;
  // Smaller is better: claimed by another device, then colder.
  std::tuple<bool, int> best_rank;
  for (size_t t = 0; t < turn_.size(); ++t) {
    const std::deque<Queued>& jobs = by_run_.at(turn_[t]);
    for (size_t i = 0; i < jobs.size(); ++i) {
      const Queued& queued = jobs[i];
      if (!Accepts(device_class, queued.job)) continue;
      if (queued.overtaken >= kMaxOvertakes) return Place{t, i};
      const bool claimed = Claimed(device, queued.job);
      if (claimed) {
        const absl::Time released = queued.queued_time + affinity_wait_;
        if (now < released) {
          if (next_change != nullptr) {
            *next_change = std::min(*next_change, released);
          }
          continue;
        }
      }
      const int warmth = own == devices_.end()
                             ? 0
                             : own->second.loads.Warmth(queued.job.model_key,
                                                        queued.job.shard_key);
      const std::tuple<bool, int> rank{claimed, -warmth};
      if (!best.has_value() || rank < best_rank) {
        best = Place{t, i};
        best_rank = rank;
      }
    }
  }
  return best;
}

Job JobQueue::Take(const std::string& device, Place place) {
  const std::string device_class = DeviceClassOf(device);
  for (size_t t = 0; t <= place.turn; ++t) {
    std::deque<Queued>& jobs = by_run_[turn_[t]];
    const size_t ahead = t == place.turn ? place.index : jobs.size();
    for (size_t i = 0; i < ahead; ++i) {
      if (Accepts(device_class, jobs[i].job)) ++jobs[i].overtaken;
    }
  }
  auto turn = turn_.begin() + place.turn;
  std::deque<Queued>& jobs = by_run_[*turn];
  Job job = std::move(jobs[place.index].job);
  jobs.erase(jobs.begin() + place.index);
  std::string run = std::move(*turn);
  turn_.erase(turn);
  if (jobs.empty()) {
    by_run_.erase(run);
  } else {
    turn_.push_back(std::move(run));  // served: to the back of the line
  }
  --size_;
  devices_.try_emplace(device, Device{device_class})
      .first->second.loads.Record(job.model_key, job.shard_key);
  NotifyDepth();
  return job;
}

std::optional<Job> JobQueue::Pop(const std::string& device) {
  absl::MutexLock lock(&mu_);
  waiting_.insert(device);
  while (!closed_ || reserved_.contains(device)) {
    absl::Time next_change = absl::InfiniteFuture();
    if (!reserved_.contains(device)) {
      if (std::optional<Place> place =
              Choose(device, absl::Now(), &next_change)) {
        waiting_.erase(device);
        return Take(device, *place);
      }
    }
    // Conditions are evaluated whenever the lock is released; the deadline
    // covers a held-back job that time alone releases, and a job pushed since,
    // held back to an earlier time, ends the wait to take a new deadline.
    auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      if (reserved_.contains(device)) return false;
      if (closed_) return true;
      absl::Time earliest = absl::InfiniteFuture();
      return Choose(device, absl::Now(), &earliest).has_value() ||
             earliest < next_change;
    };
    mu_.AwaitWithDeadline(absl::Condition(&ready), next_change);
  }
  waiting_.erase(device);
  return std::nullopt;
}

bool JobQueue::Remove(const std::string& measurement_name) {
  absl::MutexLock lock(&mu_);
  for (auto& [run, jobs] : by_run_) {
    auto it = std::find_if(jobs.begin(), jobs.end(), [&](const Queued& queued) {
      return queued.job.measurement_name == measurement_name;
    });
    if (it == jobs.end()) continue;
    jobs.erase(it);
    if (jobs.empty()) {
      std::string emptied = run;  // copied: erasing invalidates the key
      turn_.erase(std::find(turn_.begin(), turn_.end(), emptied));
      by_run_.erase(emptied);
    }
    --size_;
    NotifyDepth();
    return true;
  }
  return false;
}

void JobQueue::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
}

size_t JobQueue::size() const {
  absl::MutexLock lock(&mu_);
  return size_;
}

void JobQueue::NotifyDepth() {
  if (on_depth_change_) on_depth_change_(size_);
}

std::vector<std::string> JobQueue::ReserveIdle(const std::string& device,
                                               bool even_if_queued, int most) {
  absl::MutexLock lock(&mu_);
  const std::string device_class = DeviceClassOf(device);
  if (!even_if_queued) {
    for (const auto& [run, jobs] : by_run_) {
      for (const Queued& queued : jobs) {
        if (Accepts(device_class, queued.job)) return {};
      }
    }
  }
  std::vector<std::string> idle;
  for (const std::string& other : waiting_) {
    if (other != device && DeviceClassOf(other) == device_class &&
        !reserved_.contains(other)) {
      idle.push_back(other);
    }
  }
  std::sort(idle.begin(), idle.end());
  if (most < static_cast<int>(idle.size())) idle.resize(std::max(most, 0));
  reserved_.insert(idle.begin(), idle.end());
  return idle;
}

int JobQueue::Idle(const std::string& device_class) const {
  absl::MutexLock lock(&mu_);
  int idle = 0;
  for (const std::string& device : waiting_) {
    if (DeviceClassOf(device) == device_class && !reserved_.contains(device)) {
      ++idle;
    }
  }
  return idle;
}

void JobQueue::Release(const std::vector<std::string>& devices) {
  absl::MutexLock lock(&mu_);
  for (const std::string& device : devices) reserved_.erase(device);
}

}  // namespace curvd::server
