#include "server/measurement_lifecycle.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/measurements.h"
#include "common/status_macros.h"
#include "google/protobuf/util/time_util.h"
#include "server/spec_conversion.h"
#include "server/timestamps.h"

namespace curvd::server {
namespace {

using ::curvd::v1::Measurement;
using ::google::protobuf::util::TimeUtil;

constexpr absl::Duration kPublishInterval = absl::Milliseconds(100);

using ::curvd::common::IsTerminal;

absl::Status ShutDownError() {
  return absl::UnavailableError(
      "the server shut down before the measurement finished; create it again");
}

// `text` with every byte that is not part of a well-formed UTF-8 sequence
// replaced by U+FFFD. An engine's message can quote bytes of the client's
// input (a name inside a malformed archive); a proto3 string field must be
// UTF-8, or no client can parse the measurement that carries it.
std::string ValidUtf8(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const auto byte = static_cast<unsigned char>(text[i]);
    size_t length = byte < 0x80                    ? 1
                    : byte >= 0xC2 && byte <= 0xDF ? 2
                    : byte >= 0xE0 && byte <= 0xEF ? 3
                    : byte >= 0xF0 && byte <= 0xF4 ? 4
                                                   : 0;
    bool valid = length != 0 && i + length <= text.size();
    for (size_t k = 1; valid && k < length; ++k) {
      valid = (static_cast<unsigned char>(text[i + k]) & 0xC0) == 0x80;
    }
    if (valid && length >= 3) {  // no overlong forms, surrogates or > U+10FFFF
      const auto second = static_cast<unsigned char>(text[i + 1]);
      valid = !(byte == 0xE0 && second < 0xA0) &&
              !(byte == 0xED && second > 0x9F) &&
              !(byte == 0xF0 && second < 0x90) &&
              !(byte == 0xF4 && second > 0x8F);
    }
    if (valid) {
      out.append(text.data() + i, length);
      i += length;
    } else {
      out.append("\xEF\xBF\xBD");
      ++i;
    }
  }
  return out;
}

void SetFailed(const absl::Status& error, Measurement* m) {
  m->set_state(Measurement::FAILED);
  m->set_error_code(static_cast<int32_t>(error.code()));
  m->set_error_message(ValidUtf8(error.message()));
}

double SecondsBetween(const google::protobuf::Timestamp& start,
                      const google::protobuf::Timestamp& end) {
  return static_cast<double>(TimeUtil::TimestampToNanoseconds(end) -
                             TimeUtil::TimestampToNanoseconds(start)) *
         1e-9;
}

}  // namespace

MeasurementLifecycle::MeasurementLifecycle(
    Store* store, JobQueue* queue, MeasurementWatchers* watchers,
    Metrics* metrics, absl::Duration progress_store_interval)
    : store_(store),
      queue_(queue),
      watchers_(watchers),
      metrics_(metrics),
      progress_store_interval_(progress_store_interval) {}

absl::Status MeasurementLifecycle::StoreAndPublish(const Measurement& m) {
  CURVD_RETURN_IF_ERROR(store_->UpdateMeasurement(m));
  watchers_->Publish(m);
  return absl::OkStatus();
}

absl::StatusOr<RunningMeasurement> MeasurementLifecycle::Start(
    const std::string& name, const std::string& device) {
  absl::MutexLock lock(&mu_);
  if (stopping_) {
    return absl::UnavailableError(absl::StrCat(
        "the server is shutting down; ", name, " stays QUEUED"));
  }
  CURVD_ASSIGN_OR_RETURN(Measurement m, store_->GetMeasurement(name));
  if (m.state() != Measurement::QUEUED) {
    return absl::FailedPreconditionError(absl::StrCat(
        name, " is ", Measurement::State_Name(m.state()), ", not QUEUED"));
  }
  m.set_state(Measurement::RUNNING);
  *m.mutable_start_time() = TimestampNow();
  m.mutable_diagnostics()->set_device(device);
  m.set_progress(0);
  m.set_progress_message("starting");
  CURVD_RETURN_IF_ERROR(StoreAndPublish(m));
  Running& running = running_[name];
  running.current = m;
  running.stop = std::make_shared<std::atomic<StopReason>>(StopReason::kNone);
  running.last_publish = running.last_store = absl::Now();
  return RunningMeasurement{m, running.stop};
}

void MeasurementLifecycle::ReportProgress(const std::string& name,
                                          double fraction,
                                          const std::string& message) {
  absl::MutexLock lock(&mu_);
  auto it = running_.find(name);
  if (it == running_.end()) return;
  Running& running = it->second;
  running.current.set_progress(std::clamp(fraction, 0.0, 1.0));
  running.current.set_progress_message(message);
  const absl::Time now = absl::Now();
  if (now - running.last_store >= progress_store_interval_) {
    store_->UpdateMeasurement(running.current).IgnoreError();
    running.last_store = now;
  }
  if (now - running.last_publish >= kPublishInterval) {
    watchers_->Publish(running.current);
    running.last_publish = now;
  }
}

absl::StatusOr<Measurement> MeasurementLifecycle::Finish(
    const std::string& name,
    const absl::StatusOr<core::MeasurementResult>& result,
    const ResultBlobs& blobs) {
  absl::MutexLock lock(&mu_);
  auto it = running_.find(name);
  if (it == running_.end()) {
    return absl::FailedPreconditionError(absl::StrCat(name, " is not RUNNING"));
  }
  Measurement m = std::move(it->second.current);
  const StopReason stop = it->second.stop->load();
  running_.erase(it);
  const std::string device = m.diagnostics().device();
  Outcome outcome;
  int64_t hvps = 0;
  if (result.ok()) {
    m.set_state(Measurement::SUCCEEDED);
    m.set_progress(1);
    m.clear_progress_message();
    ApplyResult(*result, &m);
    ReferenceResultBlobs(blobs, &m);
    hvps = result->hvps;
    outcome = Outcome::kSucceeded;
  } else if (absl::IsCancelled(result.status()) &&
             stop == StopReason::kUserCancel) {
    m.set_state(Measurement::CANCELLED);
    outcome = Outcome::kCancelled;
  } else {
    absl::Status error = result.status();
    if (absl::IsCancelled(error) && stop == StopReason::kShutdown) {
      error = ShutDownError();
    }
    SetFailed(error, &m);
    outcome = Outcome::kFailed;
  }
  *m.mutable_end_time() = TimestampNow();
  // Counted (and its results shown) first, so that whoever sees the terminal
  // state also sees it counted.
  metrics_->MeasurementFinished(KindName(m.spec()), device, outcome,
                                SecondsBetween(m.start_time(), m.end_time()),
                                hvps);
  if (outcome == Outcome::kSucceeded) metrics_->RunResult(m);
  const absl::Status stored = StoreAndPublish(m);
  if (stored.ok()) return m;
  // A result that cannot be stored (a full disk, an oversized row) must not
  // leave the measurement RUNNING for clients until the next start.
  m.clear_result();
  m.set_state(Measurement::FAILED);
  m.set_error_code(static_cast<int32_t>(absl::StatusCode::kInternal));
  m.set_error_message(ValidUtf8(
      absl::StrCat("the result could not be stored: ", stored.message())));
  CURVD_RETURN_IF_ERROR(StoreAndPublish(m));
  return m;
}

absl::StatusOr<Measurement> MeasurementLifecycle::Cancel(
    const std::string& name) {
  absl::MutexLock lock(&mu_);
  if (auto it = running_.find(name); it != running_.end()) {
    it->second.stop->store(StopReason::kUserCancel);
    return it->second.current;
  }
  CURVD_ASSIGN_OR_RETURN(Measurement m, store_->GetMeasurement(name));
  if (IsTerminal(m.state())) return m;
  // QUEUED: a worker that popped the job meanwhile finds it CANCELLED in Start
  // and skips it, so whether Remove found it does not matter.
  queue_->Remove(name);
  m.set_state(Measurement::CANCELLED);
  *m.mutable_end_time() = TimestampNow();
  metrics_->MeasurementFinished(KindName(m.spec()), "", Outcome::kCancelled, 0,
                                0);
  CURVD_RETURN_IF_ERROR(StoreAndPublish(m));
  return m;
}

absl::StatusOr<Measurement> MeasurementLifecycle::FailQueued(
    Measurement queued, const absl::Status& why) {
  absl::MutexLock lock(&mu_);
  SetFailed(why, &queued);
  *queued.mutable_end_time() = TimestampNow();
  metrics_->MeasurementFinished(KindName(queued.spec()), "", Outcome::kFailed,
                                0, 0);
  CURVD_RETURN_IF_ERROR(StoreAndPublish(queued));
  return queued;
}

void MeasurementLifecycle::StopAllRunning() {
  absl::MutexLock lock(&mu_);
  stopping_ = true;
  for (auto& [name, running] : running_) {
    StopReason expected = StopReason::kNone;
    running.stop->compare_exchange_strong(expected, StopReason::kShutdown);
  }
}

int MeasurementLifecycle::AbandonRunning() {
  absl::MutexLock lock(&mu_);
  const int abandoned = static_cast<int>(running_.size());
  for (auto& [name, running] : running_) {
    Measurement& m = running.current;
    SetFailed(ShutDownError(), &m);
    *m.mutable_end_time() = TimestampNow();
    metrics_->MeasurementFinished(KindName(m.spec()), m.diagnostics().device(),
                                  Outcome::kFailed,
                                  SecondsBetween(m.start_time(), m.end_time()),
                                  0);
    // A store that fails here leaves it RUNNING, which the next start fails.
    StoreAndPublish(m).IgnoreError();
  }
  running_.clear();
  return abandoned;
}

size_t MeasurementLifecycle::running() const {
  absl::MutexLock lock(&mu_);
  return running_.size();
}

}  // namespace curvd::server
