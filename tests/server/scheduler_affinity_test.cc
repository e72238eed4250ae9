// The scheduler through the service: two fake devices, the measurements of
// checkpoints created through the XImpl functions, and where each one ran.
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "checkpoint_bytes.h"
#include "fake_engine.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "server/disk_blob_store.h"
#include "server/job_queue.h"
#include "server/measurement_sources.h"
#include "server/service_core.h"
#include "server/service_impl.h"
#include "server/sqlite_store.h"
#include "test_dirs.h"

namespace curvd::server {
namespace {

namespace v1 = ::curvd::v1;
using google::protobuf::util::TimeUtil;
using testing::FakeEngine;
using testing::FakeEngineControl;

constexpr char kShard[] = "builtin://gaussian_regression?n=8&d=3";

// The model keys each device's engine was asked to measure, in order.
class LoadLog {
 public:
  void Add(const std::string& device, const std::string& model_key) {
    absl::MutexLock lock(&mu_);
    models_by_device_[device].push_back(model_key);
  }
  std::map<std::string, std::vector<std::string>> models_by_device() {
    absl::MutexLock lock(&mu_);
    return models_by_device_;
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, std::vector<std::string>> models_by_device_
      ABSL_GUARDED_BY(mu_);
};

// A FakeEngine that logs the model of every measurement it runs.
class LoggingEngine : public core::Engine {
 public:
  LoggingEngine(std::string device, std::shared_ptr<FakeEngineControl> control,
                LoadLog* log)
      : fake_(std::move(device), std::move(control)), log_(log) {}

  absl::StatusOr<core::MeasurementResult> Measure(
      const core::ModelSource& model, const core::ShardSpec& shard,
      const core::MeasurementRequest& request,
      const core::Progress& progress) override {
    log_->Add(fake_.device(), model.cache_key);
    return fake_.Measure(model, shard, request, progress);
  }
  absl::StatusOr<core::SplitPlan> PlanSplit(
      const core::ModelSource& model, const core::ShardSpec& shard,
      const core::MeasurementRequest& request, core::SplitRule rule,
      int available) override {
    return fake_.PlanSplit(model, shard, request, rule, available);
  }
  absl::StatusOr<core::MeasurementResult> MeasureSplit(
      const std::vector<core::Engine*>& helpers, const core::ModelSource& model,
      const core::ShardSpec& shard, const core::MeasurementRequest& request,
      const core::Progress& progress) override {
    return fake_.MeasureSplit(helpers, model, shard, request, progress);
  }
  std::string device() const override { return fake_.device(); }

 private:
  FakeEngine fake_;
  LoadLog* const log_;
};

// One small spec of each of four kinds.
std::vector<v1::MeasurementSpec> KindSpecs() {
  v1::MeasurementSpec common;
  common.set_shard_uri(kShard);
  common.set_loss(v1::LOSS_FUNCTION_MSE);
  // The affinity of whole measurements: none shares the idle devices.
  common.set_device_split(v1::DEVICE_SPLIT_ONE_DEVICE);
  std::vector<v1::MeasurementSpec> specs(4, common);
  specs[0].mutable_sharpness()->set_top_k(2);
  specs[1].mutable_hessian_trace()->set_max_probes(20);
  specs[2].mutable_trace_h3()->set_max_probes(20);
  specs[3].mutable_hutchpp()->set_max_hvps(30);
  return specs;
}

class SchedulerAffinityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    data_root_ = testing::MakeTempDir();
    for (const char* device : {"cuda:0", "cuda:1"}) {
      controls_[device] = std::make_shared<FakeEngineControl>();
      controls_[device]->Block();
    }
    ServiceOptions options;
    options.state_dir = testing::MakeTempDir();
    options.data_roots = {data_root_};
    options.devices = {"cuda:0", "cuda:1"};
    options.store_factory = SqliteStore::Factory();
    options.blob_store_factory = DiskBlobStore::Factory();
    EngineFactory factory = [this](const std::string& device) {
      return absl::StatusOr<std::unique_ptr<core::Engine>>(
          std::make_unique<LoggingEngine>(device, controls_.at(device), &log_));
    };
    auto core = ServiceCore::Create(options, factory);
    ASSERT_TRUE(core.ok()) << core.status();
    core_ = *std::move(core);

    v1::CreateRunRequest run;
    run.set_run_id("r");
    auto* zoo = run.mutable_run()->mutable_model()->mutable_zoo();
    for (int w : {3, 4, 1}) zoo->add_layer_widths(w);
    v1::Run created;
    ASSERT_TRUE(CreateRunImpl(*core_, run, &created).ok());
  }

  void TearDown() override {
    for (auto& [device, control] : controls_) control->Release();
    core_.reset();
  }

  // Checkpoint `step` of run "r", weights in a file under the data root.
  std::string AddCheckpoint(int step) {
    const std::string path = absl::StrCat(data_root_, "/c", step, ".st");
    std::ofstream(path) << testing::SafetensorsNote(
        absl::StrCat("weights of step ", step));
    v1::CreateCheckpointRequest request;
    request.set_parent("runs/r");
    request.mutable_checkpoint()->set_step(step);
    request.mutable_checkpoint()->set_uri("file://" + path);
    v1::Checkpoint checkpoint;
    absl::Status status = CreateCheckpointImpl(*core_, request, &checkpoint);
    EXPECT_TRUE(status.ok()) << status;
    return checkpoint.name();
  }

  std::string Measure(const std::string& checkpoint,
                      const v1::MeasurementSpec& spec) {
    v1::CreateMeasurementRequest request;
    request.set_parent(checkpoint);
    *request.mutable_spec() = spec;
    v1::Measurement m;
    absl::Status status = CreateMeasurementImpl(*core_, request, &m);
    EXPECT_TRUE(status.ok()) << status;
    return m.name();
  }

  // The measurement once it has left `state`, or as it is after 10 s.
  v1::Measurement WaitPast(const std::string& name,
                           v1::Measurement::State state) {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    v1::GetMeasurementRequest request;
    request.set_name(name);
    v1::Measurement m;
    while (true) {
      EXPECT_TRUE(GetMeasurementImpl(*core_, request, &m).ok());
      if (m.state() > state || absl::Now() > deadline) return m;
      absl::SleepFor(absl::Milliseconds(5));
    }
  }

  std::string data_root_;
  std::map<std::string, std::shared_ptr<FakeEngineControl>> controls_;
  LoadLog log_;
  std::unique_ptr<ServiceCore> core_;
};

// The kinds of checkpoint 1 all run on the device that took its first one, and
// those of checkpoint 2 on the other, though they were queued interleaved: no
// model is loaded on both devices.
TEST_F(SchedulerAffinityTest, ACheckpointsKindsRunOnTheDeviceThatLoadedIt) {
  const std::vector<v1::MeasurementSpec> specs = KindSpecs();
  const std::string c1 = AddCheckpoint(1);
  const std::string c2 = AddCheckpoint(2);
  std::map<std::string, std::vector<std::string>> measurements;
  measurements[c1].push_back(Measure(c1, specs[0]));
  const std::string first =
      WaitPast(measurements[c1][0], v1::Measurement::QUEUED)
          .diagnostics()
          .device();
  measurements[c2].push_back(Measure(c2, specs[0]));
  const std::string second =
      WaitPast(measurements[c2][0], v1::Measurement::QUEUED)
          .diagnostics()
          .device();
  ASSERT_EQ(std::set<std::string>({first, second}),
            std::set<std::string>({"cuda:0", "cuda:1"}));
  for (size_t k = 1; k < specs.size(); ++k) {
    measurements[c2].push_back(Measure(c2, specs[k]));
    measurements[c1].push_back(Measure(c1, specs[k]));
  }
  for (auto& [device, control] : controls_) control->Release();

  const std::map<std::string, std::string> device_of = {{c1, first},
                                                        {c2, second}};
  for (const auto& [checkpoint, names] : measurements) {
    for (const std::string& name : names) {
      v1::Measurement m = WaitPast(name, v1::Measurement::RUNNING);
      EXPECT_EQ(m.state(), v1::Measurement::SUCCEEDED) << name;
      EXPECT_EQ(m.diagnostics().device(), device_of.at(checkpoint)) << name;
    }
  }
  std::map<std::string, std::vector<std::string>> loads =
      log_.models_by_device();
  ASSERT_EQ(loads.size(), 2u);
  for (const auto& [device, models] : loads) {
    EXPECT_EQ(models.size(), specs.size()) << device;
    EXPECT_EQ(std::set<std::string>(models.begin(), models.end()).size(), 1u)
        << device;
  }
  EXPECT_NE(loads["cuda:0"].front(), loads["cuda:1"].front());
}

// No starvation: while the device that holds the model stays busy, the other,
// idle one takes the next kind of the checkpoint once the affinity wait is
// over, and not before.
TEST_F(SchedulerAffinityTest, AnIdleDeviceTakesAJobOnceTheAffinityWaitIsOver) {
  const std::vector<v1::MeasurementSpec> specs = KindSpecs();
  const std::string c1 = AddCheckpoint(1);
  const std::string busy =
      WaitPast(Measure(c1, specs[0]), v1::Measurement::QUEUED)
          .diagnostics()
          .device();
  const std::string idle = busy == "cuda:0" ? "cuda:1" : "cuda:0";
  controls_[idle]->Release();

  v1::Measurement m = WaitPast(Measure(c1, specs[1]), v1::Measurement::RUNNING);
  EXPECT_EQ(m.state(), v1::Measurement::SUCCEEDED);
  EXPECT_EQ(m.diagnostics().device(), idle);
  EXPECT_GE(TimeUtil::TimestampToNanoseconds(m.start_time()) -
                TimeUtil::TimestampToNanoseconds(m.create_time()),
            absl::ToInt64Nanoseconds(JobQueue::kDefaultAffinityWait));
}

// Jobs queued again at start-up carry the keys of what they load: the model
// key the engine is given and the shard's cache key; without sources, none.
TEST_F(SchedulerAffinityTest, JobOfKeysAStoredMeasurementByItsSources) {
  const std::string c1 = AddCheckpoint(1);
  v1::Measurement m =
      WaitPast(Measure(c1, KindSpecs()[0]), v1::Measurement::QUEUED);
  ASSERT_TRUE(controls_.at(m.diagnostics().device())->WaitForStarted(1));
  Job job = JobOf(m, "runs/r", core_->store(), core_->resolver());
  EXPECT_EQ(job.measurement_name, m.name());
  EXPECT_EQ(job.run_name, "runs/r");
  EXPECT_EQ(job.model_key,
            log_.models_by_device().at(m.diagnostics().device()).front());
  EXPECT_EQ(job.shard_key, core_->resolver().ResolveShard(kShard)->cache_key);
  EXPECT_NE(job.shard_key, "");

  m.mutable_spec()->clear_shard_uri();
  job = JobOf(m, "runs/r", core_->store(), core_->resolver());
  EXPECT_EQ(job.model_key, "");
  EXPECT_EQ(job.shard_key, "");
}

}  // namespace
}  // namespace curvd::server
