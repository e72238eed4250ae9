#include "server/measurement_watchers.h"

#include <utility>
#include <vector>

namespace curvd::server {

MeasurementWatchers::Subscription::~Subscription() {
  watchers_->Unsubscribe(name_, id_);
}

std::unique_ptr<MeasurementWatchers::Subscription>
MeasurementWatchers::Subscribe(const std::string& name, Callback callback) {
  absl::MutexLock lock(&mu_);
  uint64_t id = next_id_++;
  subscribers_[name][id] =
      std::make_shared<const Callback>(std::move(callback));
  return std::unique_ptr<Subscription>(new Subscription(this, name, id));
}

void MeasurementWatchers::Unsubscribe(const std::string& name, uint64_t id) {
  absl::MutexLock lock(&mu_);
  auto it = subscribers_.find(name);
  if (it == subscribers_.end()) return;
  it->second.erase(id);
  if (it->second.empty()) subscribers_.erase(it);
}

void MeasurementWatchers::Publish(const curvd::v1::Measurement& measurement) {
  std::vector<std::shared_ptr<const Callback>> callbacks;
  {
    absl::MutexLock lock(&mu_);
    auto it = subscribers_.find(measurement.name());
    if (it == subscribers_.end()) return;
    for (const auto& [id, callback] : it->second) callbacks.push_back(callback);
  }
  for (const auto& callback : callbacks) (*callback)(measurement);
}

size_t MeasurementWatchers::SubscriberCount(const std::string& name) const {
  absl::MutexLock lock(&mu_);
  auto it = subscribers_.find(name);
  return it == subscribers_.end() ? 0 : it->second.size();
}

}  // namespace curvd::server
