// The one-way state machine of measurements, QUEUED -> RUNNING -> SUCCEEDED |
// FAILED | CANCELLED: an ending is counted in metrics, then every transition is
// written to the store and published to watchers, in that order.
#ifndef CURVD_SERVER_MEASUREMENT_LIFECYCLE_H_
#define CURVD_SERVER_MEASUREMENT_LIFECYCLE_H_

#include <atomic>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/api/measurement.h"
#include "curvd/v1/resources.pb.h"
#include "server/job_queue.h"
#include "server/measurement_watchers.h"
#include "server/metrics.h"
#include "server/result_blobs.h"
#include "server/store.h"

namespace curvd::server {

// Why a running measurement was asked to stop.
enum class StopReason : int { kNone = 0, kUserCancel = 1, kShutdown = 2 };

// The handle a worker holds while a measurement runs.
struct RunningMeasurement {
  curvd::v1::Measurement measurement;  // as stored when it became RUNNING
  // Polled by the engine between iterations; non-kNone means stop.
  std::shared_ptr<std::atomic<StopReason>> stop;
};

// All methods are thread-safe; transitions are serialised by one lock, which
// also orders the Publishes that watchers see. The referenced objects must
// outlive this.
class MeasurementLifecycle {
 public:
  // Progress is stored at most every `progress_store_interval`.
  MeasurementLifecycle(
      Store* store, JobQueue* queue, MeasurementWatchers* watchers,
      Metrics* metrics,
      absl::Duration progress_store_interval = absl::Seconds(1));

  // QUEUED -> RUNNING on `device`. FailedPrecondition if the measurement is no
  // longer QUEUED (it was cancelled while queued: the worker skips it);
  // Unavailable after StopAllRunning, leaving it QUEUED for the next start.
  absl::StatusOr<RunningMeasurement> Start(const std::string& name,
                                           const std::string& device);

  // Records progress of a RUNNING measurement: published at most every 100 ms
  // and stored at most every progress_store_interval, so a chatty engine
  // cannot flood the store. A failed progress write is not the job's failure:
  // the next one retries it and the terminal write supersedes it.
  void ReportProgress(const std::string& name, double fraction,
                      const std::string& message);

  // RUNNING -> SUCCEEDED with `result` and `blobs`, the references to its
  // arrays (committed before), or -> FAILED with its error code and
  // message; a Cancelled error becomes CANCELLED after a user's cancel, or
  // FAILED (UNAVAILABLE) after a shutdown. Returns the stored terminal
  // measurement. When that write fails, it records FAILED (INTERNAL, "the
  // result could not be stored: ...") instead, so that clients see the end;
  // if that fails too, the store's error is returned and the measurement
  // stays RUNNING in the store until the next start fails it.
  absl::StatusOr<curvd::v1::Measurement> Finish(
      const std::string& name,
      const absl::StatusOr<core::MeasurementResult>& result,
      const ResultBlobs& blobs = ResultBlobs());

  // QUEUED -> CANCELLED at once (and out of the queue); for a RUNNING one, asks
  // the worker to stop at its next iteration and returns it still RUNNING; a
  // terminal one is returned unchanged. NotFound for an unknown name.
  absl::StatusOr<curvd::v1::Measurement> Cancel(const std::string& name);

  // QUEUED -> FAILED with `why` (not OK), for queued work that can never run
  // (recovered after a restart that lost the device it asked for). The caller
  // has not queued it. Returns the stored measurement.
  absl::StatusOr<curvd::v1::Measurement> FailQueued(
      curvd::v1::Measurement queued, const absl::Status& why);

  // Asks every running measurement to stop because the server shuts down, and
  // refuses to start any more (a worker may have taken a job off the queue
  // just before it closed).
  void StopAllRunning();

  // After StopAllRunning, for workers that did not stop in time (inside one
  // long engine call): records every measurement still RUNNING as FAILED
  // (UNAVAILABLE), as a restart would, and forgets it, so that the store is
  // final and a late Finish or progress report of its worker changes nothing.
  // Returns how many there were.
  int AbandonRunning();

  // Number of RUNNING measurements.
  size_t running() const;

 private:
  struct Running {
    curvd::v1::Measurement current;
    std::shared_ptr<std::atomic<StopReason>> stop;
    absl::Time last_publish;
    absl::Time last_store;
  };

  absl::Status StoreAndPublish(const curvd::v1::Measurement& m)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Store* const store_;
  JobQueue* const queue_;
  MeasurementWatchers* const watchers_;
  Metrics* const metrics_;
  const absl::Duration progress_store_interval_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Running> running_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace curvd::server

#endif  // CURVD_SERVER_MEASUREMENT_LIFECYCLE_H_
