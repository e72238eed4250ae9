// Prometheus metrics of the server, served as text on /metrics by
// prometheus-cpp.
#ifndef CURVD_SERVER_METRICS_H_
#define CURVD_SERVER_METRICS_H_

#include <grpcpp/support/status.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/api/engine.h"
#include "curvd/v1/resources.pb.h"
#include "prometheus/collectable.h"
#include "prometheus/counter.h"
#include "prometheus/exposer.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "server/run_latest_values.h"

namespace curvd::server {

// The service's RPC methods, the values of the grpc_method label.
enum class RpcMethod {
  kCreateRun,
  kGetRun,
  kListRuns,
  kWriteBlob,
  kReadBlob,
  kGetBlobStatus,
  kCreateCheckpoint,
  kGetCheckpoint,
  kListCheckpoints,
  kCreateMeasurement,
  kGetMeasurement,
  kListMeasurements,
  kWatchMeasurement,
  kCancelMeasurement,
  kDeleteRun,
};
inline constexpr size_t kRpcMethodCount = 15;

// How a measurement ended, the values of the outcome label.
enum class Outcome { kSucceeded, kFailed, kCancelled };

struct MetricsOptions {
  // Bounds curvd_run_latest_value (run_latest_values.h).
  RunLatestLimits run_latest;
  // Reads a device's memory for curvd_device_memory_{used,total}_bytes{device}
  // at each scrape (the binary passes core::Engine::ReadDeviceMemory); empty
  // exports neither. A failed read keeps the last values.
  std::function<absl::StatusOr<core::DeviceMemory>(const std::string& device)>
      read_device_memory;
};

// Every family is registered in the constructor and every labelled series a
// method can touch is created there too, so recording is a lookup in immutable
// tables plus an atomic update: all recording methods are thread-safe and never
// allocate label sets, except RunResult, whose bounded run series come and go
// (RunLatestValues, under its own lock).
class Metrics {
 public:
  // `devices` are the worker devices (the bounded values of the device label);
  // `version` is exported as curvd_build_info{version}.
  Metrics(const std::vector<std::string>& devices, const std::string& version,
          const MetricsOptions& options = MetricsOptions());
  ~Metrics();

  // Serves the registry on http://`address`/metrics ("host:port"; port 0 picks
  // one), first refreshing what is read at scrape time (device memory, idle
  // runs dropped; RefreshForScrape). Unavailable if it cannot bind. Call once.
  absl::Status Serve(const std::string& address);
  // The bound port after Serve, else 0.
  int port() const;

  void RpcStarted(RpcMethod method);
  void RpcHandled(RpcMethod method, grpc::StatusCode code,
                  absl::Duration elapsed);
  void SetQueueDepth(size_t depth);
  // The queue's --queue_capacity, exported once so alerts can compare.
  void SetQueueCapacity(size_t capacity);
  void BlobBytesReceived(int64_t bytes);
  // A measurement of `kind` ("sharpness", "hessian_trace") ended on `device`.
  // Unknown kinds or devices are dropped rather than creating unbounded series.
  void MeasurementFinished(const std::string& kind, const std::string& device,
                           Outcome outcome, double seconds, int64_t hvps);
  // A measurement on `device` failed because the device ran out of memory even
  // at micro-batch 1 (the engine's ResourceExhausted). Unknown devices are
  // dropped.
  void DeviceOutOfMemory(const std::string& device);
  // A SUCCEEDED measurement's results, for curvd_run_latest_value
  // (RunLatestValues::Record, now).
  void RunResult(const curvd::v1::Measurement& measurement);
  // Reads every device's memory and drops idle runs: what a scrape shows
  // first. Thread-safe.
  void RefreshForScrape();

  prometheus::Registry& registry() { return *registry_; }

 private:
  struct RpcSeries {
    prometheus::Counter* started = nullptr;
    std::array<prometheus::Counter*, 17> handled{};  // by grpc::StatusCode
    prometheus::Histogram* seconds = nullptr;
  };

  struct DeviceMemorySeries {
    prometheus::Gauge* used = nullptr;
    prometheus::Gauge* total = nullptr;
  };

  std::shared_ptr<prometheus::Registry> registry_;
  // What the exposer collects: the registry, refreshed first.
  std::shared_ptr<prometheus::Collectable> scraped_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  const std::function<absl::StatusOr<core::DeviceMemory>(const std::string&)>
      read_device_memory_;
  std::array<RpcSeries, kRpcMethodCount> rpc_;
  prometheus::Gauge* queue_depth_ = nullptr;
  prometheus::Gauge* queue_capacity_ = nullptr;
  prometheus::Counter* blob_bytes_ = nullptr;
  // Keyed by "kind/outcome", "kind/device" and device.
  absl::flat_hash_map<std::string, prometheus::Counter*> measurements_;
  absl::flat_hash_map<std::string, prometheus::Histogram*> durations_;
  absl::flat_hash_map<std::string, prometheus::Counter*> hvps_;
  absl::flat_hash_map<std::string, prometheus::Counter*> out_of_memory_;
  absl::flat_hash_map<std::string, DeviceMemorySeries> device_memory_;
  RunLatestValues run_latest_;
};

}  // namespace curvd::server

#endif  // CURVD_SERVER_METRICS_H_
