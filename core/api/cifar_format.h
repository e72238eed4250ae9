// The CIFAR-10 and CIFAR-100 binary formats as a shard, torch-free: the record
// layout, the URI parameters that choose how records are read, and the batch
// files of the directories the data sets ship as, so that the URI parser
// refuses bad parameters and the loader (core/data/shard.cc) reads records the
// same way.
//
// A batch file is a sequence of records and nothing else. A CIFAR-10 record is
// 1 label byte (0 to 9) then 3072 pixel bytes: 1024 red, 1024 green, 1024 blue,
// each a row-major 32x32 plane. A CIFAR-100 record has 2 label bytes, coarse
// (0 to 19) then fine (0 to 99), then the same pixels. The loaded shard's
// inputs are float32 [N, 3, 32, 32] in that channel order, pixel / 255, then
// (x - mean[c]) / std[c] with normalize=mean_std; its targets are int64 [N],
// the chosen label.
#ifndef CURVD_CORE_API_CIFAR_FORMAT_H_
#define CURVD_CORE_API_CIFAR_FORMAT_H_

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/api/uri_query.h"

namespace curvd::core {

inline constexpr int64_t kCifarImageSide = 32;
inline constexpr int64_t kCifarChannels = 3;
inline constexpr int64_t kCifarPixelBytes =
    kCifarChannels * kCifarImageSide * kCifarImageSide;  // 3072

// One label byte of a record and the number of classes it may name.
struct CifarLabel {
  std::string name;  // "label" (CIFAR-10), "coarse label", "fine label"
  int64_t classes = 10;
};

// How the records of a CIFAR shard are laid out and turned into tensors.
struct CifarRecords {
  std::string format = "cifar10";  // the URI's format=, "cifar10" or "cifar100"
  std::string title = "CIFAR-10";   // for messages
  // The label bytes that lead each record, in order; a record is
  // labels.size() + kCifarPixelBytes bytes.
  std::vector<CifarLabel> labels = {{"label", 10}};
  size_t target_label = 0;  // the index in `labels` of the target
  // Per channel (R, G, B), applied after pixel / 255: (x - mean) / stddev.
  // The defaults leave pixel / 255 exactly.
  std::array<float, 3> mean = {0.0f, 0.0f, 0.0f};
  std::array<float, 3> stddev = {1.0f, 1.0f, 1.0f};
};

// Takes format (required: cifar10 or cifar100), label (cifar100 only: fine,
// the default, or coarse) and normalize (none, the default, or mean_std: the
// training set's per-channel statistics of the format, stated in the .cc and
// the README) from `query`, removing each; the rest are left for the caller,
// label= with cifar10 among them (the caller refuses it as the unknown
// parameter it is for that format). InvalidArgument naming the parameter and
// its values when one is missing or has an unknown value.
absl::StatusOr<CifarRecords> TakeCifarParams(UriQuery& query);

// The parameters of `records` in canonical form ("format=..", then "label=.."
// for cifar100, then "normalize=mean_std" when normalising), for cache keys.
std::vector<std::string> CifarKeyParams(const CifarRecords& records);

// The batch files of a split in the directory layout the format ships as
// (cifar-10-batches-bin/, cifar-100-binary/), in the order they are read:
// cifar10 train data_batch_1.bin .. data_batch_5.bin, test test_batch.bin;
// cifar100 train train.bin, test test.bin.
std::vector<std::string> CifarSplitFiles(const CifarRecords& records,
                                         bool train);

}  // namespace curvd::core

#endif  // CURVD_CORE_API_CIFAR_FORMAT_H_
