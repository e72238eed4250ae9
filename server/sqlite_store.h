// The Store on one SQLite file in WAL mode, with a schema versioned by
// PRAGMA user_version and upgraded by ordered migrations at open.
#ifndef CURVD_SERVER_SQLITE_STORE_H_
#define CURVD_SERVER_SQLITE_STORE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/store.h"

struct sqlite3;

namespace curvd::server {

class SqliteStore : public Store {
 public:
  // The schema version this binary writes; a database with a newer one is
  // refused.
  static constexpr int kSchemaVersion = 1;

  // Opens or creates the database at `path` and migrates it to kSchemaVersion.
  // FailedPrecondition if the file's schema is newer than this binary's;
  // Internal if SQLite fails. The caller owns the result.
  static absl::StatusOr<std::unique_ptr<SqliteStore>> Open(
      const std::string& path);

  // Opens <state_dir>/curvd.db: what curvd serves from.
  static StoreFactory Factory();

  ~SqliteStore() override;

  absl::Status InsertRun(const curvd::v1::Run& run) override;
  absl::StatusOr<curvd::v1::Run> GetRun(const std::string& name) override;
  absl::StatusOr<Page<curvd::v1::Run>> ListRuns(
      int page_size, const std::string& page_token) override;
  absl::Status InsertCheckpoint(
      const std::string& run_name,
      const curvd::v1::Checkpoint& checkpoint) override;
  absl::StatusOr<curvd::v1::Checkpoint> GetCheckpoint(
      const std::string& name) override;
  absl::StatusOr<Page<curvd::v1::Checkpoint>> ListCheckpoints(
      const std::string& run_name, int page_size,
      const std::string& page_token) override;
  absl::Status InsertMeasurement(const std::string& checkpoint_name,
                                 const curvd::v1::Measurement& measurement,
                                 const std::string& request_id) override;
  absl::StatusOr<curvd::v1::Measurement> FindMeasurementByRequestId(
      const std::string& checkpoint_name,
      const std::string& request_id) override;
  absl::StatusOr<curvd::v1::Measurement> GetMeasurement(
      const std::string& name) override;
  absl::Status UpdateMeasurement(
      const curvd::v1::Measurement& measurement) override;
  absl::Status DeleteMeasurement(const std::string& name) override;
  absl::StatusOr<Page<curvd::v1::Measurement>> ListMeasurements(
      const std::string& run_name, const std::string& checkpoint_name,
      int page_size, const std::string& page_token) override;
  absl::StatusOr<DeletedRun> DeleteRun(const std::string& name) override;
  absl::StatusOr<absl::flat_hash_set<std::string>> ReferencedBlobs() override;
  absl::StatusOr<std::vector<curvd::v1::Measurement>> RecoverInterrupted()
      override;
  absl::Status Close() override;

 private:
  explicit SqliteStore(sqlite3* db) : db_(db) {}

  absl::Status Migrate() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CheckOpen() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // DeleteRun's work, inside its transaction.
  absl::StatusOr<DeletedRun> DeleteRunRows(const std::string& name)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // One connection behind one mutex, rather than a writer thread: SQLite admits
  // a single writer anyway, every statement here touches a row or a page of
  // rows, and reading through the same connection sees each acknowledged write
  // at once.
  absl::Mutex mu_;
  sqlite3* db_ ABSL_GUARDED_BY(mu_);
};

}  // namespace curvd::server

#endif  // CURVD_SERVER_SQLITE_STORE_H_
