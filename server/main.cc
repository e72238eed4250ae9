// curvd: the loss-landscape curvature measurement server.
#include <pthread.h>
#include <signal.h>

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
    "Prometheus /metrics address host:port; empty disables the endpoint.");
ABSL_FLAG(std::string, state_dir, "./curvd-state",
          "Directory for the SQLite database (curvd.db) and the uploaded blobs "
          "(blobs/).");
ABSL_FLAG(std::string, data_roots, "",
          "Comma-separated directories that file:// URIs may name. Empty: only "
          "uploaded "
          "blobs and builtin:// shards.");
ABSL_FLAG(int64_t, max_blob_bytes, int64_t{1} << 30,
          "Largest blob (checkpoint, archive, shard) an upload may declare, in "
          "bytes.");
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
ABSL_FLAG(int64_t, measurement_host_memory_bytes, 0,
          "Host memory one measurement may take: its model's parameters, its "
          "shard and its working set, each sized from declared shapes and "
          "file headers before it is allocated. More is RESOURCE_EXHAUSTED "
          "naming what exceeded it and by how much. 0: half of the host's "
          "physical memory.");
ABSL_FLAG(int64_t, shutdown_grace_seconds, 30,
          "On SIGTERM/SIGINT, seconds running measurements get to finish "
          "before they are "
          "cancelled.");

namespace {

// How long open calls (watch streams) may linger after the measurements
// drained.
constexpr absl::Duration kRpcShutdownDeadline = absl::Seconds(5);

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

  // Block the stop signals before any thread starts, so every thread inherits
  // the mask and only sigwait below sees them: no code runs in a signal
  // handler.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  using curvd::server::ServerOptions;
  ServerOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  options.service.state_dir = absl::GetFlag(FLAGS_state_dir);
  options.service.store_factory = curvd::server::SqliteStore::Factory();
  options.service.blob_store_factory = curvd::server::DiskBlobStore::Factory();
  options.service.max_blob_bytes = absl::GetFlag(FLAGS_max_blob_bytes);
  options.service.version = CURVD_VERSION;
  options.service.count_parameters = &curvd::core::Engine::CountParameters;
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
  absl::StatusOr<std::vector<std::string>> devices =
      curvd::server::ResolveDevices(absl::GetFlag(FLAGS_devices),
                                    curvd::core::Engine::CudaDeviceCount());
  if (!devices.ok()) return Fail(std::string(devices.status().message()));
  options.service.devices = *devices;
  if (absl::Status valid = curvd::server::ValidateServerOptions(&options);
      !valid.ok()) {
    return Fail(std::string(valid.message()));
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
                  << ", state in " << options.service.state_dir;

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  CURVD_LOG(INFO) << "curvd: signal " << signal_number
                  << ", shutting down (grace " << grace_seconds << " s)";
  (*server)->Shutdown(absl::Seconds(grace_seconds), kRpcShutdownDeadline);
  CURVD_LOG(INFO) << "curvd: stopped";
  return 0;
}
