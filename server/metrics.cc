#include "server/metrics.h"

#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"
#include "curvd/v1/resources.pb.h"
#include "prometheus/family.h"

namespace curvd::server {
namespace {

constexpr char kService[] = "curvd.v1.Curvd";

struct MethodInfo {
  const char* name;
  const char* type;  // go-grpc-prometheus' grpc_type
};

constexpr MethodInfo kMethods[kRpcMethodCount] = {
    {"CreateRun", "unary"},
    {"GetRun", "unary"},
    {"ListRuns", "unary"},
    {"WriteBlob", "client_stream"},
    {"ReadBlob", "server_stream"},
    {"GetBlobStatus", "unary"},
    {"CreateCheckpoint", "unary"},
    {"GetCheckpoint", "unary"},
    {"ListCheckpoints", "unary"},
    {"CreateMeasurement", "unary"},
    {"GetMeasurement", "unary"},
    {"ListMeasurements", "unary"},
    {"WatchMeasurement", "server_stream"},
    {"CancelMeasurement", "unary"},
    {"DeleteRun", "unary"},
};

// grpc_code label values, indexed by grpc::StatusCode.
constexpr const char* kCodes[17] = {"OK",
                                    "Canceled",
                                    "Unknown",
                                    "InvalidArgument",
                                    "DeadlineExceeded",
                                    "NotFound",
                                    "AlreadyExists",
                                    "PermissionDenied",
                                    "ResourceExhausted",
                                    "FailedPrecondition",
                                    "Aborted",
                                    "OutOfRange",
                                    "Unimplemented",
                                    "Internal",
                                    "Unavailable",
                                    "DataLoss",
                                    "Unauthenticated"};

const char* OutcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kSucceeded:
      return "succeeded";
    case Outcome::kFailed:
      return "failed";
    case Outcome::kCancelled:
      return "cancelled";
  }
  return "failed";
}

// The registry as the exposer collects it: refreshed first.
class RefreshedRegistry : public prometheus::Collectable {
 public:
  RefreshedRegistry(Metrics* metrics,
                    std::shared_ptr<prometheus::Registry> registry)
      : metrics_(metrics), registry_(std::move(registry)) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    metrics_->RefreshForScrape();
    return registry_->Collect();
  }

 private:
  Metrics* const metrics_;
  const std::shared_ptr<prometheus::Registry> registry_;
};

}  // namespace

Metrics::Metrics(const std::vector<std::string>& devices,
                 const std::string& version, const MetricsOptions& options)
    : registry_(std::make_shared<prometheus::Registry>()),
      read_device_memory_(options.read_device_memory),
      run_latest_(*registry_, options.run_latest) {
  using prometheus::BuildCounter;
  using prometheus::BuildGauge;
  using prometheus::BuildHistogram;
  auto& started = BuildCounter()
                      .Name("grpc_server_started_total")
                      .Help("RPCs started on the server.")
                      .Register(*registry_);
  auto& handled =
      BuildCounter()
          .Name("grpc_server_handled_total")
          .Help(
              "RPCs completed on the server, regardless of success or failure.")
          .Register(*registry_);
  auto& seconds =
      BuildHistogram()
          .Name("grpc_server_handling_seconds")
          .Help("Time from the start of an RPC to its status, in seconds.")
          .Register(*registry_);
  const prometheus::Histogram::BucketBoundaries rpc_buckets = {
      0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  for (size_t i = 0; i < kRpcMethodCount; ++i) {
    const prometheus::Labels labels = {{"grpc_service", kService},
                                       {"grpc_method", kMethods[i].name},
                                       {"grpc_type", kMethods[i].type}};
    rpc_[i].started = &started.Add(labels);
    rpc_[i].seconds = &seconds.Add(labels, rpc_buckets);
    for (size_t code = 0; code < rpc_[i].handled.size(); ++code) {
      prometheus::Labels with_code = labels;
      with_code["grpc_code"] = kCodes[code];
      rpc_[i].handled[code] = &handled.Add(with_code);
    }
  }
  queue_depth_ = &BuildGauge()
                      .Name("curvd_queue_depth")
                      .Help("Measurements queued and waiting for a device.")
                      .Register(*registry_)
                      .Add({});
  queue_capacity_ = &BuildGauge()
                         .Name("curvd_queue_capacity")
                         .Help(
                             "Measurements the queue holds at most "
                             "(--queue_capacity).")
                         .Register(*registry_)
                         .Add({});
  blob_bytes_ = &BuildCounter()
                     .Name("curvd_blob_bytes_received_total")
                     .Help("Bytes of blob uploads written to the blob store.")
                     .Register(*registry_)
                     .Add({});
  BuildGauge()
      .Name("curvd_build_info")
      .Help("Always 1; the labels describe the build.")
      .Register(*registry_)
      .Add({{"version", version}})
      .Set(1);
  auto& workers = BuildGauge()
                      .Name("curvd_workers")
                      .Help("Measurement workers per device.")
                      .Register(*registry_);
  auto& measurements =
      BuildCounter()
          .Name("curvd_measurements_total")
          .Help("Measurements that ended, by kind and outcome.")
          .Register(*registry_);
  auto& durations =
      BuildHistogram()
          .Name("curvd_measurement_duration_seconds")
          .Help("Wall time of measurements from start to end, in seconds.")
          .Register(*registry_);
  auto& hvps = BuildCounter()
                   .Name("curvd_hvps_total")
                   .Help("Hessian-vector products computed, by device.")
                   .Register(*registry_);
  const prometheus::Histogram::BucketBoundaries duration_buckets = {
      0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600};
  // Every kind the spec can name (KindName's values), registered up front.
  const google::protobuf::OneofDescriptor* kinds =
      curvd::v1::MeasurementSpec::descriptor()->FindOneofByName("kind");
  for (int i = 0; i < kinds->field_count(); ++i) {
    const std::string& kind = kinds->field(i)->name();
    for (Outcome outcome :
         {Outcome::kSucceeded, Outcome::kFailed, Outcome::kCancelled}) {
      measurements_[absl::StrCat(kind, "/", OutcomeName(outcome))] =
          &measurements.Add(
              {{"kind", kind}, {"outcome", OutcomeName(outcome)}});
    }
    for (const std::string& device : devices) {
      durations_[absl::StrCat(kind, "/", device)] = &durations.Add(
          {{"kind", kind}, {"device", device}}, duration_buckets);
    }
  }
  auto& out_of_memory =
      BuildCounter()
          .Name("curvd_device_out_of_memory_total")
          .Help(
              "Measurements that ran out of device memory even at "
              "micro-batch 1, by device.")
          .Register(*registry_);
  for (const std::string& device : devices) {
    hvps_[device] = &hvps.Add({{"device", device}});
    out_of_memory_[device] = &out_of_memory.Add({{"device", device}});
    workers.Add({{"device", device}}).Increment();
  }
  if (read_device_memory_) {
    auto& used = BuildGauge()
                     .Name("curvd_device_memory_used_bytes")
                     .Help(
                         "Memory in use on the device when scraped: on CUDA "
                         "the whole device's (every process), on the CPU "
                         "this process's resident set.")
                     .Register(*registry_);
    auto& total = BuildGauge()
                      .Name("curvd_device_memory_total_bytes")
                      .Help(
                          "Memory of the device: a CUDA device's, or the "
                          "host's physical memory for the CPU.")
                      .Register(*registry_);
    for (const std::string& device : devices) {
      device_memory_[device] = {&used.Add({{"device", device}}),
                                &total.Add({{"device", device}})};
    }
  }
  scraped_ = std::make_shared<RefreshedRegistry>(this, registry_);
}

// The exposer goes first: a scrape reads members declared after it.
Metrics::~Metrics() { exposer_.reset(); }

absl::Status Metrics::Serve(const std::string& address) {
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(address);
  } catch (const std::exception& e) {
    // civetweb reports a bind failure by throwing; nothing else here throws.
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", address, ": ", e.what()));
  }
  exposer_->RegisterCollectable(scraped_);
  return absl::OkStatus();
}

int Metrics::port() const {
  if (exposer_ == nullptr) return 0;
  std::vector<int> ports = exposer_->GetListeningPorts();
  return ports.empty() ? 0 : ports.front();
}

void Metrics::RpcStarted(RpcMethod method) {
  rpc_[static_cast<size_t>(method)].started->Increment();
}

void Metrics::RpcHandled(RpcMethod method, grpc::StatusCode code,
                         absl::Duration elapsed) {
  RpcSeries& series = rpc_[static_cast<size_t>(method)];
  size_t index = static_cast<size_t>(code);
  if (index >= series.handled.size()) index = grpc::StatusCode::UNKNOWN;
  series.handled[index]->Increment();
  series.seconds->Observe(absl::ToDoubleSeconds(elapsed));
}

void Metrics::SetQueueDepth(size_t depth) {
  queue_depth_->Set(static_cast<double>(depth));
}

void Metrics::SetQueueCapacity(size_t capacity) {
  queue_capacity_->Set(static_cast<double>(capacity));
}

void Metrics::BlobBytesReceived(int64_t bytes) {
  blob_bytes_->Increment(static_cast<double>(bytes));
}

void Metrics::MeasurementFinished(const std::string& kind,
                                  const std::string& device, Outcome outcome,
                                  double seconds, int64_t hvps) {
  if (auto it =
          measurements_.find(absl::StrCat(kind, "/", OutcomeName(outcome)));
      it != measurements_.end()) {
    it->second->Increment();
  }
  if (auto it = durations_.find(absl::StrCat(kind, "/", device));
      it != durations_.end()) {
    it->second->Observe(seconds);
  }
  if (auto it = hvps_.find(device); it != hvps_.end() && hvps > 0) {
    it->second->Increment(static_cast<double>(hvps));
  }
}

void Metrics::DeviceOutOfMemory(const std::string& device) {
  if (auto it = out_of_memory_.find(device); it != out_of_memory_.end()) {
    it->second->Increment();
  }
}

void Metrics::RunResult(const curvd::v1::Measurement& measurement) {
  run_latest_.Record(measurement, absl::Now());
}

void Metrics::RefreshForScrape() {
  run_latest_.DropIdle(absl::Now());
  for (const auto& [device, series] : device_memory_) {
    absl::StatusOr<core::DeviceMemory> memory = read_device_memory_(device);
    if (!memory.ok()) continue;
    series.used->Set(static_cast<double>(memory->used_bytes));
    series.total->Set(static_cast<double>(memory->total_bytes));
  }
}

}  // namespace curvd::server
