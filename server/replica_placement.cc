#include "server/replica_placement.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "server/sha256_stream.h"

namespace curvd::server {
namespace {

constexpr absl::string_view kIndexPlaceholder = "{index}";

}  // namespace

uint64_t RunPlacementKey(absl::string_view run_id) {
  const std::array<unsigned char, SHA256_DIGEST_LENGTH> hash =
      Sha256Bytes(run_id);
  uint64_t key = 0;
  for (int i = 0; i < 8; ++i) key = (key << 8) | hash[i];
  return key;
}

int JumpConsistentHash(uint64_t key, int buckets) {
  // Lamping and Veach, "A Fast, Minimal Memory, Consistent Hash Algorithm"
  // (2014), figure 1: a linear congruential step decides, for each bucket
  // count, whether the key jumps past it.
  int64_t bucket = -1;
  int64_t next = 0;
  while (next < buckets) {
    bucket = next;
    key = key * 2862933555777941757ULL + 1;
    next = static_cast<int64_t>(static_cast<double>(bucket + 1) *
                                (static_cast<double>(int64_t{1} << 31) /
                                 static_cast<double>((key >> 33) + 1)));
  }
  return static_cast<int>(bucket);
}

absl::StatusOr<std::vector<std::string>> ExpandReplicaAddresses(
    absl::string_view address_template, int replicas) {
  if (replicas < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--replicas must be at least 1, got ", replicas));
  }
  if (replicas > 1 && !absl::StrContains(address_template, kIndexPlaceholder)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--replica_address_template \"", address_template,
        "\" must contain {index} (e.g. curvd-{index}.curvd-headless:50051) "
        "when --replicas is ",
        replicas));
  }
  std::vector<std::string> addresses;
  for (int i = 0; i < replicas; ++i) {
    addresses.push_back(absl::StrReplaceAll(
        address_template, {{kIndexPlaceholder, absl::StrCat(i)}}));
  }
  return addresses;
}

absl::StatusOr<int> ReplicaIndexFromHostname(absl::string_view hostname) {
  const size_t dash = hostname.rfind('-');
  const absl::string_view ordinal =
      dash == absl::string_view::npos ? "" : hostname.substr(dash + 1);
  int index = -1;
  if (ordinal.empty() ||
      !std::all_of(ordinal.begin(), ordinal.end(),
                   [](char c) { return absl::ascii_isdigit(c); }) ||
      !absl::SimpleAtoi(ordinal, &index)) {
    return absl::InvalidArgumentError(
        absl::StrCat("host name \"", hostname,
                     "\" does not end in -N, the ordinal of a StatefulSet "
                     "pod (give --replica_index instead)"));
  }
  return index;
}

absl::StatusOr<ReplicaPlacement> ReplicaPlacement::Create(
    int index, std::vector<std::string> addresses) {
  if (addresses.empty()) {
    return absl::InvalidArgumentError("a replica set needs an address each");
  }
  for (size_t i = 0; i < addresses.size(); ++i) {
    if (addresses[i].empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("the address of replica ", i, " is empty"));
    }
  }
  const int replicas = static_cast<int>(addresses.size());
  if (index < 0 || index >= replicas) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--replica_index must be in [0, ", replicas, "), got ", index));
  }
  ReplicaPlacement placement;
  placement.index_ = index;
  placement.replicas_ = replicas;
  placement.addresses_ = std::move(addresses);
  return placement;
}

int ReplicaPlacement::OwnerOf(absl::string_view run_id) const {
  if (replicas_ == 1) return 0;
  return JumpConsistentHash(RunPlacementKey(run_id), replicas_);
}

absl::Status ReplicaPlacement::Check(
    const google::protobuf::Message& request) const {
  if (replicas_ == 1) return absl::OkStatus();
  const std::optional<std::string> run_id = common::RunIdOf(request);
  if (!run_id.has_value()) return absl::OkStatus();
  const int owner = OwnerOf(*run_id);
  if (owner == index_) return absl::OkStatus();
  const std::string& address = addresses_[owner];
  absl::Status status = absl::FailedPreconditionError(absl::StrCat(
      "runs/", *run_id, " is held by replica ", owner, " of ", replicas_,
      " at ", address, ", not by this replica (", index_,
      "); send its calls there (trailer ", kOwnerMetadataKey, ")"));
  status.SetPayload(kOwnerMetadataKey, absl::Cord(address));
  return status;
}

std::optional<std::string> OwnerAddress(const absl::Status& status) {
  auto payload = status.GetPayload(kOwnerMetadataKey);
  if (!payload.has_value()) return std::nullopt;
  return std::string(*payload);
}

}  // namespace curvd::server
