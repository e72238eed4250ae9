// Hands checkpoints from a training loop to a background thread, so that the
// trainer never waits on an upload or a measurement (unless it asks to, with
// Backpressure::kBlock). When the trainer produces checkpoints faster than they
// are processed, the policy chosen at construction decides what happens; by
// default only the newest pending checkpoint is kept, since a fresher
// checkpoint says more about where training is now.
//
// Weights only after the first: a run holds its architecture (CreateRun's
// ModelSpec: a zoo spec, or a TorchScript archive uploaded once), so every
// checkpoint the trainer hands over is a safetensors state dict for that model
// and nothing else travels again.
#ifndef CURVD_CLIENT_BACKGROUND_UPLOADER_H_
#define CURVD_CLIENT_BACKGROUND_UPLOADER_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "client/curvd_client.h"
#include "curvd/v1/resources.pb.h"

namespace curvd::client {

// One checkpoint as the trainer hands it over.
struct PendingCheckpoint {
  int64_t step = 0;
  double train_loss = 0;
  // A safetensors state dict for the run's model.
  std::string safetensors;
};

// What Submit does while the background thread is busy.
enum class Backpressure {
  // Keep only the newest pending checkpoint: a new one replaces the one
  // waiting (counted as dropped, without a log line: that is the policy).
  kCoalesce,
  // Keep up to `capacity` pending checkpoints; a new one beyond that drops the
  // oldest pending one, with a log line.
  kQueue,
  // Keep up to `capacity` pending checkpoints; Submit waits until there is
  // room, so nothing is dropped and the trainer slows to the server's pace.
  kBlock,
};

// "coalesce", "queue" or "block".
absl::string_view BackpressureName(Backpressure policy);
// The policy named by BackpressureName; InvalidArgument naming the choices
// otherwise.
absl::StatusOr<Backpressure> ParseBackpressure(absl::string_view name);

// What the background thread does with each checkpoint. An error is reported
// through the uploader's log and counted; the thread goes on with the next one.
using CheckpointProcessor =
    std::function<absl::Status(const PendingCheckpoint&)>;

class BackgroundUploader {
 public:
  struct Options {
    // Checkpoints waiting (not counting the one being processed) under kQueue
    // and kBlock; at least 1. kCoalesce keeps one.
    size_t capacity = 2;
    // Receives one line per kQueue drop or processing error; called from
    // either thread.
    std::function<void(const std::string&)> log;
    Backpressure policy = Backpressure::kCoalesce;
  };

  struct Stats {
    int64_t submitted = 0;
    int64_t processed = 0;  // the processor returned OK
    int64_t failed = 0;     // the processor returned an error
    int64_t dropped = 0;  // replaced or evicted while pending, never processed
  };

  // Starts the background thread, which calls `process` for each checkpoint in
  // submission order.
  BackgroundUploader(Options options, CheckpointProcessor process);
  // Close()s.
  ~BackgroundUploader();

  BackgroundUploader(const BackgroundUploader&) = delete;
  BackgroundUploader& operator=(const BackgroundUploader&) = delete;

  // Enqueues `checkpoint` under the policy: kCoalesce replaces a pending
  // checkpoint and returns its step; kQueue, when `capacity` are pending,
  // drops the oldest, logs it and returns its step; kBlock waits until fewer
  // than `capacity` are pending and returns nullopt. After Close() (also one
  // that ends a kBlock wait) the checkpoint is dropped and its own step
  // returned. Thread-safe.
  std::optional<int64_t> Submit(PendingCheckpoint checkpoint);

  // Stops accepting checkpoints, processes those still pending, and joins the
  // thread. Idempotent.
  void Close();

  // Steps evicted so far, oldest first.
  std::vector<int64_t> DroppedSteps() const;
  Stats stats() const;

 private:
  void Loop();
  void Log(const std::string& line) const;
  // Pending checkpoints the policy allows.
  size_t Capacity() const;

  const Options options_;
  const CheckpointProcessor process_;
  mutable absl::Mutex mu_;
  std::deque<PendingCheckpoint> queue_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  Stats stats_ ABSL_GUARDED_BY(mu_);
  std::vector<int64_t> dropped_steps_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

// What the trainer's uploader does with a checkpoint of run `run_id`: uploads
// the state dict, records the checkpoint (format SAFETENSORS, with its train
// loss), creates one measurement per spec (request ids derived from run, step
// and kind, so a retry does not measure twice), waits for each, and passes it
// to `on_result`, FAILED ones included. `client` must outlive the processor.
CheckpointProcessor MeasureCheckpointProcessor(
    Client* client, std::string run_id,
    std::vector<curvd::v1::MeasurementSpec> specs,
    std::function<void(const PendingCheckpoint&, const curvd::v1::Measurement&)>
        on_result,
    absl::Duration measurement_timeout = absl::Minutes(30));

}  // namespace curvd::client

#endif  // CURVD_CLIENT_BACKGROUND_UPLOADER_H_
