#include "server/service_core.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "server/measurement_sources.h"
#include "server/result_blobs.h"

namespace curvd::server {

absl::StatusOr<std::unique_ptr<ServiceCore>> ServiceCore::Create(
    const ServiceOptions& options, const EngineFactory& engine_factory) {
  namespace fs = std::filesystem;
  std::error_code error;
  fs::create_directories(options.state_dir, error);
  if (error) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create --state_dir ", options.state_dir, ": ",
                     error.message()));
  }
  if (!options.store_factory || !options.blob_store_factory) {
    return absl::InvalidArgumentError(
        "ServiceOptions needs a store_factory and a blob_store_factory");
  }
  std::unique_ptr<ServiceCore> core(new ServiceCore(options));
  CURVD_ASSIGN_OR_RETURN(core->store_,
                         options.store_factory(options.state_dir));
  CURVD_ASSIGN_OR_RETURN(
      core->blobs_,
      options.blob_store_factory(options.state_dir, options.blob_limits));
  core->storage_ = std::make_unique<StorageExecutor>(options.storage_threads);
  core->metrics_ = std::make_unique<Metrics>(options.devices, options.version,
                                             options.metrics);
  Metrics* metrics = core->metrics_.get();
  metrics->SetQueueCapacity(options.queue_capacity);
  core->queue_ = std::make_unique<JobQueue>(
      options.queue_capacity,
      [metrics](size_t depth) { metrics->SetQueueDepth(depth); });
  core->lifecycle_ = std::make_unique<MeasurementLifecycle>(
      core->store_.get(), core->queue_.get(), &core->watchers_, metrics);
  core->resolver_ = std::make_unique<SourceResolver>(
      core->blobs_.get(), options.data_roots, options.archive_checker);

  absl::StatusOr<std::vector<curvd::v1::Measurement>> queued =
      core->store_->RecoverInterrupted();
  if (!queued.ok()) {
    return absl::Status(queued.status().code(),
                        absl::StrCat("recovering interrupted measurements: ",
                                     queued.status().message()));
  }
  if (absl::Status swept = core->SweepBlobs(absl::Now()).status();
      !swept.ok()) {
    CURVD_LOG(WARNING) << "curvd: sweeping blobs at start: " << swept;
  }
  std::vector<std::unique_ptr<core::Engine>> engines;
  for (const std::string& device : options.devices) {
    absl::StatusOr<std::unique_ptr<core::Engine>> engine =
        engine_factory(device);
    if (!engine.ok()) {
      return absl::Status(
          engine.status().code(),
          absl::StrCat("device ", device, ": ", engine.status().message()));
    }
    engines.push_back(*std::move(engine));
  }
  for (const curvd::v1::Measurement& m : *queued) {
    const std::string& device = m.spec().device();
    if (!device.empty() && !core->HasWorkerFor(device)) {
      CURVD_RETURN_IF_ERROR(
          core->lifecycle_
              ->FailQueued(m, absl::FailedPreconditionError(absl::StrCat(
                                  "the server restarted without a ", device,
                                  " worker; create the measurement again")))
              .status());
      continue;
    }
    const std::string checkpoint =
        m.name().substr(0, m.name().find("/measurements/"));
    const std::string run =
        checkpoint.substr(0, checkpoint.find("/checkpoints/"));
    // Work acknowledged before the restart is queued even beyond the capacity.
    CURVD_RETURN_IF_ERROR(
        core->queue_->Push(JobOf(m, run, *core->store_, *core->resolver_),
                           /*over_capacity_ok=*/true));
  }
  RequestLimits limits = options.request_limits;
  limits.gop_max_eigenvector_floats =
      std::min(limits.gop_max_eigenvector_floats,
               GopEigenvectorFloatsInBlob(options.blob_limits.max_blob_bytes));
  for (const auto& engine : engines) {
    core->engines_by_device_[engine->device()] = engine.get();
  }
  for (auto& engine : engines) {
    core->workers_.push_back(std::make_unique<DeviceWorker>(
        std::move(engine), core->queue_.get(), &core->engines_by_device_,
        core->store_.get(), core->blobs_.get(), &core->blob_references_,
        core->resolver_.get(), core->lifecycle_.get(), metrics, limits,
        options.worker_nice));
  }
  core->sweeper_ = std::thread([core = core.get()] { core->SweepLoop(); });
  return core;
}

ServiceCore::~ServiceCore() {
  Drain(absl::ZeroDuration());
  CloseStore();
}

bool ServiceCore::Drain(absl::Duration grace) {
  if (drained_.exchange(true)) return workers_stopped_.load();
  accepting_ = false;
  if (queue_ == nullptr)
    return true;  // Create failed before there was anything to drain
  queue_->Close();
  const auto wait_for_running = [this](absl::Time deadline) {
    while (lifecycle_->running() > 0 && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(20));
    }
  };
  wait_for_running(absl::Now() + grace);
  lifecycle_->StopAllRunning();
  wait_for_running(absl::Now() + kWorkerStopWait);
  if (const int abandoned = lifecycle_->AbandonRunning(); abandoned > 0) {
    CURVD_LOG(WARNING) << "curvd: " << abandoned
                       << " measurement(s) did not stop within the grace "
                          "period; recorded FAILED, their workers abandoned";
    workers_stopped_ = false;
    return false;
  }
  workers_.clear();  // joins: each worker ended its measurement and sees the
                     // closed queue
  return true;
}

void ServiceCore::CloseStore() {
  if (!stop_sweeping_.HasBeenNotified()) stop_sweeping_.Notify();
  if (sweeper_.joinable()) sweeper_.join();
  if (storage_ != nullptr) storage_->Stop();
  if (store_ == nullptr) return;
  absl::Status closed = store_->Close();
  if (!closed.ok()) CURVD_LOG(ERROR) << "curvd: closing the store: " << closed;
}

absl::StatusOr<ServiceCore::SweepCounts> ServiceCore::SweepBlobs(
    absl::Time now) {
  const absl::Time before = now - options_.upload_expiry;
  SweepCounts counts;
  counts.partial = blobs_->RemovePartialsBefore(before);
  absl::MutexLock lock(&blob_references_);
  // Listed under the lock: a blob referenced meanwhile is in `referenced`.
  const std::vector<std::string> old = blobs_->CommittedBefore(before);
  if (old.empty()) return counts;
  CURVD_ASSIGN_OR_RETURN(const absl::flat_hash_set<std::string> referenced,
                         store_->ReferencedBlobs());
  for (const std::string& digest : old) {
    if (referenced.contains(digest)) continue;
    CURVD_RETURN_IF_ERROR(blobs_->Remove(digest).status());
    ++counts.committed;
  }
  return counts;
}

void ServiceCore::SweepLoop() {
  const absl::Duration period = std::clamp(options_.upload_expiry / 4,
                                           absl::Seconds(1), absl::Minutes(10));
  while (!stop_sweeping_.WaitForNotificationWithTimeout(period)) {
    absl::StatusOr<SweepCounts> swept = SweepBlobs(absl::Now());
    if (!swept.ok()) {
      CURVD_LOG(WARNING) << "curvd: sweeping blobs: " << swept.status();
    } else if (swept->partial + swept->committed > 0) {
      CURVD_LOG(INFO) << "curvd: removed " << swept->partial
                      << " stale partial upload(s) and " << swept->committed
                      << " unreferenced blob(s)";
    }
  }
}

std::string ServiceCore::NewId() {
  thread_local absl::BitGen gen;
  return absl::StrFormat("%016x", absl::Uniform<uint64_t>(gen));
}

bool ServiceCore::HasWorkerFor(const std::string& device_class) const {
  for (const std::string& device : options_.devices) {
    if (DeviceClassOf(device) == device_class) return true;
  }
  return false;
}

}  // namespace curvd::server
