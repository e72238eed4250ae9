#include "core/api/sources.h"

#include <climits>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "core/api/data_roots.h"
#include "core/api/modular_addition.h"
#include "core/api/uri_query.h"

namespace curvd::core {
namespace {

constexpr absl::string_view kFileScheme = "file://";
constexpr absl::string_view kBuiltinScheme = "builtin://";
constexpr absl::string_view kGaussianRegression = "gaussian_regression";

// Bounds on generated shards: enough for any test or demo, small enough that a
// request cannot make the server allocate more than about a GiB per tensor.
constexpr int64_t kMaxGeneratedSamples = 10'000'000;
constexpr int64_t kMaxGeneratedFeatures = 100'000;
constexpr int64_t kMaxGeneratedElements = int64_t{1} << 28;

// Zoo MLP bounds. A width beyond kMaxZooWidth would make a single layer larger
// than any model the service is meant for; widths each in range can still
// multiply to terabytes of weights, hence kMaxZooParameters; and every layer is
// a module to build, hence kMaxZooLayers.
constexpr int64_t kMaxZooWidth = int64_t{1} << 20;
constexpr int64_t kMaxZooParameters = int64_t{1} << 31;
constexpr size_t kMaxZooWidths = 1024;

struct SplitUri {
  std::string scheme;  // "file://" or "builtin://"
  std::string rest;    // between the scheme and '?'
  UriQuery query;
};

absl::StatusOr<SplitUri> Split(const std::string& uri) {
  SplitUri out;
  absl::string_view view = uri;
  if (absl::StartsWith(view, kFileScheme)) {
    out.scheme = std::string(kFileScheme);
  } else if (absl::StartsWith(view, kBuiltinScheme)) {
    out.scheme = std::string(kBuiltinScheme);
  } else if (absl::StartsWith(view, "blob://")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "blob:// URIs must be resolved to an uploaded blob by the server: '",
        uri, "'"));
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "unsupported URI '", uri, "': expected file:// or builtin://"));
  }
  view.remove_prefix(out.scheme.size());
  const size_t question = view.find('?');
  out.rest = std::string(view.substr(0, question));
  if (question == absl::string_view::npos) return out;
  for (absl::string_view pair :
       absl::StrSplit(view.substr(question + 1), '&')) {
    if (pair.empty()) continue;
    const size_t eq = pair.find('=');
    if (eq == absl::string_view::npos || eq == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "query parameter '", pair, "' in '", uri, "' is not key=value"));
    }
    std::string key(pair.substr(0, eq));
    if (!out.query.emplace(key, std::string(pair.substr(eq + 1))).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("query parameter '", key, "' repeated in '", uri, "'"));
    }
  }
  return out;
}

// The canonical path of an existing regular file inside the roots.
absl::StatusOr<std::string> ResolveFileInRoots(
    const std::string& path, const std::vector<std::string>& roots) {
  CURVD_ASSIGN_OR_RETURN(RootedPath found, ResolveInDataRoots(path, roots));
  if (found.directory) {
    return absl::InvalidArgumentError(absl::StrCat(
        "path '", NormalizeAbsolutePath(path).value(),
        "' is not a regular file"));
  }
  return found.canonical;
}

bool IsIdxImages(absl::string_view path) {
  return absl::EndsWith(path, "idx3-ubyte") ||
         absl::EndsWith(path, "idx3-ubyte.gz");
}

absl::Status RejectUnknown(const UriQuery& query, const std::string& uri) {
  if (query.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown query parameter '", query.begin()->first, "' in '", uri, "'"));
}

// A CIFAR batch file, or a directory whose split's batch files are read in
// order; appends the canonical parameters to `key_params`.
absl::Status ParseCifarShard(const std::string& uri, SplitUri& split,
                             const std::vector<std::string>& roots, ShardSpec& spec,
                             std::vector<std::string>& key_params) {
  spec.kind = ShardSpec::Kind::kCifar;
  absl::StatusOr<CifarRecords> records = TakeCifarParams(split.query);
  if (!records.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(records.status().message(), " in '", uri, "'"));
  }
  spec.cifar = *std::move(records);
  key_params = CifarKeyParams(spec.cifar);
  CURVD_ASSIGN_OR_RETURN(RootedPath named,
                         ResolveInDataRoots(split.rest, roots));
  spec.path = named.canonical;
  if (!named.directory) {
    spec.record_files = {spec.path};
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> split_name =
      TakeChoice(split.query, "split", {"train", "test"}, "train");
  if (!split_name.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(split_name.status().message(), " in '", uri, "'"));
  }
  key_params.push_back(absl::StrCat("split=", *split_name));
  for (const std::string& name :
       CifarSplitFiles(spec.cifar, *split_name == "train")) {
    // Each batch file is resolved again: a symlink inside the directory must
    // not lead out of the roots.
    CURVD_ASSIGN_OR_RETURN(std::string file,
                           ResolveFileInRoots(spec.path + "/" + name, roots));
    spec.record_files.push_back(std::move(file));
  }
  return absl::OkStatus();
}

absl::Status ParseFileShard(const std::string& uri, SplitUri split,
                            const std::vector<std::string>& roots,
                            ShardSpec& spec) {
  spec.data_roots = roots;
  std::vector<std::string> key_params;
  if (split.query.count("format") > 0) {
    CURVD_RETURN_IF_ERROR(
        ParseCifarShard(uri, split, roots, spec, key_params));
  } else if (IsIdxImages(split.rest)) {
    CURVD_ASSIGN_OR_RETURN(spec.path, ResolveFileInRoots(split.rest, roots));
    spec.kind = ShardSpec::Kind::kIdx;
    auto labels = split.query.find("labels");
    if (labels == split.query.end() || labels->second.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "idx images '", uri, "' need their labels file: add ?labels=FILE"));
    }
    std::string labels_path = labels->second;
    if (labels_path[0] != '/') {
      // Relative to the directory the images were named in, before symlinks are
      // followed, so that a labels file beside a linked images file is found.
      CURVD_ASSIGN_OR_RETURN(std::string images, NormalizeAbsolutePath(split.rest));
      labels_path =
          absl::StrCat(images.substr(0, images.rfind('/') + 1), labels_path);
    }
    CURVD_ASSIGN_OR_RETURN(spec.labels_path,
                           ResolveFileInRoots(labels_path, roots));
    split.query.erase(labels);
    key_params.push_back(absl::StrCat("labels=", spec.labels_path));
  } else {
    CURVD_ASSIGN_OR_RETURN(spec.path, ResolveFileInRoots(split.rest, roots));
    spec.kind = ShardSpec::Kind::kSafetensors;
  }
  CURVD_ASSIGN_OR_RETURN(spec.offset,
                         TakeInt(split.query, "offset", 0, INT64_MAX, 0));
  CURVD_ASSIGN_OR_RETURN(spec.limit,
                         TakeInt(split.query, "limit", 1, INT64_MAX, 0));
  CURVD_RETURN_IF_ERROR(RejectUnknown(split.query, uri));
  if (spec.limit > 0) key_params.push_back(absl::StrCat("limit=", spec.limit));
  if (spec.offset > 0)
    key_params.push_back(absl::StrCat("offset=", spec.offset));
  spec.cache_key = absl::StrCat(kFileScheme, spec.path);
  if (!key_params.empty())
    absl::StrAppend(&spec.cache_key, "?", absl::StrJoin(key_params, "&"));
  return absl::OkStatus();
}

// Takes gaussian_regression's parameters from `query` into `spec.params`;
// returns its sample count.
absl::StatusOr<int64_t> TakeGaussianRegression(const std::string& uri,
                                               UriQuery& query,
                                               ShardSpec& spec) {
  CURVD_ASSIGN_OR_RETURN(const int64_t n,
                         TakeInt(query, "n", 1, kMaxGeneratedSamples, -1));
  CURVD_ASSIGN_OR_RETURN(const int64_t d,
                         TakeInt(query, "d", 1, kMaxGeneratedFeatures, -1));
  CURVD_ASSIGN_OR_RETURN(
      const int64_t outputs,
      TakeInt(query, "outputs", 1, kMaxGeneratedFeatures, 1));
  if (n < 0 || d < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "builtin gaussian_regression needs n= and d= in '", uri, "'"));
  }
  if (n * d > kMaxGeneratedElements || n * outputs > kMaxGeneratedElements) {
    return absl::InvalidArgumentError(absl::StrCat(
        "builtin gaussian_regression with n=", n, ", d=", d, ", outputs=",
        outputs, " exceeds ", kMaxGeneratedElements, " elements per tensor"));
  }
  CURVD_ASSIGN_OR_RETURN(const uint64_t seed, TakeUint64(query, "seed", 0));
  spec.params = {{"n", absl::StrCat(n)},
                 {"d", absl::StrCat(d)},
                 {"outputs", absl::StrCat(outputs)},
                 {"seed", absl::StrCat(seed)}};
  return n;
}

// Takes modular_addition's parameters (core/api/modular_addition.h) from
// `query` into `spec.params`; returns the split's sample count.
absl::StatusOr<int64_t> TakeModularAddition(const std::string& uri,
                                            UriQuery& query, ShardSpec& spec) {
  absl::StatusOr<ModularAdditionSpec> parsed = TakeModularAdditionParams(query);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(parsed.status().message(), " in '", uri, "'"));
  }
  spec.params = ModularAdditionParams(*parsed);
  return ModularAdditionSplitSize(*parsed);
}

absl::Status ParseBuiltinShard(const std::string& uri, SplitUri split,
                               ShardSpec& spec) {
  spec.kind = ShardSpec::Kind::kBuiltin;
  spec.generator = split.rest;
  absl::StatusOr<int64_t> n;
  if (spec.generator == kGaussianRegression) {
    n = TakeGaussianRegression(uri, split.query, spec);
  } else if (spec.generator == kModularAdditionGenerator) {
    n = TakeModularAddition(uri, split.query, spec);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown builtin generator '", spec.generator, "' in '",
                     uri, "': known generators are ", kGaussianRegression,
                     " and ", kModularAdditionGenerator));
  }
  if (!n.ok()) return n.status();
  CURVD_ASSIGN_OR_RETURN(spec.offset,
                         TakeInt(split.query, "offset", 0, *n - 1, 0));
  CURVD_ASSIGN_OR_RETURN(spec.limit,
                         TakeInt(split.query, "limit", 1, INT64_MAX, 0));
  CURVD_RETURN_IF_ERROR(RejectUnknown(split.query, uri));
  std::map<std::string, std::string> key_params = spec.params;
  if (spec.limit > 0) key_params["limit"] = absl::StrCat(spec.limit);
  if (spec.offset > 0) key_params["offset"] = absl::StrCat(spec.offset);
  spec.cache_key =
      absl::StrCat(kBuiltinScheme, spec.generator, "?",
                   absl::StrJoin(key_params, "&", absl::PairFormatter("=")));
  return absl::OkStatus();
}

}  // namespace

std::string ZooLayerName(size_t layer) { return absl::StrCat("fc", layer); }

std::vector<std::pair<std::string, std::vector<int64_t>>> ZooParameterShapes(
    const ZooSpec& spec) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> shapes;
  for (size_t i = 0; i + 1 < spec.layer_widths.size(); ++i) {
    const int64_t in = spec.layer_widths[i];
    const int64_t out = spec.layer_widths[i + 1];
    shapes.push_back({ZooLayerName(i) + ".weight", {out, in}});
    shapes.push_back({ZooLayerName(i) + ".bias", {out}});
  }
  return shapes;
}

std::vector<std::pair<std::string, int64_t>> ZooParameterSizes(
    const ZooSpec& spec) {
  std::vector<std::pair<std::string, int64_t>> sizes;
  for (const auto& [name, shape] : ZooParameterShapes(spec)) {
    int64_t count = 1;
    for (int64_t dim : shape) count *= dim;
    sizes.emplace_back(name, count);
  }
  return sizes;
}

absl::Status ValidateZooSpec(const ZooSpec& spec) {
  if (spec.architecture != "mlp") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown zoo architecture '", spec.architecture,
                     "': only \"mlp\" is available"));
  }
  if (spec.layer_widths.size() < 2 ||
      spec.layer_widths.size() > kMaxZooWidths) {
    return absl::InvalidArgumentError(
        absl::StrCat("zoo mlp needs 2 to ", kMaxZooWidths,
                     " layer widths (input first, output last), got ",
                     spec.layer_widths.size()));
  }
  for (size_t i = 0; i < spec.layer_widths.size(); ++i) {
    const int64_t width = spec.layer_widths[i];
    if (width < 1 || width > kMaxZooWidth) {
      return absl::InvalidArgumentError(
          absl::StrCat("zoo mlp layer_widths[", i, "] = ", width,
                       " must be in [1, ", kMaxZooWidth, "]"));
    }
  }
  int64_t parameters = 0;
  for (size_t i = 0; i + 1 < spec.layer_widths.size(); ++i) {
    parameters += (spec.layer_widths[i] + 1) * spec.layer_widths[i + 1];
    if (parameters > kMaxZooParameters) {
      return absl::InvalidArgumentError(
          absl::StrCat("zoo mlp has more than the limit of ", kMaxZooParameters,
                       " parameters"));
    }
  }
  if (spec.activation != "tanh" && spec.activation != "relu" &&
      spec.activation != "gelu") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown zoo activation '", spec.activation,
                     "': expected tanh, relu or gelu"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ShardSpec> ParseShardUri(
    const std::string& uri, const std::vector<std::string>& data_roots) {
  CURVD_ASSIGN_OR_RETURN(SplitUri split, Split(uri));
  ShardSpec spec;
  if (split.scheme == kFileScheme) {
    CURVD_RETURN_IF_ERROR(
        ParseFileShard(uri, std::move(split), data_roots, spec));
  } else {
    CURVD_RETURN_IF_ERROR(ParseBuiltinShard(uri, std::move(split), spec));
  }
  return spec;
}

absl::StatusOr<std::string> ResolveDataPath(
    const std::string& uri, const std::vector<std::string>& data_roots) {
  CURVD_ASSIGN_OR_RETURN(SplitUri split, Split(uri));
  if (split.scheme != kFileScheme) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected a file:// URI, got '", uri, "'"));
  }
  if (uri.find('?') != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("file URI '", uri, "' must not have a query"));
  }
  return ResolveFileInRoots(split.rest, data_roots);
}

}  // namespace curvd::core
