#include "client/background_uploader.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace curvd::client {

namespace v1 = ::curvd::v1;

BackgroundUploader::BackgroundUploader(Options options,
                                       CheckpointProcessor process)
    : options_(std::move(options)), process_(std::move(process)) {
  thread_ = std::thread([this] { Loop(); });
}

BackgroundUploader::~BackgroundUploader() { Close(); }

absl::string_view BackpressureName(Backpressure policy) {
  switch (policy) {
    case Backpressure::kCoalesce:
      return "coalesce";
    case Backpressure::kQueue:
      return "queue";
    case Backpressure::kBlock:
      return "block";
  }
  return "";
}

absl::StatusOr<Backpressure> ParseBackpressure(absl::string_view name) {
  for (Backpressure policy :
       {Backpressure::kCoalesce, Backpressure::kQueue, Backpressure::kBlock}) {
    if (name == BackpressureName(policy)) return policy;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "backpressure policy '", name, "' is not coalesce, queue or block"));
}

size_t BackgroundUploader::Capacity() const {
  return options_.policy == Backpressure::kCoalesce
             ? 1
             : std::max<size_t>(1, options_.capacity);
}

std::optional<int64_t> BackgroundUploader::Submit(
    PendingCheckpoint checkpoint) {
  std::optional<int64_t> dropped;
  bool closed = false;
  {
    absl::MutexLock lock(&mu_);
    ++stats_.submitted;
    if (options_.policy == Backpressure::kBlock) {
      mu_.Await(absl::Condition(
          +[](BackgroundUploader* self)
               ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
                 return self->closed_ || self->queue_.size() < self->Capacity();
               },
          this));
    }
    closed = closed_;
    if (closed) {
      dropped = checkpoint.step;
    } else {
      if (queue_.size() >= Capacity()) {
        dropped = queue_.front().step;
        queue_.pop_front();
      }
      queue_.push_back(std::move(checkpoint));
    }
    if (dropped.has_value()) {
      ++stats_.dropped;
      dropped_steps_.push_back(*dropped);
    }
  }
  if (closed) {
    Log(absl::StrCat("uploader: dropped checkpoint of step ", *dropped,
                     " (submitted after Close)"));
  } else if (dropped.has_value() && options_.policy == Backpressure::kQueue) {
    Log(absl::StrCat("uploader: dropped checkpoint of step ", *dropped,
                     " (queue of ", Capacity(),
                     " full: measurements are slower than checkpoints)"));
  }
  return dropped;
}

void BackgroundUploader::Close() {
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

std::vector<int64_t> BackgroundUploader::DroppedSteps() const {
  absl::MutexLock lock(&mu_);
  return dropped_steps_;
}

BackgroundUploader::Stats BackgroundUploader::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

void BackgroundUploader::Loop() {
  while (true) {
    PendingCheckpoint checkpoint;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](BackgroundUploader* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(
               self->mu_) { return self->closed_ || !self->queue_.empty(); },
          this));
      if (queue_.empty()) return;  // closed and drained
      checkpoint = std::move(queue_.front());
      queue_.pop_front();
    }
    absl::Status status = process_(checkpoint);
    {
      absl::MutexLock lock(&mu_);
      ++(status.ok() ? stats_.processed : stats_.failed);
    }
    if (!status.ok()) {
      Log(absl::StrCat("uploader: checkpoint of step ", checkpoint.step,
                       " failed: ", status.ToString()));
    }
  }
}

void BackgroundUploader::Log(const std::string& line) const {
  if (options_.log) options_.log(line);
}

CheckpointProcessor MeasureCheckpointProcessor(
    Client* client, std::string run_id, std::vector<v1::MeasurementSpec> specs,
    std::function<void(const PendingCheckpoint&, const v1::Measurement&)>
        on_result,
    absl::Duration measurement_timeout) {
  return [client, run_id = std::move(run_id), specs = std::move(specs),
          on_result = std::move(on_result), measurement_timeout](
             const PendingCheckpoint& pending) -> absl::Status {
    absl::StatusOr<std::string> digest =
        client->UploadBlob(pending.safetensors, run_id);
    if (!digest.ok()) return digest.status();
    v1::Checkpoint checkpoint;
    checkpoint.set_step(pending.step);
    checkpoint.set_format(v1::CHECKPOINT_FORMAT_SAFETENSORS);
    checkpoint.set_digest(*digest);
    checkpoint.set_train_loss(pending.train_loss);
    absl::StatusOr<v1::Checkpoint> created =
        client->CreateCheckpoint(run_id, checkpoint);
    if (!created.ok()) return created.status();

    // Queue every measurement before waiting on any, so the server can schedule
    // them back to back on a model it already holds.
    std::vector<std::string> names;
    for (const v1::MeasurementSpec& spec : specs) {
      absl::StatusOr<v1::Measurement> measurement = client->CreateMeasurement(
          created->name(), spec,
          absl::StrCat(run_id, "-", pending.step, "-", KindName(spec)));
      if (!measurement.ok()) return measurement.status();
      names.push_back(measurement->name());
    }
    for (const std::string& name : names) {
      absl::StatusOr<v1::Measurement> done =
          client->WaitMeasurement(name, nullptr, measurement_timeout);
      if (!done.ok()) return done.status();
      if (on_result) on_result(pending, *done);
    }
    return absl::OkStatus();
  };
}

}  // namespace curvd::client
