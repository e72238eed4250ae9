// Status propagation macros. Debian's Abseil (20220623) ships none.
#ifndef CURVD_COMMON_STATUS_MACROS_H_
#define CURVD_COMMON_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define CURVD_STATUS_CONCAT_INNER_(a, b) a##b
#define CURVD_STATUS_CONCAT_(a, b) CURVD_STATUS_CONCAT_INNER_(a, b)

// Evaluates `expr` (an absl::Status) and returns it from the caller if not OK.
#define CURVD_RETURN_IF_ERROR(expr)                \
  do {                                             \
    ::absl::Status curvd_status_ = (expr);         \
    if (!curvd_status_.ok()) return curvd_status_; \
  } while (0)

// Evaluates `rexpr` (an absl::StatusOr<T>); returns its status if not OK, else
// moves its value into `lhs` (which may be a declaration such as `auto x`).
#define CURVD_ASSIGN_OR_RETURN(lhs, rexpr) \
  CURVD_ASSIGN_OR_RETURN_IMPL_(            \
      CURVD_STATUS_CONCAT_(curvd_statusor_, __LINE__), lhs, rexpr)
#define CURVD_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                 \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

#endif  // CURVD_COMMON_STATUS_MACROS_H_
