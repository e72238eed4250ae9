// Everything the RPC methods work on, owned in one place and built in
// dependency order: store, blobs, storage executor, metrics, queue, lifecycle,
// workers.
#ifndef CURVD_SERVER_SERVICE_CORE_H_
#define CURVD_SERVER_SERVICE_CORE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "core/api/measurement.h"
#include "core/api/sources.h"
#include "server/blob_store.h"
#include "server/device_worker.h"
#include "server/job_queue.h"
#include "server/measurement_lifecycle.h"
#include "server/measurement_watchers.h"
#include "server/metrics.h"
#include "server/replica_placement.h"
#include "server/source_resolver.h"
#include "server/spec_conversion.h"
#include "server/storage_executor.h"
#include "server/store.h"

namespace curvd::server {

struct ServiceOptions {
  // Holds the store and the blobs; created if missing.
  std::string state_dir;
  // Open the store and the blob store of state_dir; the binary passes
  // SqliteStore::Factory() and DiskBlobStore::Factory(), tests may wrap them.
  StoreFactory store_factory;
  BlobStoreFactory blob_store_factory;
  // Threads of the storage executor that runs the RPCs' disk work.
  int storage_threads = 4;
  // Directories that file:// URIs may name.
  std::vector<std::string> data_roots;
  // The executable that loads each TorchScript archive in a child process
  // before a worker loads it (core::ModelSource::archive_checker); empty:
  // archives are loaded in this process only.
  std::string archive_checker;
  // What the blob store may hold (max_blob_bytes, the partial-upload and
  // state-directory quotas).
  BlobStoreLimits blob_limits;
  // Partial uploads untouched this long, and committed blobs that nothing
  // references and nobody asked for this long, are removed (SweepBlobs).
  absl::Duration upload_expiry = absl::Hours(24);
  size_t queue_capacity = 256;
  // One worker each: "cpu", "cuda:0", ...
  std::vector<std::string> devices = {"cpu"};
  std::string version;
  // The bounds of the latest-results family and the device memory reader.
  MetricsOptions metrics;
  // Caps that every measurement request gets from the configuration; the
  // eigenvectors' lowered to what a blob of blob_limits.max_blob_bytes holds
  // (GopEigenvectorFloatsInBlob).
  RequestLimits request_limits;
  // Each device worker raises its thread's nice value by this much (0..19)
  // before its first job, so measurements, and the CPU threads they start,
  // yield the host's cores to a trainer beside the server; serving threads
  // keep the process's priority.
  int worker_nice = 10;
  // Counts the parameters of a model source in a block (the binary passes
  // core::Engine::CountParameters), so that CreateMeasurement refuses an
  // archive run's exact Hessian over the cap before it queues. Empty: only a
  // zoo run's is refused at create; an archive run's fails when it runs.
  std::function<absl::StatusOr<int64_t>(const core::ModelSource&,
                                        const core::ParameterBlock&)>
      count_parameters;
  // Which replica of the set this server is, and so which runs it answers
  // for; the default is a lone server that holds every run.
  ReplicaPlacement placement;
};

class ServiceCore {
 public:
  // Opens the store and the blob store under options.state_dir with their
  // factories, fails measurements left RUNNING by a dead process, sweeps the
  // blobs (SweepBlobs; a failure is logged), makes one engine per device with
  // `engine_factory` and starts its worker, queues again the measurements left
  // QUEUED, and sweeps again every upload_expiry / 4 (at most 10 minutes apart)
  // until CloseStore. Errors from any step (no factory, bad state_dir, newer
  // schema, a store failing during recovery, an engine that cannot be made) are
  // returned, naming the step, and nothing keeps running; what the store held
  // stays for the next start.
  static absl::StatusOr<std::unique_ptr<ServiceCore>> Create(
      const ServiceOptions& options, const EngineFactory& engine_factory);

  // Drains with no grace, then closes the store; joins workers that Drain
  // abandoned, so it blocks until their engine calls return.
  ~ServiceCore();

  // How long a running measurement, asked to stop, has to do so at its next
  // iteration before Drain abandons its worker.
  static constexpr absl::Duration kWorkerStopWait = absl::Seconds(1);

  // Stops taking measurements (CreateMeasurement answers UNAVAILABLE), closes
  // the queue (what is still queued stays QUEUED in the store for the next
  // start), gives running measurements `grace` to finish, asks the rest to
  // stop (they end FAILED with UNAVAILABLE) and joins the workers. A worker
  // still inside the engine kWorkerStopWait later is abandoned: its
  // measurement is recorded FAILED (UNAVAILABLE) at once and Drain returns
  // false without joining it; the process should then close the store and end
  // without destroying this object (a LibTorch call cannot be interrupted).
  // Reads keep working. Idempotent (later calls return the first one's
  // answer); blocks for at most `grace` + kWorkerStopWait.
  bool Drain(absl::Duration grace);

  // Stops the sweeps, runs the storage tasks still scheduled and closes the
  // store (after Drain, once no RPC can reach it); store calls fail with
  // FailedPrecondition afterwards. Idempotent.
  void CloseStore();

  // Held shared by whoever checks that a blob is stored and then records a
  // reference to it (the Create RPCs, a worker storing a result), and
  // exclusively by whoever removes the blobs that nothing references
  // (DeleteRun, SweepBlobs): no reference is ever recorded to a blob being
  // removed.
  absl::Mutex& blob_references() { return blob_references_; }

  struct SweepCounts {
    int partial = 0;
    int committed = 0;
  };
  // Removes the partial uploads last appended to, and the committed blobs
  // that no stored row references and that were last written or asked for,
  // more than options().upload_expiry before `now`. The blobs of a delete
  // that a crash interrupted go this way. Thread-safe.
  absl::StatusOr<SweepCounts> SweepBlobs(absl::Time now);

  // False once Drain began.
  bool accepting() const { return accepting_.load(); }

  // A fresh random measurement id, 16 lowercase hex digits. Thread-safe.
  std::string NewId();

  const ServiceOptions& options() const { return options_; }
  Store& store() { return *store_; }
  BlobStore& blobs() { return *blobs_; }
  StorageExecutor& storage() { return *storage_; }
  Metrics& metrics() { return *metrics_; }
  JobQueue& queue() { return *queue_; }
  MeasurementWatchers& watchers() { return watchers_; }
  MeasurementLifecycle& lifecycle() { return *lifecycle_; }
  const SourceResolver& resolver() const { return *resolver_; }
  // Device classes ("cpu", "cuda") that have a worker.
  bool HasWorkerFor(const std::string& device_class) const;

 private:
  explicit ServiceCore(ServiceOptions options) : options_(std::move(options)) {}

  // The periodic SweepBlobs, until stop_sweeping_.
  void SweepLoop();

  const ServiceOptions options_;
  std::atomic<bool> accepting_{true};
  std::atomic<bool> drained_{false};
  std::atomic<bool> workers_stopped_{true};
  absl::Mutex blob_references_;
  absl::Notification stop_sweeping_;
  std::thread sweeper_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<BlobStore> blobs_;
  std::unique_ptr<StorageExecutor> storage_;
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<JobQueue> queue_;
  MeasurementWatchers watchers_;
  std::unique_ptr<MeasurementLifecycle> lifecycle_;
  std::unique_ptr<SourceResolver> resolver_;
  // Every worker's engine, for splits (DeviceWorker); owned by the workers.
  absl::flat_hash_map<std::string, core::Engine*> engines_by_device_;
  std::vector<std::unique_ptr<DeviceWorker>> workers_;
};

}  // namespace curvd::server

#endif  // CURVD_SERVER_SERVICE_CORE_H_
