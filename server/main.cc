// curvd: the loss-landscape curvature measurement server.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <climits>
#include <cstdint>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "core/api/engine.h"
#include "server/disk_blob_store.h"
#include "server/server.h"
#include "server/server_config.h"
#include "server/sqlite_store.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "gRPC address host:port (port 0 picks a free port).");
ABSL_FLAG(
    std::string, metrics_listen, "127.0.0.1:9464",
    "Prometheus /metrics address host:port; empty disables the endpoint. It "
    "has no authentication or TLS: keep it on loopback or a network only "
    "Prometheus reaches.");
ABSL_FLAG(int64_t, metrics_max_runs, 100,
          "Most runs whose latest results /metrics shows "
          "(curvd_run_latest_value{run,kind,quantity}); the least recently "
          "updated run is dropped for a new one. 0 shows none.");
ABSL_FLAG(int64_t, metrics_run_idle_seconds, 3600,
          "A run with no new result for this many seconds is dropped from "
          "curvd_run_latest_value.");
ABSL_FLAG(std::string, health_listen, "",
          "A second, plain-text gRPC address host:port serving only "
          "grpc.health.v1 (and reflection), for probes that speak neither TLS "
          "nor tokens, such as Kubernetes' gRPC probes; empty serves none.");
ABSL_FLAG(std::string, tls_cert_file, "",
          "PEM certificate chain of the gRPC port; with --tls_key_file the "
          "port speaks TLS only.");
ABSL_FLAG(std::string, tls_key_file, "", "PEM private key of --tls_cert_file.");
ABSL_FLAG(std::string, tls_client_ca_file, "",
          "PEM CA certificates: every client must present a certificate they "
          "sign (mutual TLS). Needs --tls_cert_file.");
ABSL_FLAG(std::string, auth_token_file, "",
          "File of \"NAME TOKEN\" lines (# comments, blank lines skipped; "
          "tokens of at least 16 bytes): every curvd.v1 call must send "
          "\"authorization: Bearer TOKEN\", and runs record the NAME as their "
          "creator. Health and reflection need none. SIGHUP reads the file "
          "again. Needs --tls_cert_file.");
ABSL_FLAG(bool, insecure, false,
          "Serve a --listen address that is not loopback without TLS or "
          "client authentication. Without it such an address is refused.");
ABSL_FLAG(std::string, state_dir, "./curvd-state",
          "Directory for the SQLite database (curvd.db) and the uploaded blobs "
          "(blobs/).");
ABSL_FLAG(std::string, data_roots, "",
          "Comma-separated directories that file:// URIs may name. Empty: only "
          "uploaded "
          "blobs and builtin:// shards.");
ABSL_FLAG(std::string, archive_checker, "auto",
          "The executable that loads each TorchScript archive in a child "
          "process before the server loads it, so that an archive that "
          "crashes LibTorch's loader fails its request instead of the "
          "server. \"auto\": curvd_archive_check beside this executable; "
          "\"none\": archives are loaded in this process only (for clients "
          "that are trusted); else a path.");
ABSL_FLAG(int64_t, max_blob_bytes, int64_t{1} << 30,
          "Largest blob (checkpoint, archive, shard) an upload may declare, in "
          "bytes.");
ABSL_FLAG(int64_t, max_partial_upload_bytes, int64_t{4} << 30,
          "Bytes that unfinished uploads may reserve in all (an open upload "
          "its declared size, an interrupted one what it wrote, each at least "
          "4 KiB); an upload past it is RESOURCE_EXHAUSTED.");
ABSL_FLAG(int64_t, max_partial_upload_bytes_per_client, int64_t{2} << 30,
          "The same, for the uploads of one client (one peer address).");
ABSL_FLAG(int64_t, upload_expiry_seconds, 86400,
          "Unfinished uploads untouched this long, and uploaded blobs that no "
          "run, checkpoint or measurement references and nobody asked for "
          "this long, are removed (at start and every quarter of this, at "
          "most 10 minutes apart).");
ABSL_FLAG(int64_t, max_state_bytes, 0,
          "Quota of --state_dir (blobs, unfinished uploads, database), in "
          "bytes: uploads past it and new runs, checkpoints and measurements "
          "once it is reached are RESOURCE_EXHAUSTED. 0: none.");
ABSL_FLAG(int64_t, min_free_disk_bytes, int64_t{1} << 30,
          "Free bytes kept on the file system of --state_dir: what would leave "
          "less is RESOURCE_EXHAUSTED, as for --max_state_bytes.");
ABSL_FLAG(int64_t, max_receive_message_bytes, int64_t{16} << 20,
          "Largest gRPC message accepted, in bytes; WriteBlob chunks must be "
          "smaller.");
ABSL_FLAG(int64_t, queue_capacity, 256,
          "Measurements that may wait for a device; creating more is "
          "RESOURCE_EXHAUSTED.");
ABSL_FLAG(std::string, devices, "auto",
          "\"auto\" (one worker per CUDA device, else one CPU worker) or a "
          "comma list such "
          "as \"cpu\" or \"cuda:0,cuda:1\".");
ABSL_FLAG(int64_t, exact_hessian_max_parameters, 20000,
          "Largest operator (parameters, or the block's) an exact_hessian "
          "measurement may assemble: P HVPs and a P x P float64 matrix on the "
          "host. Larger is INVALID_ARGUMENT.");
ABSL_FLAG(int64_t, exact_hessian_max_matrix_parameters, 1000,
          "Largest operator whose matrix an exact_hessian measurement may "
          "return (return_matrix): P^2 doubles in the stored result. Larger is "
          "INVALID_ARGUMENT.");
ABSL_FLAG(int64_t, gop_max_samples, curvd::core::GopOptions().max_samples,
          "Most samples N a gop measurement may take. Larger is "
          "INVALID_ARGUMENT before any work.");
ABSL_FLAG(int64_t, gop_max_gram_floats,
          curvd::core::GopOptions().max_gram_floats,
          "Most float64 entries of the N x N Gram matrices a gop measurement "
          "holds ((groups + 1) x N^2 with per_layer). Larger is "
          "INVALID_ARGUMENT before any work.");
ABSL_FLAG(int64_t, gop_max_gradient_floats,
          curvd::core::GopOptions().max_gradient_floats,
          "Most float64 entries of per-sample gradients a gop measurement "
          "holds at once (it works in chunks of rows under this).");
ABSL_FLAG(int64_t, gop_max_eigenvector_floats,
          curvd::core::GopOptions().max_eigenvector_floats,
          "Most float64 entries (top_k x M) of the eigenvectors a gop "
          "measurement returns, stored as a blob (so also at most what "
          "--max_blob_bytes holds: (max_blob_bytes - 1 KiB) / 16). Larger is "
          "INVALID_ARGUMENT before any work.");
ABSL_FLAG(int32_t, worker_nice, 10,
          "Each device worker raises its thread's nice value by this much "
          "(0..19) before its first measurement, and the CPU threads it "
          "starts inherit it: a trainer on the same host keeps the cores it "
          "needs while measurements use what is left. gRPC serving threads "
          "keep the process's priority. 0 leaves the workers as they are.");
ABSL_FLAG(int32_t, replicas, 1,
          "Replicas in this server's set, each with its own state: every run "
          "is held by one, chosen by a hash of its id over this count "
          "(docs/adr/0019), and other replicas refuse calls about it with "
          "FAILED_PRECONDITION naming the owner. Runs stay on their replica "
          "only while the count is unchanged.");
ABSL_FLAG(int32_t, replica_index, 0,
          "This server's index in its replica set, in [0, --replicas).");
ABSL_FLAG(bool, replica_index_from_hostname, false,
          "Take --replica_index from the host name's ordinal, as a "
          "StatefulSet names its pods (curvd-2 is replica 2).");
ABSL_FLAG(std::string, replica_address_template, "",
          "Each replica's address as clients reach it, \"{index}\" standing "
          "for its index, e.g. \"curvd-{index}.curvd-headless:50051\"; "
          "required when --replicas > 1 and --replica_addresses is empty.");
ABSL_FLAG(std::string, replica_addresses, "",
          "Every replica's address, comma-separated in index order, instead "
          "of --replica_address_template (hosts that follow no pattern, "
          "local tests).");
ABSL_FLAG(int64_t, measurement_host_memory_bytes, 0,
          "Host memory one measurement may take: its model's parameters, its "
          "shard and its working set, each sized from declared shapes and "
          "file headers before it is allocated. More is RESOURCE_EXHAUSTED "
          "naming what exceeded it and by how much. 0: half of the host's "
          "physical memory.");
ABSL_FLAG(int64_t, shutdown_grace_seconds, 30,
          "On SIGTERM/SIGINT, seconds running measurements get to finish "
          "before they are cancelled. The process exits within this plus 2 "
          "seconds: one for measurements to stop at their next iteration "
          "(one that does not, inside a long engine call, is recorded FAILED "
          "and left behind), one for open calls.");

namespace {

// How long open calls (watch streams) may linger after the measurements
// drained: part of the margin over --shutdown_grace_seconds.
constexpr absl::Duration kRpcShutdownDeadline = absl::Seconds(1);

int Fail(const std::string& message) {
  CURVD_LOG(ERROR) << "curvd: " << message;
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Serves loss-landscape curvature measurements (sharpness, Hessian trace, "
      "spectral density, exact Hessians, ...) of model checkpoints over "
      "gRPC.\nUsage: curvd [--flag=value ...]");
  // absl's --help lists the flags of files named after the program; ours live
  // in main.cc, so say so.
  absl::FlagsUsageConfig usage;
  usage.contains_helpshort_flags = [](absl::string_view file) {
    return absl::EndsWith(file, "server/main.cc");
  };
  usage.contains_help_flags = usage.contains_helpshort_flags;
  absl::SetFlagsUsageConfig(usage);
  absl::ParseCommandLine(argc, argv);

  // Block the stop and reload signals before any thread starts, so every
  // thread inherits the mask and only sigwait below sees them: no code runs in
  // a signal handler.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  using curvd::server::ServerOptions;
  ServerOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  options.health_listen = absl::GetFlag(FLAGS_health_listen);
  curvd::server::SecurityOptions& security = options.security;
  security.tls_cert_file = absl::GetFlag(FLAGS_tls_cert_file);
  security.tls_key_file = absl::GetFlag(FLAGS_tls_key_file);
  security.tls_client_ca_file = absl::GetFlag(FLAGS_tls_client_ca_file);
  security.auth_token_file = absl::GetFlag(FLAGS_auth_token_file);
  security.insecure = absl::GetFlag(FLAGS_insecure);
  options.service.state_dir = absl::GetFlag(FLAGS_state_dir);
  options.service.store_factory = curvd::server::SqliteStore::Factory();
  options.service.blob_store_factory = curvd::server::DiskBlobStore::Factory();
  curvd::server::BlobStoreLimits& blob_limits = options.service.blob_limits;
  blob_limits.max_blob_bytes = absl::GetFlag(FLAGS_max_blob_bytes);
  blob_limits.max_partial_bytes = absl::GetFlag(FLAGS_max_partial_upload_bytes);
  blob_limits.max_partial_bytes_per_client =
      absl::GetFlag(FLAGS_max_partial_upload_bytes_per_client);
  blob_limits.max_state_bytes = absl::GetFlag(FLAGS_max_state_bytes);
  blob_limits.min_free_disk_bytes = absl::GetFlag(FLAGS_min_free_disk_bytes);
  options.service.upload_expiry =
      absl::Seconds(absl::GetFlag(FLAGS_upload_expiry_seconds));
  options.service.version = CURVD_VERSION;
  options.service.count_parameters = &curvd::core::Engine::CountParameters;
  options.service.metrics.read_device_memory =
      &curvd::core::Engine::ReadDeviceMemory;
  const int64_t max_runs = absl::GetFlag(FLAGS_metrics_max_runs);
  if (max_runs < 0) return Fail("--metrics_max_runs must be >= 0");
  options.service.metrics.run_latest.max_runs = static_cast<size_t>(max_runs);
  const int64_t idle_seconds = absl::GetFlag(FLAGS_metrics_run_idle_seconds);
  if (idle_seconds <= 0) {
    return Fail("--metrics_run_idle_seconds must be positive");
  }
  options.service.metrics.run_latest.idle = absl::Seconds(idle_seconds);
  const int64_t receive_limit = absl::GetFlag(FLAGS_max_receive_message_bytes);
  if (receive_limit > INT_MAX) {
    return Fail(
        absl::StrCat("--max_receive_message_bytes must be at most ", INT_MAX));
  }
  options.max_receive_message_bytes = static_cast<int>(receive_limit);
  const int64_t capacity = absl::GetFlag(FLAGS_queue_capacity);
  if (capacity <= 0) return Fail("--queue_capacity must be positive");
  options.service.queue_capacity = static_cast<size_t>(capacity);
  curvd::server::RequestLimits& limits = options.service.request_limits;
  limits.exact_hessian_max_parameters =
      absl::GetFlag(FLAGS_exact_hessian_max_parameters);
  limits.exact_hessian_max_matrix_parameters =
      absl::GetFlag(FLAGS_exact_hessian_max_matrix_parameters);
  limits.gop_max_samples = absl::GetFlag(FLAGS_gop_max_samples);
  limits.gop_max_gram_floats = absl::GetFlag(FLAGS_gop_max_gram_floats);
  limits.gop_max_gradient_floats = absl::GetFlag(FLAGS_gop_max_gradient_floats);
  limits.gop_max_eigenvector_floats =
      absl::GetFlag(FLAGS_gop_max_eigenvector_floats);
  options.service.worker_nice = absl::GetFlag(FLAGS_worker_nice);
  const int64_t grace_seconds = absl::GetFlag(FLAGS_shutdown_grace_seconds);
  if (grace_seconds < 0) return Fail("--shutdown_grace_seconds must be >= 0");

  absl::StatusOr<std::vector<std::string>> roots =
      curvd::server::ResolveDataRoots(absl::GetFlag(FLAGS_data_roots));
  if (!roots.ok()) return Fail(std::string(roots.status().message()));
  options.service.data_roots = *roots;
  absl::StatusOr<std::string> checker = curvd::server::ResolveArchiveChecker(
      absl::GetFlag(FLAGS_archive_checker));
  if (!checker.ok()) return Fail(std::string(checker.status().message()));
  options.service.archive_checker = *checker;
  absl::StatusOr<std::vector<std::string>> devices =
      curvd::server::ResolveDevices(absl::GetFlag(FLAGS_devices),
                                    curvd::core::Engine::CudaDeviceCount());
  if (!devices.ok()) return Fail(std::string(devices.status().message()));
  options.service.devices = *devices;
  curvd::server::ReplicaFlags replica_flags;
  replica_flags.index = absl::GetFlag(FLAGS_replica_index);
  replica_flags.replicas = absl::GetFlag(FLAGS_replicas);
  replica_flags.address_template =
      absl::GetFlag(FLAGS_replica_address_template);
  replica_flags.addresses = absl::GetFlag(FLAGS_replica_addresses);
  if (absl::GetFlag(FLAGS_replica_index_from_hostname)) {
    char hostname[HOST_NAME_MAX + 1] = {};
    if (gethostname(hostname, sizeof(hostname) - 1) != 0 || !*hostname) {
      return Fail("--replica_index_from_hostname: no host name");
    }
    replica_flags.hostname = hostname;
  }
  absl::StatusOr<curvd::server::ReplicaPlacement> placement =
      curvd::server::ResolveReplicaPlacement(replica_flags);
  if (!placement.ok()) return Fail(std::string(placement.status().message()));
  options.service.placement = *placement;
  if (absl::Status valid = curvd::server::ValidateServerOptions(&options);
      !valid.ok()) {
    return Fail(std::string(valid.message()));
  }

  for (const std::string& warning : curvd::server::SecurityWarnings(
           options.listen, options.metrics_listen, options.security)) {
    CURVD_LOG(WARNING) << "curvd: " << warning;
  }
  curvd::core::EngineOptions engine_options;
  engine_options.measurement_host_bytes =
      absl::GetFlag(FLAGS_measurement_host_memory_bytes);
  if (engine_options.measurement_host_bytes < 0)
    return Fail("--measurement_host_memory_bytes must be >= 0");
  auto server = curvd::server::CurvdServer::Start(
      options, [engine_options](const std::string& device) {
        return curvd::core::Engine::CreateWithOptions(device, engine_options);
      });
  if (!server.ok())
    return Fail(absl::StrCat("cannot start: ", server.status().ToString()));
  CURVD_LOG(INFO) << "curvd " << CURVD_VERSION << ": serving gRPC on port "
                  << (*server)->port() << ", metrics on port "
                  << (*server)->metrics_port() << ", devices "
                  << absl::StrJoin(options.service.devices, ",")
                  << ", state in " << options.service.state_dir << "; "
                  << (security.tls_cert_file.empty() ? "plain text" : "TLS")
                  << (security.tls_client_ca_file.empty()
                          ? ""
                          : " with client certificates")
                  << (security.auth_token_file.empty() ? ""
                                                       : ", bearer tokens")
                  << "; replica " << options.service.placement.index() << " of "
                  << options.service.placement.replicas();

  int signal_number = 0;
  while (sigwait(&signals, &signal_number) == 0 && signal_number == SIGHUP) {
    absl::Status reloaded = (*server)->ReloadTokens();
    if (reloaded.ok()) {
      CURVD_LOG(INFO) << "curvd: SIGHUP, read " << security.auth_token_file
                      << " again";
    } else {
      CURVD_LOG(ERROR) << "curvd: SIGHUP: " << reloaded
                       << "; serving the tokens read before";
    }
  }
  CURVD_LOG(INFO) << "curvd: signal " << signal_number
                  << ", shutting down (grace " << grace_seconds << " s)";
  const bool workers_stopped =
      (*server)->Shutdown(absl::Seconds(grace_seconds), kRpcShutdownDeadline);
  CURVD_LOG(INFO) << "curvd: stopped";
  return curvd::server::ExitAfterShutdown(*std::move(server), workers_stopped,
                                          0);
}
