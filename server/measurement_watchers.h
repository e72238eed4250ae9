// Publish/subscribe of measurement changes, keyed by measurement name, feeding
// the WatchMeasurement streams.
#ifndef CURVD_SERVER_MEASUREMENT_WATCHERS_H_
#define CURVD_SERVER_MEASUREMENT_WATCHERS_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "curvd/v1/resources.pb.h"

namespace curvd::server {

class MeasurementWatchers {
 public:
  using Callback = std::function<void(const curvd::v1::Measurement&)>;

  // Unsubscribes when destroyed. A callback already being delivered may still
  // finish after that, so callbacks must own (not borrow) what they touch.
  class Subscription {
   public:
    ~Subscription();
    Subscription(const Subscription&) = delete;
    Subscription& operator=(const Subscription&) = delete;

   private:
    friend class MeasurementWatchers;
    Subscription(MeasurementWatchers* watchers, std::string name, uint64_t id)
        : watchers_(watchers), name_(std::move(name)), id_(id) {}
    MeasurementWatchers* watchers_;
    std::string name_;
    uint64_t id_;
  };

  // Calls `callback` with every later Publish of measurement `name`, until the
  // returned subscription is destroyed (which must happen before this object
  // is). Thread-safe.
  std::unique_ptr<Subscription> Subscribe(const std::string& name,
                                          Callback callback);

  // Delivers `measurement` to the subscribers of its name, on the calling
  // thread and outside this object's lock (a callback may subscribe or
  // unsubscribe). Callers serialise their Publishes per measurement so that
  // subscribers see changes in order. Thread-safe.
  void Publish(const curvd::v1::Measurement& measurement);

  // Subscribers of `name`, for tests and shutdown diagnostics. Thread-safe.
  size_t SubscriberCount(const std::string& name) const;

 private:
  void Unsubscribe(const std::string& name, uint64_t id);

  mutable absl::Mutex mu_;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<
      std::string,
      absl::flat_hash_map<uint64_t, std::shared_ptr<const Callback>>>
      subscribers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace curvd::server

#endif  // CURVD_SERVER_MEASUREMENT_WATCHERS_H_
