#include "core/api/uri_query.h"

#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace curvd::core {

absl::StatusOr<int64_t> TakeInt(UriQuery& query, const std::string& key,
                                int64_t min, int64_t max, int64_t fallback) {
  auto it = query.find(key);
  if (it == query.end()) return fallback;
  int64_t value = 0;
  if (!absl::SimpleAtoi(it->second, &value) || value < min || value > max) {
    return absl::InvalidArgumentError(
        absl::StrCat("parameter ", key, "='", it->second,
                     "' must be an integer in [", min, ", ", max, "]"));
  }
  query.erase(it);
  return value;
}

absl::StatusOr<uint64_t> TakeUint64(UriQuery& query, const std::string& key,
                                    uint64_t fallback) {
  auto it = query.find(key);
  if (it == query.end()) return fallback;
  uint64_t value = 0;
  if (!absl::SimpleAtoi(it->second, &value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("parameter ", key, "='", it->second,
                     "' must be an unsigned 64-bit integer"));
  }
  query.erase(it);
  return value;
}

absl::StatusOr<double> TakeNumberAbove(UriQuery& query, const std::string& key,
                                       double min, double max,
                                       double fallback) {
  auto it = query.find(key);
  if (it == query.end()) return fallback;
  double value = 0;
  if (!absl::SimpleAtod(it->second, &value) || !std::isfinite(value) ||
      value <= min || value > max) {
    return absl::InvalidArgumentError(
        absl::StrCat("parameter ", key, "='", it->second,
                     "' must be a number in (", min, ", ", max, "]"));
  }
  query.erase(it);
  return value;
}

absl::StatusOr<std::string> TakeChoice(UriQuery& query, const std::string& key,
                                       const std::vector<std::string>& choices,
                                       const std::string& fallback) {
  auto it = query.find(key);
  if (it == query.end()) return fallback;
  for (const std::string& choice : choices) {
    if (it->second == choice) {
      query.erase(it);
      return choice;
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("parameter ", key, "='", it->second, "' must be ",
                   absl::StrJoin(choices, " or ")));
}

}  // namespace curvd::core
