#include "core/api/cifar_format.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace curvd::core {
namespace {

// The training sets' per-channel (R, G, B) statistics of pixel / 255 over all
// 50,000 images and 1024 pixels, as published with the data sets' common
// training recipes (mean to 4 places, standard deviation over pixels, not the
// mean of per-image deviations that some recipes use).
constexpr std::array<float, 3> kCifar10Mean = {0.4914f, 0.4822f, 0.4465f};
constexpr std::array<float, 3> kCifar10Std = {0.2470f, 0.2435f, 0.2616f};
constexpr std::array<float, 3> kCifar100Mean = {0.5071f, 0.4865f, 0.4409f};
constexpr std::array<float, 3> kCifar100Std = {0.2673f, 0.2564f, 0.2762f};

}  // namespace

absl::StatusOr<CifarRecords> TakeCifarParams(UriQuery& query) {
  CifarRecords records;
  auto format = query.find("format");
  if (format == query.end()) {
    return absl::InvalidArgumentError(
        "a CIFAR shard needs format=cifar10 or format=cifar100");
  }
  if (format->second == "cifar100") {
    records.format = "cifar100";
    records.title = "CIFAR-100";
    records.labels = {{"coarse label", 20}, {"fine label", 100}};
    query.erase(format);
    CURVD_ASSIGN_OR_RETURN(
        const std::string label,
        TakeChoice(query, "label", {"fine", "coarse"}, "fine"));
    records.target_label = label == "fine" ? 1 : 0;
  } else if (format->second == "cifar10") {
    query.erase(format);
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "parameter format='", format->second,
        "' must be cifar10 or cifar100 (safetensors and idx files are "
        "recognised by their names and take no format=)"));
  }
  CURVD_ASSIGN_OR_RETURN(
      const std::string normalize,
      TakeChoice(query, "normalize", {"none", "mean_std"}, "none"));
  if (normalize == "mean_std") {
    const bool cifar10 = records.format == "cifar10";
    records.mean = cifar10 ? kCifar10Mean : kCifar100Mean;
    records.stddev = cifar10 ? kCifar10Std : kCifar100Std;
  }
  return records;
}

std::vector<std::string> CifarKeyParams(const CifarRecords& records) {
  std::vector<std::string> params = {absl::StrCat("format=", records.format)};
  if (records.labels.size() > 1) {
    params.push_back(
        absl::StrCat("label=", records.target_label == 0 ? "coarse" : "fine"));
  }
  const CifarRecords unnormalized;
  if (records.mean != unnormalized.mean ||
      records.stddev != unnormalized.stddev)
    params.push_back("normalize=mean_std");
  return params;
}

std::vector<std::string> CifarSplitFiles(const CifarRecords& records,
                                         bool train) {
  if (records.format == "cifar100") return {train ? "train.bin" : "test.bin"};
  if (!train) return {"test_batch.bin"};
  std::vector<std::string> files;
  for (int batch = 1; batch <= 5; ++batch)
    files.push_back(absl::StrCat("data_batch_", batch, ".bin"));
  return files;
}

}  // namespace curvd::core
