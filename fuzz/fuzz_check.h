// What every fuzz target shares: FUZZ_CHECK, which reports a broken property
// and abort()s so that libFuzzer keeps the input as a crash, and the query
// reader the URI targets build their input with.
#ifndef CURVD_FUZZ_FUZZ_CHECK_H_
#define CURVD_FUZZ_FUZZ_CHECK_H_

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "core/api/uri_query.h"

// Aborts with the failed condition and its place when `condition` is false.
#define FUZZ_CHECK(condition)                                         \
  do {                                                                \
    if (!(condition)) {                                               \
      std::fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, \
                   __LINE__, #condition);                             \
      std::abort();                                                   \
    }                                                                 \
  } while (0)

namespace curvd::fuzz {

// The query "k=v&k=v" as a map: a pair without '=' is a key with an empty
// value, and the first of a repeated key wins (the URI parser refuses those
// itself; the targets that call the Take* readers directly need only a map).
inline core::UriQuery QueryOf(absl::string_view text) {
  core::UriQuery query;
  for (absl::string_view pair : absl::StrSplit(text, '&', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv =
        absl::StrSplit(pair, absl::MaxSplits('=', 1));
    query.emplace(std::move(kv));
  }
  return query;
}

}  // namespace curvd::fuzz

#endif  // CURVD_FUZZ_FUZZ_CHECK_H_
