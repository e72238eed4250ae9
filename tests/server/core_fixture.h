// The fixture of the tests that call the service's methods (service_impl.h)
// directly on a ServiceCore, with no socket: a fake engine, the real SQLite
// store behind a FaultInjectingStore, and helpers that build a run with a
// checkpoint and wait for a measurement.
#ifndef CURVD_TESTS_SERVER_CORE_FIXTURE_H_
#define CURVD_TESTS_SERVER_CORE_FIXTURE_H_

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "checkpoint_bytes.h"
#include "fake_engine.h"
#include "fault_injecting_store.h"
#include "gtest/gtest.h"
#include "server/disk_blob_store.h"
#include "server/service_core.h"
#include "server/service_impl.h"
#include "server/sqlite_store.h"
#include "test_dirs.h"

namespace curvd::server::testing {

inline constexpr char kCoreShard[] = "builtin://gaussian_regression?n=8&d=3";

class CoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    state_dir_ = MakeTempDir();
    data_root_ = MakeTempDir();
    std::ofstream(data_root_ + "/weights") << SafetensorsNote("weights");
    control_ = std::make_shared<FakeEngineControl>();
    faults_ = std::make_shared<StoreFaults>();
  }
  void TearDown() override {
    control_->Release();
    core_.reset();
  }

  // A core on the state directory (a fresh one replaces the last); its status.
  absl::Status StartCore() {
    core_.reset();
    ServiceOptions options;
    options.state_dir = state_dir_;
    options.store_factory =
        FaultInjectingStore::Wrap(SqliteStore::Factory(), faults_);
    options.blob_store_factory = DiskBlobStore::Factory();
    options.data_roots = {data_root_};
    options.devices = devices_;
    options.version = "test";
    options.worker_nice = worker_nice_;
    options.placement = placement_;
    auto control = control_;
    absl::StatusOr<std::unique_ptr<ServiceCore>> core =
        ServiceCore::Create(options, [control](const std::string& device) {
          return absl::StatusOr<std::unique_ptr<core::Engine>>(
              std::make_unique<FakeEngine>(device, control));
        });
    if (!core.ok()) return core.status();
    core_ = *std::move(core);
    return absl::OkStatus();
  }

  // Run `run_id` of the zoo MLP 3-4-1 with checkpoint 1 (a file under the data
  // root); returns the checkpoint's name.
  std::string CreateCheckpoint(const std::string& run_id) {
    curvd::v1::CreateRunRequest run;
    run.set_run_id(run_id);
    auto* zoo = run.mutable_run()->mutable_model()->mutable_zoo();
    for (int w : {3, 4, 1}) zoo->add_layer_widths(w);
    curvd::v1::Run created;
    EXPECT_TRUE(CreateRunImpl(*core_, run, &created).ok());
    curvd::v1::CreateCheckpointRequest checkpoint;
    checkpoint.set_parent(created.name());
    checkpoint.mutable_checkpoint()->set_step(1);
    checkpoint.mutable_checkpoint()->set_uri("file://" + data_root_ +
                                             "/weights");
    curvd::v1::Checkpoint stored;
    absl::Status status = CreateCheckpointImpl(*core_, checkpoint, &stored);
    EXPECT_TRUE(status.ok()) << status;
    return stored.name();
  }

  // Creates a sharpness measurement of `parent`; its status.
  absl::Status Create(const std::string& parent, curvd::v1::Measurement* m,
                      const std::string& request_id = "") {
    curvd::v1::CreateMeasurementRequest request;
    request.set_parent(parent);
    request.set_request_id(request_id);
    request.mutable_spec()->set_shard_uri(kCoreShard);
    request.mutable_spec()->mutable_sharpness()->set_top_k(1);
    return CreateMeasurementImpl(*core_, request, m);
  }

  // The stored measurement once it is `state` (a test failure after 10 s).
  curvd::v1::Measurement WaitFor(const std::string& name,
                                 curvd::v1::Measurement::State state) {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    curvd::v1::GetMeasurementRequest request;
    request.set_name(name);
    curvd::v1::Measurement m;
    do {
      if (GetMeasurementImpl(*core_, request, &m).ok() && m.state() == state) {
        return m;
      }
      absl::SleepFor(absl::Milliseconds(5));
    } while (absl::Now() < deadline);
    ADD_FAILURE() << name << " is "
                  << curvd::v1::Measurement::State_Name(m.state())
                  << ", expected " << curvd::v1::Measurement::State_Name(state);
    return m;
  }

  std::string state_dir_;
  std::string data_root_;
  // ServiceOptions::devices and worker_nice of the next StartCore.
  std::vector<std::string> devices_ = {"cpu"};
  int worker_nice_ = ServiceOptions().worker_nice;
  ReplicaPlacement placement_;
  std::shared_ptr<FakeEngineControl> control_;
  std::shared_ptr<StoreFaults> faults_;
  std::unique_ptr<ServiceCore> core_;
};

}  // namespace curvd::server::testing

#endif  // CURVD_TESTS_SERVER_CORE_FIXTURE_H_
