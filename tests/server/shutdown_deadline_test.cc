// The shutdown grace is a deadline: a measurement stuck inside one engine
// call (a fake deaf to cancellation) is recorded FAILED, the store is closed
// consistent, and the process exits within the grace plus the stated margin;
// earlier results stay. The exit itself runs in a child process (a death
// test), as curvd's main runs it.
#include <stdlib.h>

#include <memory>
#include <string>
#include <thread>

#include "absl/time/clock.h"
#include "checkpoint_bytes.h"
#include "fake_engine.h"
#include "gtest/gtest.h"
#include "server/disk_blob_store.h"
#include "server/server.h"
#include "server/service_impl.h"
#include "server/sha256_stream.h"
#include "server/sqlite_store.h"
#include "test_dirs.h"

namespace curvd::server::testing {
namespace {

namespace v1 = ::curvd::v1;

constexpr absl::Duration kGrace = absl::Milliseconds(300);
constexpr absl::Duration kRpcDeadline = absl::Milliseconds(200);
// What Shutdown promises, and slack for a loaded machine.
const absl::Duration kBound =
    kGrace + ServiceCore::kWorkerStopWait + kRpcDeadline + absl::Seconds(1);

std::unique_ptr<CurvdServer> StartServer(
    const std::string& state_dir, std::shared_ptr<FakeEngineControl> control) {
  ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.metrics_listen = "";
  options.service.state_dir = state_dir;
  options.service.store_factory = SqliteStore::Factory();
  options.service.blob_store_factory = DiskBlobStore::Factory();
  options.service.devices = {"cpu"};
  auto server = CurvdServer::Start(options, [control](const std::string& d) {
    return absl::StatusOr<std::unique_ptr<core::Engine>>(
        std::make_unique<FakeEngine>(d, control));
  });
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? *std::move(server) : nullptr;
}

// A run with a checkpoint (an uploaded blob) and one SUCCEEDED measurement,
// then a second measurement stuck in the engine; returns the names of the
// two measurements.
std::pair<std::string, std::string> MeasureThenStick(
    ServiceCore& core, FakeEngineControl& control) {
  const std::string bytes = SafetensorsNote("weights");
  Sha256Stream sha;
  sha.Update(bytes);
  auto writer = core.blobs().OpenWriter(sha.Digest(), bytes.size(), "test");
  EXPECT_TRUE((*writer)->Append(0, bytes).ok());
  EXPECT_TRUE((*writer)->Finish().ok());
  v1::CreateRunRequest run;
  run.set_run_id("r");
  for (int w : {3, 4, 1}) {
    run.mutable_run()->mutable_model()->mutable_zoo()->add_layer_widths(w);
  }
  v1::Run created;
  EXPECT_TRUE(CreateRunImpl(core, run, &created).ok());
  v1::CreateCheckpointRequest checkpoint;
  checkpoint.set_parent("runs/r");
  checkpoint.mutable_checkpoint()->set_digest(sha.Digest());
  v1::Checkpoint stored;
  EXPECT_TRUE(CreateCheckpointImpl(core, checkpoint, &stored).ok());
  v1::CreateMeasurementRequest request;
  request.set_parent("runs/r/checkpoints/0");
  request.mutable_spec()->set_shard_uri("builtin://gaussian_regression?n=8&d=3");
  request.mutable_spec()->mutable_sharpness()->set_top_k(1);
  v1::Measurement first, second;
  EXPECT_TRUE(CreateMeasurementImpl(core, request, &first).ok());
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (core.store().GetMeasurement(first.name())->state() !=
             v1::Measurement::SUCCEEDED &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  control.BlockIgnoringCancellation();
  EXPECT_TRUE(CreateMeasurementImpl(core, request, &second).ok());
  EXPECT_TRUE(control.WaitForStarted(2));
  return {first.name(), second.name()};
}

// What a restart finds: the stuck measurement FAILED (UNAVAILABLE), the first
// one's result intact, nothing left RUNNING.
void ExpectStoreAfterShutdown(const std::string& state_dir,
                              const std::string& first,
                              const std::string& second) {
  auto store = SqliteStore::Open(state_dir + "/curvd.db");
  ASSERT_TRUE(store.ok()) << store.status();
  const v1::Measurement done = (*store)->GetMeasurement(first).value();
  EXPECT_EQ(done.state(), v1::Measurement::SUCCEEDED);
  EXPECT_EQ(done.sharpness().top_size(), 1);
  const v1::Measurement stuck = (*store)->GetMeasurement(second).value();
  EXPECT_EQ(stuck.state(), v1::Measurement::FAILED);
  EXPECT_EQ(stuck.error_code(),
            static_cast<int32_t>(absl::StatusCode::kUnavailable));
  EXPECT_TRUE(stuck.has_end_time());
  EXPECT_TRUE((*store)->RecoverInterrupted().value().empty());
}

TEST(ShutdownDeadlineTest, AStuckWorkerIsAbandonedAfterTheGrace) {
  const std::string state_dir = MakeTempDir();
  auto control = std::make_shared<FakeEngineControl>();
  std::unique_ptr<CurvdServer> server = StartServer(state_dir, control);
  ASSERT_NE(server, nullptr);
  const auto [first, second] = MeasureThenStick(server->core(), *control);
  const absl::Time start = absl::Now();
  const bool stopped = server->Shutdown(kGrace, kRpcDeadline);
  const absl::Duration took = absl::Now() - start;
  EXPECT_FALSE(stopped);
  EXPECT_GE(took, kGrace);
  EXPECT_LT(took, kBound);
  EXPECT_FALSE(server->Shutdown(kGrace, kRpcDeadline));  // the same answer
  ExpectStoreAfterShutdown(state_dir, first, second);
  // The worker's late end changes nothing in the closed store.
  control->Release();
  server.reset();
  ExpectStoreAfterShutdown(state_dir, first, second);
}

// The process exits (status 0, as curvd's main returns it) with the worker
// still inside the engine; the child exits 3 if Shutdown overran its bound.
TEST(ShutdownDeadlineDeathTest, TheProcessExitsWithTheWorkerStillInside) {
  ::testing::GTEST_FLAG(death_test_style) = "threadsafe";
  // The child re-runs this test from the top: it finds the directory here.
  if (getenv("CURVD_SHUTDOWN_TEST_DIR") == nullptr) {
    setenv("CURVD_SHUTDOWN_TEST_DIR", MakeTempDir().c_str(), 1);
  }
  const std::string state_dir = getenv("CURVD_SHUTDOWN_TEST_DIR");
  const absl::Time start = absl::Now();
  EXPECT_EXIT(
      {
        auto control = std::make_shared<FakeEngineControl>();
        std::unique_ptr<CurvdServer> server = StartServer(state_dir, control);
        MeasureThenStick(server->core(), *control);
        // Should the exit wait for the worker after all, it ends in 20 s
        // and the child exits 4 below instead of hanging.
        std::thread([control] {
          absl::SleepFor(absl::Seconds(20));
          control->Release();
        }).detach();
        const absl::Time stop = absl::Now();
        const bool stopped = server->Shutdown(kGrace, kRpcDeadline);
        const int status = absl::Now() - stop < kBound ? 0 : 3;
        ExitAfterShutdown(std::move(server), stopped, status);
        std::_Exit(4);  // not reached when a worker was abandoned
      },
      ::testing::ExitedWithCode(0), "");
  // Start-up of the child included: its server, two measurements.
  EXPECT_LT(absl::Now() - start, kBound + absl::Seconds(10));
  // The child is gone; a restart finds the stuck one FAILED, the first intact
  // (the names are read back: the child's memory is not this process's).
  auto store = SqliteStore::Open(state_dir + "/curvd.db");
  ASSERT_TRUE(store.ok()) << store.status();
  auto page = (*store)->ListMeasurements("runs/r", "", 10, "");
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->items.size(), 2u);
  ExpectStoreAfterShutdown(state_dir, page->items[0].name(),
                           page->items[1].name());
}

}  // namespace
}  // namespace curvd::server::testing
