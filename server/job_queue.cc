#include "server/job_queue.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace curvd::server {
namespace {

bool Accepts(const std::string& device_class, const Job& job) {
  return job.device_class.empty() || job.device_class == device_class;
}

}  // namespace

std::string DeviceClassOf(const std::string& device) {
  return device.substr(0, device.find(':'));
}

JobQueue::JobQueue(size_t capacity, std::function<void(size_t)> on_depth_change)
    : capacity_(capacity), on_depth_change_(std::move(on_depth_change)) {}

absl::Status JobQueue::Push(Job job, bool over_capacity_ok) {
  absl::MutexLock lock(&mu_);
  if (closed_) return absl::UnavailableError("the server is shutting down");
  if (!over_capacity_ok && size_ >= capacity_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the measurement queue is full (", capacity_, " queued); retry later"));
  }
  std::deque<Job>& jobs = by_run_[job.run_name];
  if (jobs.empty()) turn_.push_back(job.run_name);
  jobs.push_back(std::move(job));
  ++size_;
  NotifyDepth();
  return absl::OkStatus();
}

bool JobQueue::HasJobFor(const std::string& device_class) const {
  for (const auto& [run, jobs] : by_run_) {
    for (const Job& job : jobs) {
      if (Accepts(device_class, job)) return true;
    }
  }
  return false;
}

std::optional<Job> JobQueue::Pop(const std::string& device) {
  const std::string device_class = DeviceClassOf(device);
  absl::MutexLock lock(&mu_);
  auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return closed_ || HasJobFor(device_class);
  };
  mu_.Await(absl::Condition(&ready));
  if (closed_) return std::nullopt;
  for (auto turn = turn_.begin(); turn != turn_.end(); ++turn) {
    std::deque<Job>& jobs = by_run_[*turn];
    auto it = std::find_if(jobs.begin(), jobs.end(), [&](const Job& job) {
      return Accepts(device_class, job);
    });
    if (it == jobs.end()) continue;
    Job job = std::move(*it);
    jobs.erase(it);
    std::string run = std::move(*turn);
    turn_.erase(turn);
    if (jobs.empty()) {
      by_run_.erase(run);
    } else {
      turn_.push_back(std::move(run));  // served: to the back of the line
    }
    --size_;
    NotifyDepth();
    return job;
  }
  return std::nullopt;  // unreachable: `ready` found a job under the same lock
}

bool JobQueue::Remove(const std::string& measurement_name) {
  absl::MutexLock lock(&mu_);
  for (auto& [run, jobs] : by_run_) {
    auto it = std::find_if(jobs.begin(), jobs.end(), [&](const Job& job) {
      return job.measurement_name == measurement_name;
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

}  // namespace curvd::server
