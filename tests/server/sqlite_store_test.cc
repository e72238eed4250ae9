#include "server/sqlite_store.h"

#include <sqlite3.h>

#include <set>
#include <string>

#include "gmock/gmock.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "test_dirs.h"

namespace curvd::server {
namespace {

namespace v1 = ::curvd::v1;
using ::google::protobuf::util::TimeUtil;
using ::testing::HasSubstr;

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = testing::MakeTempDir() + "/curvd.db";
    Reopen();
  }

  void Reopen() {
    store_.reset();
    auto store = SqliteStore::Open(path_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }

  void AddRunAndCheckpoint(const std::string& run_id, int64_t step) {
    v1::Run run;
    run.set_name("runs/" + run_id);
    run.mutable_model()->mutable_zoo()->add_layer_widths(3);
    *run.mutable_create_time() = TimeUtil::GetCurrentTime();
    absl::Status inserted = store_->InsertRun(run);
    ASSERT_TRUE(inserted.ok() || absl::IsAlreadyExists(inserted)) << inserted;
    v1::Checkpoint checkpoint;
    checkpoint.set_name(run.name() + "/checkpoints/" + std::to_string(step));
    checkpoint.set_step(step);
    checkpoint.set_digest("sha256:00");
    ASSERT_TRUE(store_->InsertCheckpoint(run.name(), checkpoint).ok());
  }

  v1::Measurement NewMeasurement(const std::string& checkpoint,
                                 const std::string& id) {
    v1::Measurement m;
    m.set_name(checkpoint + "/measurements/" + id);
    m.mutable_spec()->set_shard_uri("builtin://gaussian_regression?n=4&d=2");
    m.mutable_spec()->mutable_sharpness()->set_top_k(2);
    m.set_state(v1::Measurement::QUEUED);
    *m.mutable_create_time() = TimeUtil::GetCurrentTime();
    return m;
  }

  std::string path_;
  std::unique_ptr<SqliteStore> store_;
};

TEST_F(SqliteStoreTest, RunsRoundTripWithCheckpointCount) {
  AddRunAndCheckpoint("a", 1);
  AddRunAndCheckpoint("a", 2);
  auto run = store_->GetRun("runs/a");
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->checkpoint_count(), 2);
  EXPECT_EQ(run->model().zoo().layer_widths(0), 3);
  v1::Run duplicate;
  duplicate.set_name("runs/a");
  EXPECT_EQ(store_->InsertRun(duplicate).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(store_->GetRun("runs/b").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(SqliteStoreTest, CheckpointsNeedTheirRunAndAUniqueStep) {
  AddRunAndCheckpoint("a", 1);
  v1::Checkpoint orphan;
  orphan.set_name("runs/zz/checkpoints/1");
  EXPECT_EQ(store_->InsertCheckpoint("runs/zz", orphan).code(),
            absl::StatusCode::kNotFound);
  v1::Checkpoint again;
  again.set_name("runs/a/checkpoints/1");
  again.set_step(1);
  EXPECT_EQ(store_->InsertCheckpoint("runs/a", again).code(),
            absl::StatusCode::kAlreadyExists);
}

TEST_F(SqliteStoreTest, MeasurementUpdatesPersistAcrossReopen) {
  AddRunAndCheckpoint("a", 1);
  v1::Measurement m = NewMeasurement("runs/a/checkpoints/1", "m1");
  ASSERT_TRUE(
      store_->InsertMeasurement("runs/a/checkpoints/1", m, "req-1").ok());
  m.set_state(v1::Measurement::SUCCEEDED);
  *m.mutable_start_time() = TimeUtil::GetCurrentTime();
  *m.mutable_end_time() = TimeUtil::GetCurrentTime();
  m.mutable_sharpness()->set_sharpness(3.5);
  m.mutable_diagnostics()->set_device("cpu");
  m.mutable_diagnostics()->set_hvps(11);
  ASSERT_TRUE(store_->UpdateMeasurement(m).ok());
  Reopen();
  auto stored = store_->GetMeasurement(m.name());
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->state(), v1::Measurement::SUCCEEDED);
  EXPECT_DOUBLE_EQ(stored->sharpness().sharpness(), 3.5);
  EXPECT_EQ(stored->diagnostics().hvps(), 11);
  EXPECT_EQ(stored->spec().sharpness().top_k(), 2);
  EXPECT_TRUE(stored->spec().sharpness().has_top_k());
  EXPECT_EQ(stored->start_time(), m.start_time());
  auto by_request =
      store_->FindMeasurementByRequestId("runs/a/checkpoints/1", "req-1");
  ASSERT_TRUE(by_request.ok());
  EXPECT_EQ(by_request->name(), m.name());
}

// Every case of the result oneof, and a plan's results, survive the store.
TEST_F(SqliteStoreTest, EveryResultKindPersists) {
  AddRunAndCheckpoint("a", 1);
  const std::string parent = "runs/a/checkpoints/1";
  const google::protobuf::OneofDescriptor* result_oneof =
      v1::Measurement::descriptor()->FindOneofByName("result");
  ASSERT_GE(result_oneof->field_count(), 10);
  for (int i = 0; i < result_oneof->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* field = result_oneof->field(i);
    SCOPED_TRACE(field->name());
    v1::Measurement m = NewMeasurement(parent, field->name());
    ASSERT_TRUE(store_->InsertMeasurement(parent, m, "").ok());
    m.set_state(v1::Measurement::SUCCEEDED);
    m.mutable_diagnostics()->set_operator_(v1::OPERATOR_GGN);
    m.mutable_diagnostics()->add_block_parameters("fc0.weight");
    m.GetReflection()->MutableMessage(&m, field);
    ASSERT_TRUE(store_->UpdateMeasurement(m).ok());
  }
  v1::Measurement plan = NewMeasurement(parent, "full-plan");
  ASSERT_TRUE(store_->InsertMeasurement(parent, plan, "").ok());
  plan.set_state(v1::Measurement::SUCCEEDED);
  plan.mutable_plan()->mutable_loss_slice()->add_loss(0.5);
  plan.mutable_plan()->mutable_spectral_density()->add_density(0.25);
  plan.mutable_plan()->mutable_exact_hessian()->set_rank(3);
  plan.mutable_diagnostics()->add_shared("shared the SLQ start vectors");
  ASSERT_TRUE(store_->UpdateMeasurement(plan).ok());

  Reopen();
  for (int i = 0; i < result_oneof->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* field = result_oneof->field(i);
    SCOPED_TRACE(field->name());
    auto stored =
        store_->GetMeasurement(parent + "/measurements/" + field->name());
    ASSERT_TRUE(stored.ok()) << stored.status();
    EXPECT_EQ(
        stored->GetReflection()->GetOneofFieldDescriptor(*stored, result_oneof),
        field);
    EXPECT_EQ(stored->diagnostics().operator_(), v1::OPERATOR_GGN);
    EXPECT_EQ(stored->diagnostics().block_parameters(0), "fc0.weight");
  }
  auto stored = store_->GetMeasurement(plan.name());
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->plan().loss_slice().loss(0), 0.5);
  EXPECT_EQ(stored->plan().spectral_density().density(0), 0.25);
  EXPECT_EQ(stored->plan().exact_hessian().rank(), 3);
  EXPECT_FALSE(stored->plan().has_sharpness());
  EXPECT_EQ(stored->diagnostics().shared(0), "shared the SLQ start vectors");
}

TEST_F(SqliteStoreTest, RequestIdIsUniquePerCheckpoint) {
  AddRunAndCheckpoint("a", 1);
  const std::string parent = "runs/a/checkpoints/1";
  ASSERT_TRUE(
      store_->InsertMeasurement(parent, NewMeasurement(parent, "m1"), "r")
          .ok());
  EXPECT_EQ(store_->InsertMeasurement(parent, NewMeasurement(parent, "m2"), "r")
                .code(),
            absl::StatusCode::kAlreadyExists);
  // Without a request_id, any number may be inserted.
  EXPECT_TRUE(
      store_->InsertMeasurement(parent, NewMeasurement(parent, "m3"), "").ok());
  EXPECT_TRUE(
      store_->InsertMeasurement(parent, NewMeasurement(parent, "m4"), "").ok());
  EXPECT_EQ(store_
                ->InsertMeasurement("runs/a/checkpoints/9",
                                    NewMeasurement(parent, "m5"), "")
                .code(),
            absl::StatusCode::kNotFound);
}

TEST_F(SqliteStoreTest, PaginatesWithOpaqueTokensBoundToTheList) {
  AddRunAndCheckpoint("a", 1);
  AddRunAndCheckpoint("a", 2);
  std::set<std::string> expected;
  for (int i = 0; i < 5; ++i) {
    const std::string parent =
        i < 3 ? "runs/a/checkpoints/1" : "runs/a/checkpoints/2";
    v1::Measurement m = NewMeasurement(parent, "m" + std::to_string(i));
    ASSERT_TRUE(store_->InsertMeasurement(parent, m, "").ok());
    expected.insert(m.name());
  }
  std::set<std::string> seen;
  std::string token;
  int pages = 0;
  do {
    auto page = store_->ListMeasurements("runs/a", "", 2, token);
    ASSERT_TRUE(page.ok()) << page.status();
    EXPECT_LE(page->items.size(), 2u);
    for (const auto& m : page->items) seen.insert(m.name());
    token = page->next_page_token;
    ++pages;
  } while (!token.empty());
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(seen, expected);

  auto first = store_->ListMeasurements("runs/a", "", 2, "");
  ASSERT_FALSE(first->next_page_token.empty());
  EXPECT_EQ(store_
                ->ListMeasurements("runs/a", "runs/a/checkpoints/1", 2,
                                   first->next_page_token)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->ListRuns(2, "garbage!").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->ListMeasurements("runs/a", "runs/a/checkpoints/1", 10, "")
                ->items.size(),
            3u);
}

TEST_F(SqliteStoreTest, RecoveryFailsRunningAndReturnsQueued) {
  AddRunAndCheckpoint("a", 1);
  const std::string parent = "runs/a/checkpoints/1";
  v1::Measurement running = NewMeasurement(parent, "running");
  running.set_state(v1::Measurement::RUNNING);
  v1::Measurement queued = NewMeasurement(parent, "queued");
  v1::Measurement done = NewMeasurement(parent, "done");
  done.set_state(v1::Measurement::SUCCEEDED);
  for (const auto* m : {&running, &queued, &done}) {
    ASSERT_TRUE(store_->InsertMeasurement(parent, *m, "").ok());
  }
  auto recovered = store_->RecoverInterrupted();
  ASSERT_TRUE(recovered.ok()) << recovered.status();
  ASSERT_EQ(recovered->size(), 1u);
  EXPECT_EQ((*recovered)[0].name(), queued.name());
  auto failed = store_->GetMeasurement(running.name());
  EXPECT_EQ(failed->state(), v1::Measurement::FAILED);
  EXPECT_EQ(failed->error_code(),
            static_cast<int>(absl::StatusCode::kUnavailable));
  EXPECT_EQ(failed->error_message(),
            "server restarted while the measurement was running");
  EXPECT_EQ(store_->GetMeasurement(done.name())->state(),
            v1::Measurement::SUCCEEDED);
}

TEST_F(SqliteStoreTest, UsesWalAndRefusesANewerSchema) {
  store_.reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &stmt, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)),
               "wal");
  sqlite3_finalize(stmt);
  ASSERT_EQ(
      sqlite3_exec(db, "PRAGMA user_version = 99", nullptr, nullptr, nullptr),
      SQLITE_OK);
  sqlite3_close(db);
  auto reopened = SqliteStore::Open(path_);
  EXPECT_EQ(reopened.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(reopened.status().message()), HasSubstr("99"));
}

TEST_F(SqliteStoreTest, CallsAfterCloseFailCleanly) {
  ASSERT_TRUE(store_->Close().ok());
  EXPECT_EQ(store_->GetRun("runs/a").status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(store_->Close().ok());
}

}  // namespace
}  // namespace curvd::server
