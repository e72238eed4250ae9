// Reading the query parameters of a shard URI (builtin://NAME?key=value&...):
// each reader removes the key it takes, so that whatever is left afterwards is
// an unknown parameter to refuse. Errors name the parameter and its bounds.
#ifndef CURVD_CORE_API_URI_QUERY_H_
#define CURVD_CORE_API_URI_QUERY_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace curvd::core {

using UriQuery = std::map<std::string, std::string>;

// Removes `key` from `query` and parses it as an integer in [min, max];
// `fallback` when absent. InvalidArgument "parameter KEY='V' must be an integer
// in [MIN, MAX]" otherwise.
absl::StatusOr<int64_t> TakeInt(UriQuery& query, const std::string& key,
                                int64_t min, int64_t max, int64_t fallback);

// Removes `key` and parses it as an unsigned 64-bit integer; `fallback` when
// absent.
absl::StatusOr<uint64_t> TakeUint64(UriQuery& query, const std::string& key,
                                    uint64_t fallback);

// Removes `key` and parses it as a finite number in the half-open interval
// (min, max]; `fallback` when absent.
absl::StatusOr<double> TakeNumberAbove(UriQuery& query, const std::string& key,
                                       double min, double max, double fallback);

// Removes `key` and returns its value, which must be one of `choices`;
// `fallback` when absent. InvalidArgument "parameter KEY='V' must be A or B"
// otherwise.
absl::StatusOr<std::string> TakeChoice(UriQuery& query, const std::string& key,
                                       const std::vector<std::string>& choices,
                                       const std::string& fallback);

}  // namespace curvd::core

#endif  // CURVD_CORE_API_URI_QUERY_H_
