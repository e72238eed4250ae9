#include "server/server_config.h"

#include <unistd.h>

#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"

namespace curvd::server {
namespace {

namespace fs = std::filesystem;

constexpr int kMinReceiveMessageBytes = 64 << 10;

}  // namespace

absl::StatusOr<std::vector<std::string>> ResolveDevices(const std::string& flag,
                                                        int cuda_device_count) {
  std::vector<std::string> devices;
  if (flag == "auto") {
    for (int i = 0; i < cuda_device_count; ++i)
      devices.push_back(absl::StrCat("cuda:", i));
    if (devices.empty()) devices.push_back("cpu");
    return devices;
  }
  absl::flat_hash_set<std::string> seen;
  for (absl::string_view entry :
       absl::StrSplit(flag, ',', absl::SkipWhitespace())) {
    std::string device(absl::StripAsciiWhitespace(entry));
    absl::string_view index = device;
    int n = -1;
    bool ok = device == "cpu" ||
              (absl::ConsumePrefix(&index, "cuda:") &&
               absl::SimpleAtoi(index, &n) && n >= 0 && n < cuda_device_count);
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--devices: \"", device, "\" is not \"cpu\" or \"cuda:N\" with N < ",
          cuda_device_count, " (the CUDA devices visible)"));
    }
    if (!seen.insert(device).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("--devices: \"", device, "\" is listed twice"));
    }
    devices.push_back(device);
  }
  if (devices.empty()) {
    return absl::InvalidArgumentError(
        "--devices: name at least one device, or \"auto\"");
  }
  return devices;
}

absl::StatusOr<std::vector<std::string>> ResolveDataRoots(
    const std::string& flag) {
  std::vector<std::string> roots;
  for (absl::string_view entry :
       absl::StrSplit(flag, ',', absl::SkipWhitespace())) {
    fs::path root(std::string(absl::StripAsciiWhitespace(entry)));
    std::error_code error;
    if (!fs::is_directory(root, error)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--data_roots: ", root.string(), " is not a directory"));
    }
    roots.push_back(fs::absolute(root, error).lexically_normal().string());
  }
  return roots;
}

absl::StatusOr<std::string> ResolveArchiveChecker(const std::string& flag) {
  if (flag == "none") return std::string();
  std::error_code error;
  const fs::path checker =
      flag == "auto"
          ? fs::read_symlink("/proc/self/exe", error).parent_path() /
                "curvd_archive_check"
          : fs::path(flag);
  if (error || !fs::is_regular_file(checker, error) ||
      access(checker.c_str(), X_OK) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--archive_checker: ", checker.string(),
        " is not an executable file (build curvd_archive_check beside curvd, "
        "or pass --archive_checker=none to load archives in the server's "
        "process)"));
  }
  return fs::absolute(checker, error).lexically_normal().string();
}

absl::StatusOr<ReplicaPlacement> ResolveReplicaPlacement(
    const ReplicaFlags& flags) {
  int index = flags.index;
  if (!flags.hostname.empty()) {
    CURVD_ASSIGN_OR_RETURN(index, ReplicaIndexFromHostname(flags.hostname));
  }
  std::vector<std::string> addresses;
  if (!flags.addresses.empty()) {
    if (!flags.address_template.empty()) {
      return absl::InvalidArgumentError(
          "give --replica_addresses or --replica_address_template, not both");
    }
    for (absl::string_view address : absl::StrSplit(flags.addresses, ',')) {
      addresses.emplace_back(absl::StripAsciiWhitespace(address));
    }
    if (flags.replicas != 1 &&
        flags.replicas != static_cast<int>(addresses.size())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--replicas ", flags.replicas, " disagrees with the ",
          addresses.size(), " --replica_addresses"));
    }
  } else if (flags.replicas == 1 && flags.address_template.empty()) {
    // A lone server: it holds every run and names no other replica.
    if (index != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--replica_index must be 0 with --replicas 1, got ", index));
    }
    return ReplicaPlacement();
  } else {
    CURVD_ASSIGN_OR_RETURN(addresses,
                           ExpandReplicaAddresses(flags.address_template,
                                                  flags.replicas));
  }
  return ReplicaPlacement::Create(index, std::move(addresses));
}

absl::Status ValidateServerOptions(ServerOptions* options) {
  if (!absl::StrContains(options->listen, ':')) {
    return absl::InvalidArgumentError(
        absl::StrCat("--listen \"", options->listen, "\" must be host:port"));
  }
  if (!options->metrics_listen.empty() &&
      !absl::StrContains(options->metrics_listen, ':')) {
    return absl::InvalidArgumentError(absl::StrCat("--metrics_listen \"",
                                                   options->metrics_listen,
                                                   "\" must be host:port"));
  }
  if (!options->health_listen.empty() &&
      !absl::StrContains(options->health_listen, ':')) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--health_listen \"", options->health_listen, "\" must be host:port"));
  }
  CURVD_RETURN_IF_ERROR(
      ValidateSecurityOptions(options->listen, options->security));
  ServiceOptions& service = options->service;
  if (service.state_dir.empty()) {
    return absl::InvalidArgumentError("--state_dir must name a directory");
  }
  std::error_code error;
  service.state_dir =
      fs::absolute(service.state_dir, error).lexically_normal().string();
  const BlobStoreLimits& blobs = service.blob_limits;
  for (const auto& [flag, value] :
       {std::pair<const char*, int64_t>{"--max_blob_bytes",
                                        blobs.max_blob_bytes},
        {"--max_partial_upload_bytes", blobs.max_partial_bytes},
        {"--max_partial_upload_bytes_per_client",
         blobs.max_partial_bytes_per_client}}) {
    if (value <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, " must be positive, got ", value));
    }
  }
  if (blobs.max_state_bytes < 0 || blobs.min_free_disk_bytes < 0) {
    return absl::InvalidArgumentError(
        "--max_state_bytes and --min_free_disk_bytes must be >= 0");
  }
  if (service.upload_expiry <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "--upload_expiry_seconds must be positive");
  }
  if (options->max_receive_message_bytes < kMinReceiveMessageBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--max_receive_message_bytes must be at least ",
        kMinReceiveMessageBytes, ", got ", options->max_receive_message_bytes));
  }
  if (service.queue_capacity == 0) {
    return absl::InvalidArgumentError("--queue_capacity must be positive");
  }
  const RequestLimits& limits = service.request_limits;
  if (limits.exact_hessian_max_parameters < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--exact_hessian_max_parameters must be positive, got ",
                     limits.exact_hessian_max_parameters));
  }
  if (limits.exact_hessian_max_matrix_parameters < 1 ||
      limits.exact_hessian_max_matrix_parameters >
          limits.exact_hessian_max_parameters) {
    return absl::InvalidArgumentError(
        absl::StrCat("--exact_hessian_max_matrix_parameters must be in [1, "
                     "--exact_hessian_max_parameters=",
                     limits.exact_hessian_max_parameters, "], got ",
                     limits.exact_hessian_max_matrix_parameters));
  }
  for (const auto& [flag, value] :
       {std::pair<const char*, int64_t>{"--gop_max_samples",
                                        limits.gop_max_samples},
        {"--gop_max_gram_floats", limits.gop_max_gram_floats},
        {"--gop_max_gradient_floats", limits.gop_max_gradient_floats},
        {"--gop_max_eigenvector_floats", limits.gop_max_eigenvector_floats}}) {
    if (value < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, " must be positive, got ", value));
    }
  }
  if (service.worker_nice < 0 || service.worker_nice > 19) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--worker_nice must be in [0, 19], got ", service.worker_nice));
  }
  if (service.devices.empty()) {
    return absl::InvalidArgumentError("--devices resolved to no device");
  }
  return absl::OkStatus();
}

}  // namespace curvd::server
