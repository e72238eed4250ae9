#include "server/source_resolver.h"

#include <climits>
#include <cstdlib>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"

namespace curvd::server {
namespace {

namespace v1 = ::curvd::v1;

constexpr absl::string_view kBlobScheme = "blob://";

absl::StatusOr<core::ShardSpec> ParseBlobShard(const BlobStore& blobs,
                                               absl::string_view uri) {
  absl::string_view rest = uri.substr(kBlobScheme.size());
  std::pair<absl::string_view, absl::string_view> parts =
      absl::StrSplit(rest, '?');
  const std::string digest(parts.first);
  CURVD_RETURN_IF_ERROR(BlobStore::ValidateDigest(digest));
  core::ShardSpec shard;
  shard.kind = core::ShardSpec::Kind::kSafetensors;
  if (!parts.second.empty()) {
    for (absl::string_view param : absl::StrSplit(parts.second, '&')) {
      std::pair<absl::string_view, absl::string_view> kv =
          absl::StrSplit(param, '=');
      int64_t value = -1;
      if (!absl::SimpleAtoi(kv.second, &value) || value < 0 ||
          (kv.first != "limit" && kv.first != "offset")) {
        return absl::InvalidArgumentError(
            absl::StrCat("shard_uri ", uri, ": query parameter \"", param,
                         "\" is not limit=N or offset=N with N >= 0"));
      }
      (kv.first == "limit" ? shard.limit : shard.offset) = value;
    }
  }
  CURVD_ASSIGN_OR_RETURN(shard.path, blobs.PathOf(digest));
  shard.data_roots = {blobs.committed_dir()};
  shard.cache_key = std::string(uri);
  return shard;
}

// The core spec of a proto zoo model; empty fields take core's defaults.
core::ZooSpec ZooSpecOf(const v1::ZooModel& zoo) {
  core::ZooSpec spec;
  if (!zoo.architecture().empty()) spec.architecture = zoo.architecture();
  spec.layer_widths.assign(zoo.layer_widths().begin(),
                           zoo.layer_widths().end());
  if (!zoo.activation().empty()) spec.activation = zoo.activation();
  return spec;
}

std::vector<std::string> WithBlobDir(std::vector<std::string> roots,
                                     const BlobStore& blobs) {
  roots.push_back(blobs.committed_dir());
  return roots;
}

}  // namespace

SourceResolver::SourceResolver(const BlobStore* blobs,
                               std::vector<std::string> data_roots,
                               std::string archive_checker)
    : blobs_(blobs),
      data_roots_(std::move(data_roots)),
      model_roots_(WithBlobDir(data_roots_, *blobs)),
      archive_checker_(std::move(archive_checker)) {
  const std::string dir = blobs->committed_dir();
  blob_dirs_.push_back(dir + "/");
  char resolved[PATH_MAX];
  if (realpath(dir.c_str(), resolved) != nullptr && dir != resolved)
    blob_dirs_.push_back(std::string(resolved) + "/");
}

absl::Status SourceResolver::WithoutBlobPaths(
    const absl::Status& status) const {
  std::string message(status.message());
  bool changed = false;
  for (const std::string& dir : blob_dirs_) {
    changed |= absl::StrReplaceAll({{dir, "blob://sha256:"}}, &message) > 0;
  }
  return changed ? absl::Status(status.code(), message) : status;
}

absl::Status SourceResolver::ValidateZoo(const v1::ZooModel& zoo) {
  return core::ValidateZooSpec(ZooSpecOf(zoo));
}

int64_t SourceResolver::ZooBlockSize(const v1::ZooModel& zoo,
                                     const core::ParameterBlock& block) {
  int64_t size = 0;
  for (const auto& [name, count] : core::ZooParameterSizes(ZooSpecOf(zoo))) {
    if (block.Selects(name)) size += count;
  }
  return size;
}

absl::StatusOr<std::string> SourceResolver::ResolveContent(
    const std::string& digest, const std::string& uri) const {
  if (!digest.empty()) return blobs_->PathOf(digest);
  if (uri.empty())
    return absl::InvalidArgumentError("content needs a digest or a uri");
  return core::ResolveDataPath(uri, data_roots_);
}

absl::StatusOr<core::ModelSource> SourceResolver::ResolveModel(
    const v1::Run& run, const v1::Checkpoint& checkpoint) const {
  core::ModelSource model;
  model.data_roots = model_roots_;
  model.archive_checker = archive_checker_;
  CURVD_ASSIGN_OR_RETURN(std::string weights,
                         ResolveContent(checkpoint.digest(), checkpoint.uri()));
  const std::string weights_key =
      checkpoint.digest().empty() ? checkpoint.uri() : checkpoint.digest();
  if (checkpoint.format() == v1::CHECKPOINT_FORMAT_TORCHSCRIPT) {
    if (run.model().has_zoo()) {
      return absl::InvalidArgumentError(
          "a zoo run takes safetensors checkpoints, not TorchScript archives");
    }
    model.kind = core::ModelSource::Kind::kTorchScript;
    model.archive_path = weights;
    model.cache_key = weights_key;
    return model;
  }
  switch (run.model().source_case()) {
    case v1::ModelSpec::kArchiveDigest:
    case v1::ModelSpec::kArchiveUri: {
      model.kind = core::ModelSource::Kind::kTorchScript;
      CURVD_ASSIGN_OR_RETURN(model.archive_path,
                             ResolveContent(run.model().archive_digest(),
                                            run.model().archive_uri()));
      model.cache_key =
          absl::StrCat(run.model().archive_digest(), run.model().archive_uri(),
                       "+", weights_key);
      break;
    }
    case v1::ModelSpec::kZoo: {
      model.kind = core::ModelSource::Kind::kZoo;
      model.zoo = ZooSpecOf(run.model().zoo());
      model.cache_key =
          absl::StrCat("zoo:", model.zoo.architecture, ":",
                       absl::StrJoin(model.zoo.layer_widths, "x"), ":",
                       model.zoo.activation, "+", weights_key);
      break;
    }
    case v1::ModelSpec::SOURCE_NOT_SET:
      return absl::InvalidArgumentError(
          absl::StrCat(run.name(), " has no model"));
  }
  model.state_dict_path = weights;
  return model;
}

absl::StatusOr<core::ShardSpec> SourceResolver::ResolveShard(
    const std::string& uri) const {
  if (uri.empty())
    return absl::InvalidArgumentError("spec.shard_uri is required");
  if (absl::StartsWith(uri, kBlobScheme)) return ParseBlobShard(*blobs_, uri);
  return core::ParseShardUri(uri, data_roots_);
}

}  // namespace curvd::server
