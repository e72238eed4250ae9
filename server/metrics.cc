#include "server/metrics.h"

#include <exception>

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
    {"CreateRun", "unary"},         {"GetRun", "unary"},
    {"ListRuns", "unary"},          {"WriteBlob", "client_stream"},
    {"ReadBlob", "server_stream"},
    {"GetBlobStatus", "unary"},     {"CreateCheckpoint", "unary"},
    {"GetCheckpoint", "unary"},     {"ListCheckpoints", "unary"},
    {"CreateMeasurement", "unary"}, {"GetMeasurement", "unary"},
    {"ListMeasurements", "unary"},  {"WatchMeasurement", "server_stream"},
    {"CancelMeasurement", "unary"}, {"DeleteRun", "unary"},
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

}  // namespace

Metrics::Metrics(const std::vector<std::string>& devices,
                 const std::string& version)
    : registry_(std::make_shared<prometheus::Registry>()) {
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
  for (const std::string& device : devices) {
    hvps_[device] = &hvps.Add({{"device", device}});
    workers.Add({{"device", device}}).Increment();
  }
}

Metrics::~Metrics() = default;

absl::Status Metrics::Serve(const std::string& address) {
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(address);
  } catch (const std::exception& e) {
    // civetweb reports a bind failure by throwing; nothing else here throws.
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", address, ": ", e.what()));
  }
  exposer_->RegisterCollectable(registry_);
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

}  // namespace curvd::server
