#include "server/sqlite_store.h"

#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "google/protobuf/util/time_util.h"
#include "server/blob_digests.h"
#include "server/spec_conversion.h"
#include "server/timestamps.h"

namespace curvd::server {
namespace {

using ::curvd::v1::Checkpoint;
using ::curvd::v1::Measurement;
using ::curvd::v1::Run;
using ::google::protobuf::util::TimeUtil;

// Migration i brings user_version from i to i + 1. Append, never edit: a
// database in the field has run the earlier ones.
constexpr const char* kMigrations[] = {
    R"sql(
CREATE TABLE runs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL UNIQUE,
  create_time_us INTEGER NOT NULL,
  body BLOB NOT NULL  -- curvd.v1.Run without the derived checkpoint_count
);
CREATE TABLE checkpoints (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  run TEXT NOT NULL REFERENCES runs(name),
  step INTEGER NOT NULL,
  name TEXT NOT NULL UNIQUE,
  create_time_us INTEGER NOT NULL,
  body BLOB NOT NULL,  -- curvd.v1.Checkpoint
  UNIQUE (run, step)
);
CREATE TABLE measurements (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL UNIQUE,
  run TEXT NOT NULL,
  checkpoint TEXT NOT NULL REFERENCES checkpoints(name),
  request_id TEXT,  -- NULL when none, so that the unique index ignores it
  kind TEXT NOT NULL,
  state INTEGER NOT NULL,
  spec BLOB NOT NULL,  -- curvd.v1.MeasurementSpec
  create_time_us INTEGER NOT NULL,
  start_time_us INTEGER,
  end_time_us INTEGER,
  device TEXT NOT NULL DEFAULT '',
  error_code INTEGER NOT NULL DEFAULT 0,
  error_message TEXT NOT NULL DEFAULT '',
  progress REAL NOT NULL DEFAULT 0,
  progress_message TEXT NOT NULL DEFAULT '',
  result BLOB  -- curvd.v1.Measurement holding only diagnostics and the result
);
CREATE UNIQUE INDEX measurements_by_request ON measurements (checkpoint, request_id);
CREATE INDEX measurements_by_checkpoint ON measurements (checkpoint, id);
CREATE INDEX measurements_by_run ON measurements (run, id);
CREATE INDEX measurements_by_state ON measurements (state);
)sql",
};
constexpr int kMigrationCount = sizeof(kMigrations) / sizeof(kMigrations[0]);
static_assert(kMigrationCount == SqliteStore::kSchemaVersion);

constexpr char kMeasurementColumns[] =
    "name, spec, state, error_code, error_message, progress, progress_message, "
    "create_time_us, start_time_us, end_time_us, result";

absl::Status SqliteError(sqlite3* db, absl::string_view what) {
  return absl::InternalError(
      absl::StrCat("sqlite: ", what, ": ", sqlite3_errmsg(db)));
}

// A prepared statement, finalized on destruction.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db) {
    status_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) == SQLITE_OK
                  ? absl::OkStatus()
                  : SqliteError(db, sql);
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  const absl::Status& status() const { return status_; }

  void Bind(int index, int64_t value) {
    sqlite3_bind_int64(stmt_, index, value);
  }
  void Bind(int index, absl::string_view text) {
    sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()),
                      SQLITE_TRANSIENT);
  }
  void BindBlob(int index, const std::string& bytes) {
    sqlite3_bind_blob(stmt_, index, bytes.data(),
                      static_cast<int>(bytes.size()), SQLITE_TRANSIENT);
  }
  void BindDouble(int index, double value) {
    sqlite3_bind_double(stmt_, index, value);
  }
  void BindNull(int index) { sqlite3_bind_null(stmt_, index); }

  // True while a row is available; an error status on failure; false at the
  // end.
  absl::StatusOr<bool> Step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    if (rc == SQLITE_CONSTRAINT) {
      return absl::AlreadyExistsError(
          absl::StrCat("constraint violated: ", sqlite3_errmsg(db_)));
    }
    return SqliteError(db_, "step");
  }
  // Runs a statement that returns no rows.
  absl::Status Run() { return Step().status(); }

  int Columns() const { return sqlite3_column_count(stmt_); }
  int64_t Int(int column) const { return sqlite3_column_int64(stmt_, column); }
  double Double(int column) const {
    return sqlite3_column_double(stmt_, column);
  }
  bool IsNull(int column) const {
    return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
  }
  std::string Text(int column) const {
    const void* data = sqlite3_column_blob(stmt_, column);
    int size = sqlite3_column_bytes(stmt_, column);
    return data == nullptr ? std::string()
                           : std::string(static_cast<const char*>(data), size);
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  absl::Status status_;
};

absl::Status Exec(sqlite3* db, const char* sql) {
  char* error = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    absl::Status status = absl::InternalError(
        absl::StrCat("sqlite: ", error ? error : "exec failed"));
    sqlite3_free(error);
    return status;
  }
  return absl::OkStatus();
}

int64_t ToMicros(const google::protobuf::Timestamp& t) {
  return TimeUtil::TimestampToMicroseconds(t);
}

google::protobuf::Timestamp FromMicros(int64_t us) {
  return TimeUtil::MicrosecondsToTimestamp(us);
}

// Page tokens are "<scope>\n<last key>" in web-safe base64: opaque to clients,
// and bound to the list they came from so that a token cannot page another
// list.
std::string EncodePageToken(absl::string_view scope, int64_t last_key) {
  return absl::WebSafeBase64Escape(absl::StrCat(scope, "\n", last_key));
}

absl::StatusOr<int64_t> DecodePageToken(absl::string_view scope,
                                        const std::string& token) {
  if (token.empty()) return INT64_MIN;
  std::string raw;
  int64_t key = 0;
  if (absl::WebSafeBase64Unescape(token, &raw)) {
    std::pair<std::string, std::string> parts = absl::StrSplit(raw, '\n');
    if (parts.first == scope && absl::SimpleAtoi(parts.second, &key))
      return key;
  }
  return absl::InvalidArgumentError("page_token is not a token of this list");
}

// Reads one page from `stmt`, a query for up to page_size + 1 rows in key
// order: the extra row only says that a next page exists, whose token carries
// the key (column `key_column`) of the last row returned.
template <typename T, typename ReadRow>
absl::StatusOr<Page<T>> ReadPage(Statement& stmt, int page_size,
                                 absl::string_view scope, int key_column,
                                 const ReadRow& read_row) {
  Page<T> page;
  while (true) {
    CURVD_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    if (static_cast<int>(page.items.size()) == page_size) {
      page.next_page_token = page.item_tokens.back();
      break;
    }
    CURVD_ASSIGN_OR_RETURN(T item, read_row(stmt));
    page.items.push_back(std::move(item));
    page.item_tokens.push_back(EncodePageToken(scope, stmt.Int(key_column)));
  }
  return page;
}

template <typename T>
absl::Status ParseBody(const std::string& bytes, T* message) {
  if (!message->ParseFromString(bytes)) {
    return absl::DataLossError(
        absl::StrCat("stored ", message->GetTypeName(), " does not parse"));
  }
  return absl::OkStatus();
}

// Reads a row selected with kMeasurementColumns.
absl::StatusOr<Measurement> ReadMeasurement(const Statement& row) {
  Measurement m;
  CURVD_RETURN_IF_ERROR(ParseBody(row.Text(10), &m));  // diagnostics and result
  m.set_name(row.Text(0));
  CURVD_RETURN_IF_ERROR(ParseBody(row.Text(1), m.mutable_spec()));
  m.set_state(static_cast<Measurement::State>(row.Int(2)));
  m.set_error_code(static_cast<int32_t>(row.Int(3)));
  m.set_error_message(row.Text(4));
  m.set_progress(row.Double(5));
  m.set_progress_message(row.Text(6));
  *m.mutable_create_time() = FromMicros(row.Int(7));
  if (!row.IsNull(8)) *m.mutable_start_time() = FromMicros(row.Int(8));
  if (!row.IsNull(9)) *m.mutable_end_time() = FromMicros(row.Int(9));
  return m;
}

std::string ResultBlob(const Measurement& m) {
  Measurement result;
  if (m.has_diagnostics()) *result.mutable_diagnostics() = m.diagnostics();
  if (m.has_effective_spec()) {
    *result.mutable_effective_spec() = m.effective_spec();
  }
  // Whichever case of the result oneof is set, so that no kind is forgotten.
  const google::protobuf::FieldDescriptor* kind =
      m.GetReflection()->GetOneofFieldDescriptor(
          m, Measurement::descriptor()->FindOneofByName("result"));
  if (kind != nullptr) {
    result.GetReflection()
        ->MutableMessage(&result, kind)
        ->CopyFrom(m.GetReflection()->GetMessage(m, kind));
  }
  return result.SerializeAsString();
}

void BindTime(Statement& stmt, int index, bool present,
              const google::protobuf::Timestamp& t) {
  if (present) {
    stmt.Bind(index, ToMicros(t));
  } else {
    stmt.BindNull(index);
  }
}

// The columns whose bytes may reference blobs, and the column naming the run.
struct BlobColumns {
  const char* table;
  const char* columns;
  const char* run_column;
};
constexpr BlobColumns kBlobColumns[] = {
    {"runs", "body", "name"},
    {"checkpoints", "body", "run"},
    {"measurements", "spec, result", "run"},
};

// Adds the blobs that the rows of run `run_name` reference, or those of every
// row when it is empty.
absl::Status CollectReferencedBlobs(sqlite3* db, const std::string& run_name,
                                    absl::flat_hash_set<std::string>* digests) {
  for (const BlobColumns& source : kBlobColumns) {
    Statement stmt(
        db, absl::StrCat("SELECT ", source.columns, " FROM ", source.table,
                         run_name.empty()
                             ? ""
                             : absl::StrCat(" WHERE ", source.run_column, " = ?"))
                .c_str());
    CURVD_RETURN_IF_ERROR(stmt.status());
    if (!run_name.empty()) stmt.Bind(1, run_name);
    while (true) {
      CURVD_ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) break;
      for (int c = 0; c < stmt.Columns(); ++c) {
        CollectBlobDigests(stmt.Text(c), digests);
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

StoreFactory SqliteStore::Factory() {
  return [](const std::string& state_dir)
             -> absl::StatusOr<std::unique_ptr<Store>> {
    return Open((std::filesystem::path(state_dir) / "curvd.db").string());
  };
}

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(
    const std::string& path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(
      path.c_str(), &db,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
      nullptr);
  if (rc != SQLITE_OK) {
    absl::Status status = absl::InternalError(
        absl::StrCat("cannot open database ", path, ": ",
                     db ? sqlite3_errmsg(db) : "out of memory"));
    sqlite3_close(db);
    return status;
  }
  std::unique_ptr<SqliteStore> store(new SqliteStore(db));
  absl::MutexLock lock(&store->mu_);
  // synchronous=FULL: an acknowledged write must survive a power loss, and the
  // writes are few (one per RPC or throttled progress update).
  CURVD_RETURN_IF_ERROR(
      Exec(db,
           "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; "
           "PRAGMA foreign_keys=ON; PRAGMA busy_timeout=5000;"));
  CURVD_RETURN_IF_ERROR(store->Migrate());
  return store;
}

SqliteStore::~SqliteStore() { Close().IgnoreError(); }

absl::Status SqliteStore::Migrate() {
  Statement version(db_, "PRAGMA user_version");
  CURVD_RETURN_IF_ERROR(version.status());
  CURVD_ASSIGN_OR_RETURN(bool has_row, version.Step());
  int current = has_row ? static_cast<int>(version.Int(0)) : 0;
  if (current > kSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "database schema version ", current,
        " is newer than this binary supports (", kSchemaVersion, ")"));
  }
  for (int v = current; v < kSchemaVersion; ++v) {
    CURVD_RETURN_IF_ERROR(Exec(db_, "BEGIN IMMEDIATE"));
    absl::Status status = Exec(db_, kMigrations[v]);
    if (status.ok()) {
      status = Exec(db_, absl::StrCat("PRAGMA user_version = ", v + 1).c_str());
    }
    if (!status.ok()) {
      Exec(db_, "ROLLBACK").IgnoreError();
      return absl::InternalError(absl::StrCat("migration to schema version ",
                                              v + 1,
                                              " failed: ", status.message()));
    }
    CURVD_RETURN_IF_ERROR(Exec(db_, "COMMIT"));
  }
  return absl::OkStatus();
}

absl::Status SqliteStore::CheckOpen() const {
  if (db_ == nullptr) return absl::FailedPreconditionError("store is closed");
  return absl::OkStatus();
}

absl::Status SqliteStore::InsertRun(const Run& run) {
  absl::MutexLock lock(&mu_);
  CURVD_RETURN_IF_ERROR(CheckOpen());
  Run body = run;
  body.clear_checkpoint_count();
  Statement stmt(
      db_, "INSERT INTO runs (name, create_time_us, body) VALUES (?, ?, ?)");
  CURVD_RETURN_IF_ERROR(stmt.status());
  stmt.Bind(1, run.name());
  stmt.Bind(2, ToMicros(run.create_time()));
  stmt.BindBlob(3, body.SerializeAsString());
  absl::Status status = stmt.Run();
  if (absl::IsAlreadyExists(status)) {
    return absl::AlreadyExistsError(
        absl::StrCat(run.name(), " already exists"));
  }
  return status;
}

namespace {
constexpr char kRunSelect[] =
    "SELECT id, body, (SELECT COUNT(*) FROM checkpoints c WHERE c.run = "
    "runs.name) "
    "FROM runs ";

absl::StatusOr<Run> ReadRun(const Statement& row) {
  Run run;
  CURVD_RETURN_IF_ERROR(ParseBody(row.Text(1), &run));
  run.set_checkpoint_count(row.Int(2));
  return run;
}
}  // namespace

absl::StatusOr<Run> SqliteStore::GetRun(const std::string& name) {
  absl::MutexLock lock(&mu_);
  CURVD_RETURN_IF_ERROR(CheckOpen());
  Statement stmt(db_, absl::StrCat(kRunSelect, "WHERE name = ?").c_str());
  CURVD_RETURN_IF_ERROR(stmt.status());
  stmt.Bind(1, name);
  CURVD_ASSIGN_OR_RETURN(bool found, stmt.Step());
  if (!found) return absl::NotFoundError(absl::StrCat(name, " not found"));
  return ReadRun(stmt);
}

absl::StatusOr<Page<Run>> SqliteStore::ListRuns(int page_size,
                                                const std::string& page_token) {
  constexpr char kScope[] = "runs";
  CURVD_ASSIGN_OR_RETURN(int64_t after, DecodePageToken(kScope, page_token));
  absl::MutexLock lock(&mu_);
  CURVD_RETURN_IF_ERROR(CheckOpen());
  Statement stmt(
      db_,
      absl::StrCat(kRunSelect, "WHERE id > ? ORDER BY id LIMIT ?").c_str());
  CURVD_RETURN_IF_ERROR(stmt.status());
  stmt.Bind(1, after);
  stmt.Bind(
      2, int64_t{page_size} + 1);  // one more says whether a next page exists
  return ReadPage<Run>(stmt, page_size, kScope, /*key_column=*/0, ReadRun);
}

absl::Status SqliteStore::InsertCheckpoint(const std::string& run_name,
                                           const Checkpoint& checkpoint) {
  absl::MutexLock lock(&mu_);
  CURVD_RETURN_IF_ERROR(CheckOpen());
  {
    Statement exists(db_, "SELECT 1 FROM runs WHERE name = ?");
    CURVD_RETURN_IF_ERROR(exists.status());
    exists.Bind(1, run_name);
    CURVD_ASSIGN_OR_RETURN(bool found, exists.Step());
    if (!found)
      return absl::NotFoundError(absl::StrCat(run_name, " not found"));
  }
  Statement stmt(
      db_,
      "INSERT INTO checkpoints (run, step, name, create_time_us, body) "
      "VALUES (?, ?, ?, ?, ?)");
  CURVD_RETURN_IF_ERROR(stmt.status());
  stmt.Bind(1, run_name);
  stmt.Bind(2, checkpoint.step());
  stmt.Bind(3, checkpoint.name());
  stmt.Bind(4, ToMicros(checkpoint.create_time()));
  stmt.BindBlob(5, checkpoint.SerializeAsString());
  absl::Status status = stmt.Run();
  if (absl::IsAlreadyExists(status)) {
    return absl::AlreadyExistsError(
        absl::StrCat(checkpoint.name(), " already exists"));
  }
  return status;
}

absl::StatusOr<Checkpoint> SqliteStore::GetCheckpoint(const std::string& name) {
  absl::MutexLock lock(&mu_);
  CURVD_RETURN_IF_ERROR(CheckOpen());
  Statement stmt(db_, "SELECT body FROM checkpoints WHERE name = ?");
  CURVD_RETURN_IF_ERROR(stmt.status());
  stmt.Bind(1, name);
  CURVD_ASSIGN_OR_RETURN(bool found, stmt.Step());
  if (!found) return absl::NotFoundError(absl::StrCat(name, " not found"));
  Checkpoint checkpoint;
  CURVD_RETURN_IF_ERROR(ParseBody(stmt.Text(0), &checkpoint));
  return checkpoint;
}

absl::StatusOr<Page<Checkpoint>> SqliteStore::ListCheckpoints(
    const std::string& run_name, int page_size, const std::string& page_token) {
  std::string scope = absl::StrCat("checkpoints:", run_name);
  CURVD_ASSIGN_OR_RETURN(int64_t after, DecodePageToken(scope, page_token));
  absl::MutexLock lock(&mu_);
  CURVD_RETURN_IF_ERROR(CheckOpen());
  Statement stmt(
      db_,
      "SELECT step, body FROM checkpoints WHERE run = ? AND step > ? "
      "ORDER BY step LIMIT ?");
  CURVD_RETURN_IF_ERROR(stmt.status());
  stmt.Bind(1, run_name);
  stmt.Bind(2, after);
  stmt.Bind(3, int64_t{page_size} + 1);
  return ReadPage<Checkpoint>(
      stmt, page_size, scope, /*key_column=*/0,
      [](const Statement& row) -> absl::StatusOr<Checkpoint> {
        Checkpoint checkpoint;
        CURVD_RETURN_IF_ERROR(ParseBody(row.Text(1), &checkpoint));
        return checkpoint;
      });
}

absl::Status SqliteStore::InsertMeasurement(const std::string& checkpoint_name,
                                            const Measurement& m,
                                            const std::string& request_id) {
  absl::MutexLock lock(&mu_);
  CURVD_RETURN_IF_ERROR(CheckOpen());
  std::string run;
  {
    Statement parent(db_, "SELECT run FROM checkpoints WHERE name = ?");
    CURVD_RETURN_IF_ERROR(parent.status());
    parent.Bind(1, checkpoint_name);
    CURVD_ASSIGN_OR_RETURN(bool found, parent.Step());
    if (!found)
      return absl::NotFoundError(absl::StrCat(checkpoint_name, " not found"));
    run = parent.Text(0);
  }
  Statement stmt(
      db_,
      "INSERT INTO measurements (name, run, checkpoint, request_id, kind, "
      "state, "
      "spec, create_time_us, start_time_us, end_time_us, device, error_code, "
      "error_message, progress, progress_message, result) "
      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  CURVD_RETURN_IF_ERROR(stmt.status());
  stmt.Bind(1, m.name());
  stmt.Bind(2, run);
  stmt.Bind(3, checkpoint_name);
  if (request_id.empty()) {
    stmt.BindNull(4);
  } else {
    stmt.Bind(4, request_id);
  }
  stmt.Bind(5, KindName(m.spec()));
  stmt.Bind(6, int64_t{m.state()});
  stmt.BindBlob(7, m.spec().SerializeAsString());
  stmt.Bind(8, ToMicros(m.create_time()));
  BindTime(stmt, 9, m.has_start_time(), m.start_time());
  BindTime(stmt, 10, m.has_end_time(), m.end_time());
  stmt.Bind(11, m.diagnostics().device());
  stmt.Bind(12, int64_t{m.error_code()});
  stmt.Bind(13, m.error_message());
  stmt.BindDouble(14, m.progress());
  stmt.Bind(15, m.progress_message());
  stmt.BindBlob(16, ResultBlob(m));
  absl::Status status = stmt.Run();
  if (absl::IsAlreadyExists(status)) {
    return absl::AlreadyExistsError(
        absl::StrCat("a measurement named ", m.name(), " or with request_id \"",
                     request_id, "\" already exists"));
  }
  return status;
}

absl::StatusOr<Measurement> SqliteStore::FindMeasurementByRequestId(
    const std::string& checkpoint_name, const std::string& request_id) {
  absl::MutexLock lock(&mu_);
  CURVD_RETURN_IF_ERROR(CheckOpen());
  Statement stmt(db_,
                 absl::StrCat("SELECT ", kMeasurementColumns,
                              " FROM measurements WHERE checkpoint = ? AND "
                              "request_id = ?")
                     .c_str());
  CURVD_RETURN_IF_ERROR(stmt.status());
  stmt.Bind(1, checkpoint_name);
  stmt.Bind(2, request_id);
  CURVD_ASSIGN_OR_RETURN(bool found, stmt.Step());
  if (!found) {
    return absl::NotFoundError(absl::StrCat(
        "no measurement of ", checkpoint_name, " has request_id ", request_id));
  }
  return ReadMeasurement(stmt);
}

absl::StatusOr<Measurement> SqliteStore::GetMeasurement(
    const std::string& name) {
  absl::MutexLock lock(&mu_);
  CURVD_RETURN_IF_ERROR(CheckOpen());
  Statement stmt(db_, absl::StrCat("SELECT ", kMeasurementColumns,
                                   " FROM measurements WHERE name = ?")
                          .c_str());
  CURVD_RETURN_IF_ERROR(stmt.status());
  stmt.Bind(1, name);
  CURVD_ASSIGN_OR_RETURN(bool found, stmt.Step());
  if (!found) return absl::NotFoundError(absl::StrCat(name, " not found"));
  return ReadMeasurement(stmt);
}

absl::Status SqliteStore::UpdateMeasurement(const Measurement& m) {
  absl::MutexLock lock(&mu_);
  CURVD_RETURN_IF_ERROR(CheckOpen());
  Statement stmt(
      db_,
      "UPDATE measurements SET state = ?, start_time_us = ?, end_time_us = ?, "
      "device = ?, error_code = ?, error_message = ?, progress = ?, "
      "progress_message = ?, result = ? WHERE name = ?");
  CURVD_RETURN_IF_ERROR(stmt.status());
  stmt.Bind(1, int64_t{m.state()});
  BindTime(stmt, 2, m.has_start_time(), m.start_time());
  BindTime(stmt, 3, m.has_end_time(), m.end_time());
  stmt.Bind(4, m.diagnostics().device());
  stmt.Bind(5, int64_t{m.error_code()});
  stmt.Bind(6, m.error_message());
  stmt.BindDouble(7, m.progress());
  stmt.Bind(8, m.progress_message());
  stmt.BindBlob(9, ResultBlob(m));
  stmt.Bind(10, m.name());
  CURVD_RETURN_IF_ERROR(stmt.Run());
  if (sqlite3_changes(db_) == 0)
    return absl::NotFoundError(absl::StrCat(m.name(), " not found"));
  return absl::OkStatus();
}

absl::Status SqliteStore::DeleteMeasurement(const std::string& name) {
  absl::MutexLock lock(&mu_);
  CURVD_RETURN_IF_ERROR(CheckOpen());
  Statement stmt(db_, "DELETE FROM measurements WHERE name = ?");
  CURVD_RETURN_IF_ERROR(stmt.status());
  stmt.Bind(1, name);
  CURVD_RETURN_IF_ERROR(stmt.Run());
  if (sqlite3_changes(db_) == 0)
    return absl::NotFoundError(absl::StrCat(name, " not found"));
  return absl::OkStatus();
}

absl::StatusOr<Page<Measurement>> SqliteStore::ListMeasurements(
    const std::string& run_name, const std::string& checkpoint_name,
    int page_size, const std::string& page_token) {
  const bool whole_run = checkpoint_name.empty();
  std::string scope =
      absl::StrCat("measurements:", whole_run ? run_name : checkpoint_name);
  CURVD_ASSIGN_OR_RETURN(int64_t after, DecodePageToken(scope, page_token));
  absl::MutexLock lock(&mu_);
  CURVD_RETURN_IF_ERROR(CheckOpen());
  Statement stmt(
      db_,
      absl::StrCat("SELECT ", kMeasurementColumns, ", id FROM measurements ",
                   whole_run ? "WHERE run = ?" : "WHERE checkpoint = ?",
                   " AND id > ? ORDER BY id LIMIT ?")
          .c_str());
  CURVD_RETURN_IF_ERROR(stmt.status());
  stmt.Bind(1, whole_run ? run_name : checkpoint_name);
  stmt.Bind(2, after);
  stmt.Bind(3, int64_t{page_size} + 1);
  // Column 11 is the id selected after kMeasurementColumns.
  return ReadPage<Measurement>(stmt, page_size, scope, /*key_column=*/11,
                               ReadMeasurement);
}

absl::StatusOr<DeletedRun> SqliteStore::DeleteRun(const std::string& name) {
  absl::MutexLock lock(&mu_);
  CURVD_RETURN_IF_ERROR(CheckOpen());
  CURVD_RETURN_IF_ERROR(Exec(db_, "BEGIN IMMEDIATE"));
  absl::StatusOr<DeletedRun> deleted = DeleteRunRows(name);
  if (deleted.ok()) {
    absl::Status committed = Exec(db_, "COMMIT");
    if (committed.ok()) return deleted;
    deleted = committed;
  }
  Exec(db_, "ROLLBACK").IgnoreError();
  return deleted;
}

absl::StatusOr<DeletedRun> SqliteStore::DeleteRunRows(const std::string& name) {
  {
    Statement exists(db_, "SELECT 1 FROM runs WHERE name = ?");
    CURVD_RETURN_IF_ERROR(exists.status());
    exists.Bind(1, name);
    CURVD_ASSIGN_OR_RETURN(bool found, exists.Step());
    if (!found) return absl::NotFoundError(absl::StrCat(name, " not found"));
  }
  {
    Statement active(db_,
                     "SELECT name, state FROM measurements WHERE run = ? AND "
                     "state IN (?, ?) LIMIT 1");
    CURVD_RETURN_IF_ERROR(active.status());
    active.Bind(1, name);
    active.Bind(2, int64_t{Measurement::QUEUED});
    active.Bind(3, int64_t{Measurement::RUNNING});
    CURVD_ASSIGN_OR_RETURN(bool found, active.Step());
    if (found) {
      return absl::FailedPreconditionError(absl::StrCat(
          name, " has measurements in flight (", active.Text(0), " is ",
          Measurement::State_Name(
              static_cast<Measurement::State>(active.Int(1))),
          "); cancel them, or wait for them to end, then delete the run"));
    }
  }
  DeletedRun deleted;
  CURVD_RETURN_IF_ERROR(
      CollectReferencedBlobs(db_, name, &deleted.blob_digests));
  // Children first: the foreign keys are enforced.
  const std::pair<const char*, int64_t*> deletes[] = {
      {"DELETE FROM measurements WHERE run = ?", &deleted.measurements},
      {"DELETE FROM checkpoints WHERE run = ?", &deleted.checkpoints},
      {"DELETE FROM runs WHERE name = ?", nullptr},
  };
  for (const auto& [sql, count] : deletes) {
    Statement stmt(db_, sql);
    CURVD_RETURN_IF_ERROR(stmt.status());
    stmt.Bind(1, name);
    CURVD_RETURN_IF_ERROR(stmt.Run());
    if (count != nullptr) *count = sqlite3_changes(db_);
  }
  return deleted;
}

absl::StatusOr<absl::flat_hash_set<std::string>>
SqliteStore::ReferencedBlobs() {
  absl::MutexLock lock(&mu_);
  CURVD_RETURN_IF_ERROR(CheckOpen());
  absl::flat_hash_set<std::string> digests;
  CURVD_RETURN_IF_ERROR(CollectReferencedBlobs(db_, "", &digests));
  return digests;
}

absl::StatusOr<std::vector<Measurement>> SqliteStore::RecoverInterrupted() {
  absl::MutexLock lock(&mu_);
  CURVD_RETURN_IF_ERROR(CheckOpen());
  {
    Statement fail(
        db_,
        "UPDATE measurements SET state = ?, error_code = ?, error_message = ?, "
        "end_time_us = ? WHERE state = ?");
    CURVD_RETURN_IF_ERROR(fail.status());
    fail.Bind(1, int64_t{Measurement::FAILED});
    fail.Bind(2, int64_t{static_cast<int>(absl::StatusCode::kUnavailable)});
    fail.Bind(3, "server restarted while the measurement was running");
    fail.Bind(4, ToMicros(TimestampNow()));
    fail.Bind(5, int64_t{Measurement::RUNNING});
    CURVD_RETURN_IF_ERROR(fail.Run());
  }
  Statement queued(
      db_, absl::StrCat("SELECT ", kMeasurementColumns,
                        " FROM measurements WHERE state = ? ORDER BY id")
               .c_str());
  CURVD_RETURN_IF_ERROR(queued.status());
  queued.Bind(1, int64_t{Measurement::QUEUED});
  std::vector<Measurement> result;
  while (true) {
    CURVD_ASSIGN_OR_RETURN(bool row, queued.Step());
    if (!row) break;
    CURVD_ASSIGN_OR_RETURN(Measurement m, ReadMeasurement(queued));
    result.push_back(std::move(m));
  }
  return result;
}

absl::Status SqliteStore::Close() {
  absl::MutexLock lock(&mu_);
  if (db_ == nullptr) return absl::OkStatus();
  // Folding the WAL into the main file leaves one self-contained file behind.
  absl::Status status = Exec(db_, "PRAGMA wal_checkpoint(TRUNCATE)");
  if (sqlite3_close(db_) != SQLITE_OK) {
    status.Update(
        absl::InternalError("sqlite: close failed: statements still open"));
  }
  db_ = nullptr;
  return status;
}

}  // namespace curvd::server
