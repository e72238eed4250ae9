// The durable record of runs, checkpoints and measurements, behind a small
// interface so that the service can be tested against any implementation.
#ifndef CURVD_SERVER_STORE_H_
#define CURVD_SERVER_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "curvd/v1/resources.pb.h"

namespace curvd::server {

// One page of a list. `next_page_token` is empty on the last page; otherwise it
// is opaque and only valid for the same list (same parent). `item_tokens[i]`
// is the token of the list after items[i] (one per item), so that a caller
// can end the page early (server/list_pages.h).
template <typename T>
struct Page {
  std::vector<T> items;
  std::string next_page_token;
  std::vector<std::string> item_tokens;
};

// What Store::DeleteRun removed.
struct DeletedRun {
  int64_t checkpoints = 0;
  int64_t measurements = 0;
  // Every blob its rows referenced (blob_digests.h); rows of other runs may
  // still reference some of them.
  absl::flat_hash_set<std::string> blob_digests;
};

// All methods are thread-safe. A write that returned OK is durable: it survives
// a crash of the process. Names are full resource names ("runs/r", ...);
// callers validate their form. Errors: NotFound for an unknown name,
// AlreadyExists for a duplicate, InvalidArgument for a page token that does not
// belong to the list, Internal for a storage failure, FailedPrecondition after
// Close().
class Store {
 public:
  virtual ~Store() = default;

  // Inserts `run` (name, model, display_name, create_time; checkpoint_count is
  // derived). AlreadyExists if a run of that name exists.
  virtual absl::Status InsertRun(const curvd::v1::Run& run) = 0;
  // The run with its current checkpoint_count.
  virtual absl::StatusOr<curvd::v1::Run> GetRun(const std::string& name) = 0;
  // Runs in creation order; `page_size` > 0.
  virtual absl::StatusOr<Page<curvd::v1::Run>> ListRuns(
      int page_size, const std::string& page_token) = 0;

  // Inserts a checkpoint of the run `run_name` (which must exist: NotFound).
  // AlreadyExists if that step is stored.
  virtual absl::Status InsertCheckpoint(
      const std::string& run_name, const curvd::v1::Checkpoint& checkpoint) = 0;
  virtual absl::StatusOr<curvd::v1::Checkpoint> GetCheckpoint(
      const std::string& name) = 0;
  // Checkpoints of `run_name` by ascending step.
  virtual absl::StatusOr<Page<curvd::v1::Checkpoint>> ListCheckpoints(
      const std::string& run_name, int page_size,
      const std::string& page_token) = 0;

  // Inserts a measurement under `checkpoint_name` (NotFound if it does not
  // exist). A non-empty `request_id` is unique per checkpoint: a second insert
  // with it is AlreadyExists (find the first with FindMeasurementByRequestId).
  virtual absl::Status InsertMeasurement(
      const std::string& checkpoint_name,
      const curvd::v1::Measurement& measurement,
      const std::string& request_id) = 0;
  // NotFound when no measurement of `checkpoint_name` carries `request_id`.
  virtual absl::StatusOr<curvd::v1::Measurement> FindMeasurementByRequestId(
      const std::string& checkpoint_name, const std::string& request_id) = 0;
  virtual absl::StatusOr<curvd::v1::Measurement> GetMeasurement(
      const std::string& name) = 0;
  // Replaces every mutable field (state, error, progress, times, diagnostics,
  // result) of the stored measurement named `measurement.name()`. The caller
  // owns the state machine; the store records what it is given.
  virtual absl::Status UpdateMeasurement(
      const curvd::v1::Measurement& measurement) = 0;
  // Removes a measurement that was never acknowledged to a client (its queueing
  // failed). NotFound if absent.
  virtual absl::Status DeleteMeasurement(const std::string& name) = 0;
  // Measurements in creation order, of one checkpoint, or of every checkpoint
  // of `run_name` when `checkpoint_name` is empty.
  virtual absl::StatusOr<Page<curvd::v1::Measurement>> ListMeasurements(
      const std::string& run_name, const std::string& checkpoint_name,
      int page_size, const std::string& page_token) = 0;

  // Deletes the run `name` with its checkpoints and measurements, in one
  // transaction: all of it or nothing. NotFound if absent; FailedPrecondition
  // (naming one) while a measurement of the run is QUEUED or RUNNING, so that
  // no queued job or worker is left holding a deleted measurement.
  virtual absl::StatusOr<DeletedRun> DeleteRun(const std::string& name) = 0;

  // Every blob that a stored row references (blob_digests.h): what must not be
  // removed.
  virtual absl::StatusOr<absl::flat_hash_set<std::string>>
  ReferencedBlobs() = 0;

  // Start-up recovery, before any job runs: measurements left RUNNING by a
  // process that died become FAILED (UNAVAILABLE, "server restarted while the
  // measurement was running"); returns the QUEUED ones in creation order, to be
  // queued again.
  virtual absl::StatusOr<std::vector<curvd::v1::Measurement>>
  RecoverInterrupted() = 0;

  // Checkpoints the write-ahead log and closes the store; later calls fail with
  // FailedPrecondition. Idempotent.
  virtual absl::Status Close() = 0;
};

// Opens the store kept under a state directory.
using StoreFactory = std::function<absl::StatusOr<std::unique_ptr<Store>>(
    const std::string& state_dir)>;

}  // namespace curvd::server

#endif  // CURVD_SERVER_STORE_H_
