// Where a model, its weights and a data shard come from: resolved local paths
// and generator parameters, no torch. The server resolves URIs and digests to
// these.
#ifndef CURVD_CORE_API_SOURCES_H_
#define CURVD_CORE_API_SOURCES_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/api/cifar_format.h"

namespace curvd::core {

struct ZooSpec {
  std::string architecture = "mlp";
  std::vector<int64_t> layer_widths;  // input first, output last
  std::string activation = "tanh";    // "tanh", "relu", "gelu"
};

// InvalidArgument unless architecture is "mlp", there are 2 to 1024 widths,
// each in [1, 1<<20], the model has at most 2^31 parameters, and the activation
// is known. Torch-free, so that the server refuses a bad spec when the run is
// created instead of failing every measurement of it.
absl::Status ValidateZooSpec(const ZooSpec& spec);

// The module name of layer `layer` of the zoo MLP ("fc0", "fc1", ...); its
// parameters are NAME.weight and NAME.bias. core/zoo_mlp registers its layers
// under these names.
std::string ZooLayerName(size_t layer);

// Every parameter of the zoo MLP `spec` with its shape ([out, in] weights,
// [out] biases), in registration order, computed without building the model:
// a state dict is checked against it before the model is allocated.
std::vector<std::pair<std::string, std::vector<int64_t>>> ZooParameterShapes(
    const ZooSpec& spec);

// Every parameter of the zoo MLP `spec` with its number of elements, in
// registration order (fc0.weight, fc0.bias, fc1.weight, ...), computed without
// building the model: the server sizes parameter blocks with it.
std::vector<std::pair<std::string, int64_t>> ZooParameterSizes(
    const ZooSpec& spec);

// The model architecture and the weights to measure it at.
struct ModelSource {
  enum class Kind { kTorchScript, kZoo };
  Kind kind = Kind::kZoo;
  std::string archive_path;  // kTorchScript: the run's archive
  ZooSpec zoo;               // kZoo
  // Weights to load into the architecture: a safetensors state dict whose names
  // and shapes must match. Empty: the archive's own weights (kTorchScript
  // only).
  std::string state_dict_path;
  // Content identity for caches: digests of archive and weights, or a zoo key.
  std::string cache_key;
  // The directories the engine opens archive_path and state_dict_path
  // beneath, by the walk of core/api/data_roots.h, so that a path checked
  // when it was resolved cannot lead elsewhere when it is read (the server
  // passes its data roots and its blob directory). Empty: the paths are
  // opened as they are, trusted by the caller.
  std::vector<std::string> data_roots;
  // kTorchScript: the executable that loads archive_path in a child process
  // before the engine loads it, so that an archive that crashes LibTorch's
  // loader is refused instead of ending the process (core/data/archive_check.h;
  // the server passes curvd_archive_check). Empty: loaded in this process
  // only, for archives the caller trusts.
  std::string archive_checker;
};

struct ShardSpec {
  enum class Kind { kSafetensors, kIdx, kCifar, kBuiltin };
  Kind kind = Kind::kSafetensors;
  // kSafetensors: the file; kIdx: the images file; kCifar: the batch file or
  // the directory named.
  std::string path;
  std::string labels_path;  // kIdx: the labels file
  // kCifar: the batch files, whose records are concatenated in this order, and
  // how their records are read (core/api/cifar_format.h).
  std::vector<std::string> record_files;
  CifarRecords cifar;
  std::string generator;  // kBuiltin: "gaussian_regression", "modular_addition"
  std::map<std::string, std::string> params;  // kBuiltin: generator parameters
  int64_t offset = 0;                         // first sample taken
  int64_t limit = 0;      // samples taken; 0 = all from offset
  std::string cache_key;  // the URI, canonicalised
  // The directories every path above is opened beneath, as
  // ModelSource::data_roots; ParseShardUri sets the roots it checked against.
  std::vector<std::string> data_roots;
};

// Parses a shard URI (see MeasurementSpec.shard_uri in the proto). file://
// paths must be absolute, contain no "..", and resolve inside one of
// `data_roots` (core::ResolveInDataRoots: symlinks are followed only while
// they stay inside the roots); otherwise InvalidArgument (bad form) or
// PermissionDenied with one message for whatever is outside the roots,
// existing or not, linked to or not; NotFound for a file missing inside them. With
// format=cifar10|cifar100 the path is one batch file, or a directory whose
// split=train|test (default train) batch files (CifarSplitFiles) are each
// resolved the same way. blob:// URIs are not handled here (the
// server maps them to a path under its blob store first and passes
// `trusted_path`).
absl::StatusOr<ShardSpec> ParseShardUri(
    const std::string& uri, const std::vector<std::string>& data_roots);

// Resolves file://PATH (no query) to a canonical path inside `data_roots`, with
// the same errors as ParseShardUri. Used for archive and checkpoint URIs.
absl::StatusOr<std::string> ResolveDataPath(
    const std::string& uri, const std::vector<std::string>& data_roots);

}  // namespace curvd::core

#endif  // CURVD_CORE_API_SOURCES_H_
