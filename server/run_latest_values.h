// The "latest value of active runs" metric family, the one place where run ids
// are labels (STYLE.md): for each run that recently finished a measurement, the
// scalar results of its newest measured checkpoint, per kind,
//   curvd_run_latest_value{run, kind, quantity}  the value
//   curvd_run_latest_step{run, kind}             the checkpoint's step
// Bounded: a run idle longer than `idle` is dropped (DropIdle), and at most
// `max_runs` runs are held, the least recently updated evicted for a new one.
// docs/adr/0016-run-latest-values.md says why the step is a gauge, not a label.
#ifndef CURVD_SERVER_RUN_LATEST_VALUES_H_
#define CURVD_SERVER_RUN_LATEST_VALUES_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "curvd/v1/resources.pb.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"

namespace curvd::server {

struct RunLatestLimits {
  // Most runs held; 0 exports none.
  size_t max_runs = 100;
  // A run with no result for this long is dropped.
  absl::Duration idle = absl::Hours(1);
};

// Thread-safe. Registers both families in the registry passed to the
// constructor, which must outlive this.
class RunLatestValues {
 public:
  RunLatestValues(prometheus::Registry& registry,
                  const RunLatestLimits& limits);
  ~RunLatestValues();

  // Records a SUCCEEDED measurement's results as updated at `now`: every
  // double field of its result message (the members' of a plan, each under
  // its own kind) is a quantity, labelled with the result field's name as the
  // kind ("sharpness", "hessian_trace", "llc"). A kind's values are replaced
  // by those of a checkpoint of the same or a later step, not an earlier one
  // (a backfill of old checkpoints leaves the newest shown), but any result
  // keeps its run active. Measurements of another state, or without a double
  // to show, change nothing.
  void Record(const curvd::v1::Measurement& measurement, absl::Time now);

  // Removes every series of the runs last updated before now - idle.
  void DropIdle(absl::Time now);

  // Runs held.
  size_t runs() const;

 private:
  struct KindSeries {
    int64_t step = 0;
    prometheus::Gauge* step_gauge = nullptr;
    absl::flat_hash_map<std::string, prometheus::Gauge*> values;  // quantity
  };
  struct RunSeries {
    absl::Time updated;
    absl::flat_hash_map<std::string, KindSeries> kinds;
  };

  void Remove(RunSeries& run) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The entry of `run_id`, made room for when it is new.
  RunSeries& Entry(const std::string& run_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const RunLatestLimits limits_;
  prometheus::Family<prometheus::Gauge>& values_;
  prometheus::Family<prometheus::Gauge>& steps_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, RunSeries> runs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace curvd::server

#endif  // CURVD_SERVER_RUN_LATEST_VALUES_H_
