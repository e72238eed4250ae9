// A Store over any other that fails chosen calls after a number of successes,
// for tests of the paths a storage failure takes (leveldb's fault-injection
// env, for the store).
#ifndef CURVD_TESTS_SERVER_FAULT_INJECTING_STORE_H_
#define CURVD_TESTS_SERVER_FAULT_INJECTING_STORE_H_

#include <climits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "server/store.h"

namespace curvd::server::testing {

// The Store methods a fault can target.
enum class StoreCall {
  kInsertRun,
  kGetRun,
  kListRuns,
  kInsertCheckpoint,
  kGetCheckpoint,
  kListCheckpoints,
  kInsertMeasurement,
  kFindMeasurementByRequestId,
  kGetMeasurement,
  kUpdateMeasurement,
  kDeleteMeasurement,
  kListMeasurements,
  kRecoverInterrupted,
  kDeleteRun,
  kReferencedBlobs,
};

// The faults and the call counts, shared by a test and the stores it made.
// Thread-safe.
class StoreFaults {
 public:
  // After `successes` more calls of `call` reach the store, the next
  // `failures` calls fail with `error` without reaching it; later ones reach
  // it again. Replaces an earlier fault of `call`.
  void FailAfter(StoreCall call, int successes, int failures = INT_MAX,
                 absl::Status error = absl::InternalError(
                     "injected store failure")) {
    absl::MutexLock lock(&mu_);
    faults_[call] = Fault{successes, failures, std::move(error)};
  }
  // Clears every fault.
  void Heal() {
    absl::MutexLock lock(&mu_);
    faults_.clear();
  }
  // Calls of `call` that failed by injection.
  int failed(StoreCall call) {
    absl::MutexLock lock(&mu_);
    return failed_[call];
  }

  // The injected error for this call of `call`, or OK to let it through.
  absl::Status Next(StoreCall call) {
    absl::MutexLock lock(&mu_);
    auto it = faults_.find(call);
    if (it == faults_.end()) return absl::OkStatus();
    Fault& fault = it->second;
    if (fault.successes > 0) {
      --fault.successes;
      return absl::OkStatus();
    }
    if (fault.failures == 0) return absl::OkStatus();
    --fault.failures;
    ++failed_[call];
    return fault.error;
  }

 private:
  struct Fault {
    int successes;
    int failures;
    absl::Status error;
  };
  absl::Mutex mu_;
  absl::flat_hash_map<StoreCall, Fault> faults_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<StoreCall, int> failed_ ABSL_GUARDED_BY(mu_);
};

class FaultInjectingStore : public Store {
 public:
  FaultInjectingStore(std::unique_ptr<Store> base,
                      std::shared_ptr<StoreFaults> faults)
      : base_(std::move(base)), faults_(std::move(faults)) {}

  // `base` with `faults` in front of every store it opens.
  static StoreFactory Wrap(StoreFactory base,
                           std::shared_ptr<StoreFaults> faults) {
    return [base = std::move(base), faults = std::move(faults)](
               const std::string& state_dir)
               -> absl::StatusOr<std::unique_ptr<Store>> {
      absl::StatusOr<std::unique_ptr<Store>> store = base(state_dir);
      if (!store.ok()) return store.status();
      return std::make_unique<FaultInjectingStore>(*std::move(store), faults);
    };
  }

  absl::Status InsertRun(const curvd::v1::Run& run) override {
    return Call(StoreCall::kInsertRun, [&] { return base_->InsertRun(run); });
  }
  absl::StatusOr<curvd::v1::Run> GetRun(const std::string& name) override {
    return Call(StoreCall::kGetRun, [&] { return base_->GetRun(name); });
  }
  absl::StatusOr<Page<curvd::v1::Run>> ListRuns(
      int page_size, const std::string& page_token) override {
    return Call(StoreCall::kListRuns,
                [&] { return base_->ListRuns(page_size, page_token); });
  }
  absl::Status InsertCheckpoint(
      const std::string& run_name,
      const curvd::v1::Checkpoint& checkpoint) override {
    return Call(StoreCall::kInsertCheckpoint, [&] {
      return base_->InsertCheckpoint(run_name, checkpoint);
    });
  }
  absl::StatusOr<curvd::v1::Checkpoint> GetCheckpoint(
      const std::string& name) override {
    return Call(StoreCall::kGetCheckpoint,
                [&] { return base_->GetCheckpoint(name); });
  }
  absl::StatusOr<Page<curvd::v1::Checkpoint>> ListCheckpoints(
      const std::string& run_name, int page_size,
      const std::string& page_token) override {
    return Call(StoreCall::kListCheckpoints, [&] {
      return base_->ListCheckpoints(run_name, page_size, page_token);
    });
  }
  absl::Status InsertMeasurement(const std::string& checkpoint_name,
                                 const curvd::v1::Measurement& measurement,
                                 const std::string& request_id) override {
    return Call(StoreCall::kInsertMeasurement, [&] {
      return base_->InsertMeasurement(checkpoint_name, measurement,
                                      request_id);
    });
  }
  absl::StatusOr<curvd::v1::Measurement> FindMeasurementByRequestId(
      const std::string& checkpoint_name,
      const std::string& request_id) override {
    return Call(StoreCall::kFindMeasurementByRequestId, [&] {
      return base_->FindMeasurementByRequestId(checkpoint_name, request_id);
    });
  }
  absl::StatusOr<curvd::v1::Measurement> GetMeasurement(
      const std::string& name) override {
    return Call(StoreCall::kGetMeasurement,
                [&] { return base_->GetMeasurement(name); });
  }
  absl::Status UpdateMeasurement(
      const curvd::v1::Measurement& measurement) override {
    return Call(StoreCall::kUpdateMeasurement,
                [&] { return base_->UpdateMeasurement(measurement); });
  }
  absl::Status DeleteMeasurement(const std::string& name) override {
    return Call(StoreCall::kDeleteMeasurement,
                [&] { return base_->DeleteMeasurement(name); });
  }
  absl::StatusOr<Page<curvd::v1::Measurement>> ListMeasurements(
      const std::string& run_name, const std::string& checkpoint_name,
      int page_size, const std::string& page_token) override {
    return Call(StoreCall::kListMeasurements, [&] {
      return base_->ListMeasurements(run_name, checkpoint_name, page_size,
                                     page_token);
    });
  }
  absl::StatusOr<DeletedRun> DeleteRun(const std::string& name) override {
    return Call(StoreCall::kDeleteRun, [&] { return base_->DeleteRun(name); });
  }
  absl::StatusOr<absl::flat_hash_set<std::string>> ReferencedBlobs()
      override {
    return Call(StoreCall::kReferencedBlobs,
                [&] { return base_->ReferencedBlobs(); });
  }
  absl::StatusOr<std::vector<curvd::v1::Measurement>> RecoverInterrupted()
      override {
    return Call(StoreCall::kRecoverInterrupted,
                [&] { return base_->RecoverInterrupted(); });
  }
  absl::Status Close() override { return base_->Close(); }

 private:
  template <typename F>
  auto Call(StoreCall call, F forward) -> decltype(forward()) {
    absl::Status injected = faults_->Next(call);
    if (!injected.ok()) return injected;
    return forward();
  }

  std::unique_ptr<Store> base_;
  std::shared_ptr<StoreFaults> faults_;
};

}  // namespace curvd::server::testing

#endif  // CURVD_TESTS_SERVER_FAULT_INJECTING_STORE_H_
