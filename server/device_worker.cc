#include "server/device_worker.h"

#include <exception>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "core/api/out_of_memory.h"
#include "server/measurement_sources.h"
#include "server/result_blobs.h"
#include "server/spec_conversion.h"
#include "server/thread_priority.h"

namespace curvd::server {

DeviceWorker::DeviceWorker(
    std::unique_ptr<core::Engine> engine, JobQueue* queue,
    const absl::flat_hash_map<std::string, core::Engine*>* engines,
    Store* store, BlobStore* blobs, absl::Mutex* blob_references,
    const SourceResolver* resolver, MeasurementLifecycle* lifecycle,
    Metrics* metrics, const RequestLimits& limits, int nice)
    : engine_(std::move(engine)),
      device_(engine_->device()),
      queue_(queue),
      engines_(engines),
      store_(store),
      blobs_(blobs),
      blob_references_(blob_references),
      resolver_(resolver),
      lifecycle_(lifecycle),
      metrics_(metrics),
      limits_(limits),
      nice_(nice),
      thread_([this] { Loop(); }) {}

DeviceWorker::~DeviceWorker() { thread_.join(); }

void DeviceWorker::Loop() {
  if (absl::Status lowered = LowerCurrentThreadPriority(nice_); !lowered.ok()) {
    CURVD_LOG(WARNING) << "curvd: the " << device_
                       << " worker keeps its priority: " << lowered;
  }
  while (std::optional<Job> job = queue_->Pop(device_)) {
    absl::StatusOr<RunningMeasurement> running =
        lifecycle_->Start(job->measurement_name, device_);
    // Cancelled while queued, or the server is stopping (it stays QUEUED).
    if (!running.ok()) continue;
    absl::StatusOr<core::MeasurementResult> result = Run(*running);
    // Committed before the result that references them is stored: a crash
    // in between leaves an unreferenced blob, not a missing one; and no
    // sweep removes one that was stored before, in between.
    absl::ReaderMutexLock referencing(blob_references_);
    absl::StatusOr<ResultBlobs> blobs =
        result.ok() ? StoreResultBlobs(*result, blobs_) : ResultBlobs();
    if (!blobs.ok()) result = blobs.status();
    absl::StatusOr<curvd::v1::Measurement> finished = lifecycle_->Finish(
        job->measurement_name, result, blobs.ok() ? *blobs : ResultBlobs());
    if (!finished.ok()) {
      // A store failure lands here (the measurement stays RUNNING in the
      // store and becomes FAILED at the next start), or a measurement that a
      // shutdown abandoned (already FAILED).
      CURVD_LOG(ERROR) << "curvd: cannot record the end of "
                       << job->measurement_name << ": " << finished.status();
    }
  }
}

absl::StatusOr<core::MeasurementResult> DeviceWorker::Run(
    const RunningMeasurement& running) {
  const curvd::v1::Measurement& m = running.measurement;
  CURVD_ASSIGN_OR_RETURN(MeasurementSources sources,
                         ResolveSources(m, *store_, *resolver_));
  // The effective spec holds what CreateMeasurement resolved (llc's
  // use_latest_calibration); measurements stored before it have none.
  const curvd::v1::MeasurementSpec& spec =
      m.has_effective_spec() ? m.effective_spec() : m.spec();
  CURVD_ASSIGN_OR_RETURN(core::MeasurementRequest request,
                         ToCoreRequest(spec, limits_));
  core::Progress progress;
  const std::string measurement_name = m.name();
  progress.report = [this, measurement_name](double fraction,
                                             const std::string& message) {
    lifecycle_->ReportProgress(measurement_name, fraction, message);
  };
  progress.cancelled = [stop = running.stop] {
    return stop->load() != StopReason::kNone;
  };
  std::string not_split;
  const std::vector<std::string> helpers =
      ReserveHelpers(spec, request, sources, &not_split);
  const absl::Cleanup release = [&] { queue_->Release(helpers); };
  try {
    std::vector<core::Engine*> helper_engines;
    for (const std::string& helper : helpers) {
      helper_engines.push_back(engines_->at(helper));
    }
    absl::StatusOr<core::MeasurementResult> result =
        helpers.empty()
            ? engine_->Measure(sources.model, sources.shard, request, progress)
            : engine_->MeasureSplit(helper_engines, sources.model,
                                    sources.shard, request, progress);
    if (result.ok() && result->split.empty()) result->split = not_split;
    // Counted: out of memory at micro-batch 1 (core/engine/oom_retry.cc);
    // not the memory budget's refusals, also ResourceExhausted, made before
    // anything is allocated.
    if (core::IsDeviceOutOfMemory(result.status())) {
      metrics_->DeviceOutOfMemory(device_);
    }
    if (!result.ok()) return resolver_->WithoutBlobPaths(result.status());
    return result;
  } catch (const std::exception& e) {
    // The engine promises not to throw; this keeps a broken promise from taking
    // the whole server down with it.
    return absl::InternalError(absl::StrCat("engine threw: ", e.what()));
  } catch (...) {
    return absl::InternalError("engine threw a non-standard exception");
  }
}

std::vector<std::string> DeviceWorker::ReserveHelpers(
    const curvd::v1::MeasurementSpec& spec,
    const core::MeasurementRequest& request, const MeasurementSources& sources,
    std::string* not_split) {
  if (spec.device_split() == curvd::v1::DEVICE_SPLIT_ONE_DEVICE ||
      core::FirstUnsplitMethod(request.methods) != nullptr) {
    return {};
  }
  const int available = queue_->Idle(DeviceClassOf(device_));
  if (available == 0) return {};
  const bool forced =
      spec.device_split() == curvd::v1::DEVICE_SPLIT_ALL_IDLE_DEVICES;
  // Sized before reserving, so that devices a split would not use stay free
  // for other work. A plan that fails (a corrupt checkpoint) leaves the
  // measurement to report the error itself, on one device.
  const absl::StatusOr<core::SplitPlan> plan = engine_->PlanSplit(
      sources.model, sources.shard, request,
      forced ? core::SplitRule::kAlways : core::SplitRule::kIfLargeEnough,
      available);
  if (!plan.ok()) return {};
  *not_split = plan->note;
  if (plan->helpers == 0) return {};
  return queue_->ReserveIdle(device_, forced, plan->helpers);
}

}  // namespace curvd::server
