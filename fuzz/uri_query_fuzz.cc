// Fuzzes the shard-URI query readers (core/api/uri_query.h) with a query
// "k=v&..." read by fuzz::QueryOf. Contract held, beyond no crash and no
// sanitizer report: each reader returns its fallback when its key is absent;
// on success the value lies in the reader's bounds (a choice is one of the
// choices) and the key is removed; on failure (InvalidArgument) the query is
// left as it was; no reader touches another key.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>

#include "core/api/uri_query.h"
#include "fuzz/fuzz_check.h"

namespace curvd::fuzz {
namespace {

// Checks what a reader did to `query` (a copy of `before`) for `key`.
template <typename T>
void CheckTaken(const core::UriQuery& before, const core::UriQuery& after,
                const std::string& key, const absl::StatusOr<T>& value) {
  if (value.ok()) {
    core::UriQuery expected = before;
    expected.erase(key);
    FUZZ_CHECK(after == expected);
  } else {
    FUZZ_CHECK(value.status().code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(after == before);
    FUZZ_CHECK(before.count(key) == 1);
  }
}

}  // namespace
}  // namespace curvd::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace curvd;
  const core::UriQuery original = fuzz::QueryOf(
      absl::string_view(reinterpret_cast<const char*>(data), size));
  core::UriQuery query = original;

  core::UriQuery before = query;
  absl::StatusOr<int64_t> i = core::TakeInt(query, "i", -1000, 1000, 7);
  fuzz::CheckTaken(before, query, "i", i);
  if (i.ok()) FUZZ_CHECK(*i >= -1000 && *i <= 1000);
  if (i.ok() && before.count("i") == 0) FUZZ_CHECK(*i == 7);

  before = query;
  absl::StatusOr<int64_t> n =
      core::TakeInt(query, "n", 1, std::numeric_limits<int64_t>::max(), 0);
  fuzz::CheckTaken(before, query, "n", n);
  if (n.ok() && before.count("n") == 1) FUZZ_CHECK(*n >= 1);

  before = query;
  absl::StatusOr<uint64_t> u = core::TakeUint64(query, "u", 3);
  fuzz::CheckTaken(before, query, "u", u);
  if (u.ok() && before.count("u") == 0) FUZZ_CHECK(*u == 3);

  before = query;
  absl::StatusOr<double> x = core::TakeNumberAbove(query, "x", 0.0, 1.0, 0.5);
  fuzz::CheckTaken(before, query, "x", x);
  if (x.ok()) FUZZ_CHECK(std::isfinite(*x) && *x > 0.0 && *x <= 1.0);

  before = query;
  absl::StatusOr<std::string> c =
      core::TakeChoice(query, "c", {"train", "test"}, "train");
  fuzz::CheckTaken(before, query, "c", c);
  if (c.ok()) FUZZ_CHECK(*c == "train" || *c == "test");
  if (c.ok() && before.count("c") == 1) FUZZ_CHECK(*c == before.at("c"));
  return 0;
}
