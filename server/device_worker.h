// One thread per device: takes jobs from the queue and runs them on the
// device's engine, reporting through the measurement lifecycle.
#ifndef CURVD_SERVER_DEVICE_WORKER_H_
#define CURVD_SERVER_DEVICE_WORKER_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/api/engine.h"
#include "server/blob_store.h"
#include "server/job_queue.h"
#include "server/measurement_lifecycle.h"
#include "server/measurement_sources.h"
#include "server/metrics.h"
#include "server/source_resolver.h"
#include "server/spec_conversion.h"
#include "server/store.h"

namespace curvd::server {

// Makes the engine of a device ("cpu", "cuda:0"); core::Engine::Create in the
// binary, a fake in tests.
using EngineFactory =
    std::function<absl::StatusOr<std::unique_ptr<core::Engine>>(
        const std::string& device)>;

class DeviceWorker {
 public:
  // Takes ownership of `engine`; the other objects must outlive the worker.
  // `engines` holds every worker's engine by device (this one's too): a
  // measurement that may be split (v1::DeviceSplit) reserves the idle ones of
  // its class in `queue` (JobQueue::ReserveIdle) and runs on them with its
  // own (Engine::MeasureSplit), releasing them when it ends. Every request
  // gets `limits`; a result's large arrays go to `blobs`
  // (result_blobs.h) before it is recorded, with `blob_references` held
  // shared from the one to the other (ServiceCore::blob_references); the
  // engine running out of memory is counted in `metrics`. The thread starts at
  // once, raises its nice value by `nice` (see LowerCurrentThreadPriority; a
  // refusal is logged and the worker runs on) and serves jobs until `queue` is
  // closed.
  DeviceWorker(std::unique_ptr<core::Engine> engine, JobQueue* queue,
               const absl::flat_hash_map<std::string, core::Engine*>* engines,
               Store* store, BlobStore* blobs, absl::Mutex* blob_references,
               const SourceResolver* resolver, MeasurementLifecycle* lifecycle,
               Metrics* metrics, const RequestLimits& limits, int nice);
  // Joins the thread: close the queue first, and stop running measurements
  // (MeasurementLifecycle::StopAllRunning) to join sooner.
  ~DeviceWorker();

  const std::string& device() const { return device_; }

 private:
  void Loop();
  // Resolves sources and runs one RUNNING measurement; never throws.
  absl::StatusOr<core::MeasurementResult> Run(
      const RunningMeasurement& running);
  // The devices reserved to share a measurement of `spec` (empty: this one
  // alone, with the engine's reason in *not_split when it gave one).
  std::vector<std::string> ReserveHelpers(
      const curvd::v1::MeasurementSpec& spec,
      const core::MeasurementRequest& request,
      const MeasurementSources& sources, std::string* not_split);

  std::unique_ptr<core::Engine> engine_;
  const std::string device_;
  JobQueue* const queue_;
  const absl::flat_hash_map<std::string, core::Engine*>* const engines_;
  Store* const store_;
  BlobStore* const blobs_;
  absl::Mutex* const blob_references_;
  const SourceResolver* const resolver_;
  MeasurementLifecycle* const lifecycle_;
  Metrics* const metrics_;
  const RequestLimits limits_;
  const int nice_;
  std::thread thread_;
};

}  // namespace curvd::server

#endif  // CURVD_SERVER_DEVICE_WORKER_H_
