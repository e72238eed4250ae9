// DeleteRun and the blob sweeps on a ServiceCore: what goes (the run's rows,
// the blobs only it referenced), what stays (another run's rows and the blobs
// it shares), the refusal while a measurement is in flight, a delete cut by
// a crash, and the state directory's quota at the create RPCs.
#include <fcntl.h>
#include <sys/stat.h>

#include <string>

#include "core_fixture.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/sha256_stream.h"

namespace curvd::server::testing {
namespace {

namespace v1 = ::curvd::v1;
using ::testing::HasSubstr;

class DeleteRunTest : public CoreTest {
 protected:
  void SetUp() override {
    CoreTest::SetUp();
    ASSERT_TRUE(StartCore().ok());
  }

  // Uploads `bytes` and returns their digest.
  std::string Upload(const std::string& bytes) {
    Sha256Stream sha;
    sha.Update(bytes);
    const std::string digest = sha.Digest();
    auto writer = core_->blobs().OpenWriter(digest, bytes.size(), "test");
    EXPECT_TRUE(writer.ok()) << writer.status();
    if (writer.ok() && *writer != nullptr) {
      EXPECT_TRUE((*writer)->Append(0, bytes).ok());
      EXPECT_TRUE((*writer)->Finish().ok());
    }
    return digest;
  }

  // Zoo run `run_id` with a checkpoint of step `step` for each digest.
  void CreateRunWith(const std::string& run_id,
                     const std::vector<std::string>& digests) {
    v1::CreateRunRequest run;
    run.set_run_id(run_id);
    auto* zoo = run.mutable_run()->mutable_model()->mutable_zoo();
    for (int w : {3, 4, 1}) zoo->add_layer_widths(w);
    v1::Run created;
    ASSERT_TRUE(CreateRunImpl(*core_, run, &created).ok());
    int step = 0;
    for (const std::string& digest : digests) {
      v1::CreateCheckpointRequest checkpoint;
      checkpoint.set_parent(created.name());
      checkpoint.mutable_checkpoint()->set_step(step++);
      checkpoint.mutable_checkpoint()->set_digest(digest);
      v1::Checkpoint stored;
      const absl::Status status =
          CreateCheckpointImpl(*core_, checkpoint, &stored);
      ASSERT_TRUE(status.ok()) << status;
    }
  }

  bool Stored(const std::string& digest) {
    return core_->blobs().PathOf(digest).ok();
  }

  absl::StatusOr<v1::DeleteRunResponse> Delete(const std::string& name) {
    v1::DeleteRunRequest request;
    request.set_name(name);
    v1::DeleteRunResponse response;
    absl::Status status = DeleteRunImpl(*core_, request, &response);
    if (!status.ok()) return status;
    return response;
  }
};

TEST_F(DeleteRunTest, DeletesTheRunAndTheBlobsOnlyItUsed) {
  const std::string own = Upload(SafetensorsNote("own"));
  const std::string shared = Upload(SafetensorsNote("shared"));
  // A shard blob that a measurement of the run names.
  const std::string shard = Upload("shard bytes");
  CreateRunWith("a", {own, shared});
  CreateRunWith("b", {shared});
  v1::Measurement m;
  v1::CreateMeasurementRequest request;
  request.set_parent("runs/a/checkpoints/0");
  request.mutable_spec()->set_shard_uri("blob://" + shard);
  request.mutable_spec()->mutable_sharpness()->set_top_k(1);
  // The fake engine never reads the shard; the resolver checks it is stored.
  const absl::Status created = CreateMeasurementImpl(*core_, request, &m);
  ASSERT_TRUE(created.ok()) << created;
  WaitFor(m.name(), v1::Measurement::SUCCEEDED);

  absl::StatusOr<v1::DeleteRunResponse> deleted = Delete("runs/a");
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(deleted->checkpoint_count(), 2);
  EXPECT_EQ(deleted->measurement_count(), 1);
  EXPECT_EQ(deleted->blob_count(), 2);  // own and the shard
  EXPECT_GT(deleted->blob_bytes(), 0);
  EXPECT_FALSE(Stored(own));
  EXPECT_FALSE(Stored(shard));
  EXPECT_TRUE(Stored(shared));
  EXPECT_EQ(core_->store().GetRun("runs/a").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(core_->store().GetMeasurement(m.name()).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(core_->store().GetRun("runs/b")->checkpoint_count(), 1);
  EXPECT_EQ(Delete("runs/a").status().code(), absl::StatusCode::kNotFound);
  // The run id is free again.
  CreateRunWith("a", {shared});
}

TEST_F(DeleteRunTest, IsRefusedWhileAMeasurementIsInFlight) {
  const std::string own = Upload(SafetensorsNote("own"));
  CreateRunWith("a", {own});
  control_->Block();
  v1::Measurement running, queued;
  ASSERT_TRUE(Create("runs/a/checkpoints/0", &running).ok());
  ASSERT_TRUE(control_->WaitForStarted(1));
  ASSERT_TRUE(Create("runs/a/checkpoints/0", &queued).ok());
  absl::StatusOr<v1::DeleteRunResponse> refused = Delete("runs/a");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr("cancel"));
  EXPECT_TRUE(core_->store().GetRun("runs/a").ok());
  EXPECT_TRUE(Stored(own));
  // Cancelled, both may go.
  for (const v1::Measurement* m : {&queued, &running}) {
    v1::CancelMeasurementRequest cancel;
    cancel.set_name(m->name());
    v1::Measurement response;
    ASSERT_TRUE(CancelMeasurementImpl(*core_, cancel, &response).ok());
    WaitFor(m->name(), v1::Measurement::CANCELLED);
  }
  EXPECT_TRUE(Delete("runs/a").ok());
  EXPECT_FALSE(Stored(own));
}

// A crash after the rows went and before the files did leaves files that
// nothing references: the sweep removes them once they are old, and keeps
// what is referenced or young.
TEST_F(DeleteRunTest, TheSweepRemovesWhatACutDeleteLeft) {
  const std::string own = Upload(SafetensorsNote("own"));
  const std::string kept = Upload(SafetensorsNote("kept"));
  const std::string young = Upload("uploaded, not used yet");
  CreateRunWith("a", {own});
  CreateRunWith("b", {kept});
  ASSERT_TRUE(core_->store().DeleteRun("runs/a").ok());  // the rows only
  for (const std::string& digest : {own, kept}) {
    const std::string path = core_->blobs().PathOf(digest).value();
    const timespec then =
        absl::ToTimespec(absl::Now() - absl::Hours(25));
    const timespec times[2] = {then, then};
    ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
  }
  absl::StatusOr<ServiceCore::SweepCounts> swept =
      core_->SweepBlobs(absl::Now());
  ASSERT_TRUE(swept.ok()) << swept.status();
  EXPECT_EQ(swept->committed, 1);
  EXPECT_FALSE(Stored(own));
  EXPECT_TRUE(Stored(kept));
  EXPECT_TRUE(Stored(young));
}

TEST_F(DeleteRunTest, TheCreatesAnswerResourceExhaustedOnceTheStateIsFull) {
  const std::string own = Upload(SafetensorsNote("own"));
  CreateRunWith("a", {own});
  core_.reset();
  // Less than the database alone: every create is refused, reads still work.
  ServiceOptions options;
  options.state_dir = state_dir_;
  options.store_factory = SqliteStore::Factory();
  options.blob_store_factory = DiskBlobStore::Factory();
  options.blob_limits.max_state_bytes = 1000;
  options.devices = {"cpu"};
  auto control = control_;
  core_ = ServiceCore::Create(options, [control](const std::string& device) {
            return absl::StatusOr<std::unique_ptr<core::Engine>>(
                std::make_unique<FakeEngine>(device, control));
          }).value();
  v1::CreateRunRequest run;
  run.set_run_id("b");
  run.mutable_run()->mutable_model()->mutable_zoo()->add_layer_widths(3);
  v1::Run created;
  const absl::Status refused = CreateRunImpl(*core_, run, &created);
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.message(), HasSubstr("--max_state_bytes"));
  v1::Measurement m;
  EXPECT_EQ(Create("runs/a/checkpoints/0", &m).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(core_->store().GetRun("runs/a").ok());
  // Deleting is how space comes back.
  EXPECT_TRUE(Delete("runs/a").ok());
}

}  // namespace
}  // namespace curvd::server::testing
