// Fuzzes the CIFAR parameters of a shard URI (core/api/cifar_format.h) with a
// query "k=v&..." read by fuzz::QueryOf. Contract held, beyond no crash and no
// sanitizer report: TakeCifarParams accepts only queries whose format is
// cifar10 or cifar100, removing format and normalize, and label for cifar100,
// and nothing else; the records it gives are consistent (a target label that exists, one
// label byte per label, split files for both splits); and the canonical
// parameters CifarKeyParams writes read back to the same canonical form.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "core/api/cifar_format.h"
#include "fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace curvd;
  const core::UriQuery original = fuzz::QueryOf(
      absl::string_view(reinterpret_cast<const char*>(data), size));
  core::UriQuery query = original;
  absl::StatusOr<core::CifarRecords> records = core::TakeCifarParams(query);
  auto format = original.find("format");
  const bool known_format =
      format != original.end() &&
      (format->second == "cifar10" || format->second == "cifar100");
  if (!records.ok()) {
    FUZZ_CHECK(records.status().code() == absl::StatusCode::kInvalidArgument);
    return 0;
  }
  FUZZ_CHECK(known_format);
  FUZZ_CHECK(records->format == format->second);
  FUZZ_CHECK(query.count("format") == 0 && query.count("normalize") == 0);
  FUZZ_CHECK(query.count("label") == 0 || records->format == "cifar10");
  for (const auto& [key, value] : query) {
    auto it = original.find(key);
    FUZZ_CHECK(it != original.end() && it->second == value);
  }
  FUZZ_CHECK(query.size() + 3 >= original.size());
  FUZZ_CHECK(records->labels.size() == (records->format == "cifar100" ? 2 : 1));
  FUZZ_CHECK(records->target_label < records->labels.size());
  FUZZ_CHECK(!core::CifarSplitFiles(*records, true).empty() &&
             !core::CifarSplitFiles(*records, false).empty());

  const std::vector<std::string> key = core::CifarKeyParams(*records);
  core::UriQuery canonical = fuzz::QueryOf(absl::StrJoin(key, "&"));
  absl::StatusOr<core::CifarRecords> again = core::TakeCifarParams(canonical);
  FUZZ_CHECK(again.ok() && canonical.empty());
  FUZZ_CHECK(core::CifarKeyParams(*again) == key);
  FUZZ_CHECK(again->target_label == records->target_label &&
             again->mean == records->mean && again->stddev == records->stddev);
  return 0;
}
