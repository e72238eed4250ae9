// The host memory one measurement may take, charged part by part (the model's
// parameters, the shard, the working set) as each is sized and before it is
// allocated, so that a request out of proportion is refused while it is still
// cheap (docs/adr/0021-measurement-memory-budget.md). Not thread-safe: one
// per measurement.
#ifndef CURVD_CORE_DATA_MEMORY_BUDGET_H_
#define CURVD_CORE_DATA_MEMORY_BUDGET_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace curvd::core {

class MemoryBudget {
 public:
  // A budget of `limit_bytes`; 0 for none (every charge succeeds).
  explicit MemoryBudget(int64_t limit_bytes) : limit_(limit_bytes) {}

  // Adds `bytes` for `what` ("the shard's inputs"). ResourceExhausted, the
  // charge not added, when the total would exceed the limit: the message
  // names `what`, its bytes, by how much the total exceeds the budget, and
  // the server flag that sets it.
  absl::Status Charge(const std::string& what, int64_t bytes);

  int64_t charged() const { return charged_; }
  int64_t limit() const { return limit_; }

 private:
  const int64_t limit_;
  int64_t charged_ = 0;
};

}  // namespace curvd::core

#endif  // CURVD_CORE_DATA_MEMORY_BUDGET_H_
