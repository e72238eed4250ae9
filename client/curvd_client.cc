#include "client/curvd_client.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>
#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <thread>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/replica_routing.h"
#include "common/resource_names.h"

namespace curvd::client {
namespace {

namespace v1 = ::curvd::v1;

std::chrono::system_clock::time_point Deadline(absl::Duration from_now) {
  return absl::ToChronoTime(absl::Now() + from_now);
}

// Transport failures worth another attempt; everything else is the server's
// considered answer.
bool IsRetryable(const absl::Status& status) {
  return absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status) ||
         absl::IsAborted(status);
}

std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials(
    const ConnectionOptions& options) {
  if (!options.UsesTls()) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = options.root_certificates;
  tls.pem_cert_chain = options.client_certificate;
  tls.pem_private_key = options.client_key;
  std::shared_ptr<grpc::ChannelCredentials> credentials =
      grpc::SslCredentials(tls);
  if (options.token.empty()) return credentials;
  // AccessTokenCredentials sends "authorization: Bearer TOKEN" on each call.
  return grpc::CompositeChannelCredentials(
      credentials, grpc::AccessTokenCredentials(options.token));
}

std::shared_ptr<grpc::Channel> MakeChannel(const ConnectionOptions& options) {
  grpc::ChannelArguments args;
  args.SetInt(
      GRPC_ARG_KEEPALIVE_TIME_MS,
      static_cast<int>(absl::ToInt64Milliseconds(options.keepalive_time)));
  args.SetInt(
      GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
      static_cast<int>(absl::ToInt64Milliseconds(options.keepalive_timeout)));
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS,
              options.keepalive_permit_without_calls ? 1 : 0);
  args.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  args.SetLoadBalancingPolicyName(options.load_balancing_policy);
  if (!options.tls_server_name.empty()) {
    args.SetSslTargetNameOverride(options.tls_server_name);
  }
  return grpc::CreateCustomChannel(options.target, ChannelCredentials(options),
                                   args);
}

// The owner's address in a replica's refusal of a call about a run it does
// not hold (docs/adr/0019), or nullopt.
std::optional<std::string> OwnerNamed(const grpc::Status& status,
                                      const grpc::ClientContext& context) {
  if (status.error_code() != grpc::StatusCode::FAILED_PRECONDITION) {
    return std::nullopt;
  }
  const auto& trailers = context.GetServerTrailingMetadata();
  auto owner = trailers.find(
      grpc::string_ref(common::kOwnerMetadataKey.data(),
                       common::kOwnerMetadataKey.size()));
  if (owner == trailers.end() || owner->second.empty()) return std::nullopt;
  return std::string(owner->second.data(), owner->second.size());
}

// Calls `list(page_token, response)` until the server stops returning a token,
// appending each page's items with `take(response, out)`.
template <typename Response, typename Item, typename ListFn, typename TakeFn>
absl::StatusOr<std::vector<Item>> ListAllPages(ListFn list, TakeFn take) {
  std::vector<Item> items;
  std::string token;
  do {
    Response response;
    absl::Status status = list(token, &response);
    if (!status.ok()) return status;
    take(response, &items);
    token = response.next_page_token();
  } while (!token.empty());
  return items;
}

}  // namespace

std::string Sha256Digest(absl::string_view bytes) {
  unsigned char hash[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(bytes.data(), bytes.size(), hash, &length, EVP_sha256(), nullptr);
  return absl::StrCat("sha256:",
                      absl::BytesToHexString(absl::string_view(
                          reinterpret_cast<const char*>(hash), length)));
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

Client::Client(ConnectionOptions options)
    : Client(MakeChannel(options), options) {}

Client::Client(std::shared_ptr<grpc::Channel> channel,
               ConnectionOptions options)
    : options_(std::move(options)),
      channel_(std::move(channel)),
      stub_(v1::Curvd::NewStub(channel_)) {}

std::shared_ptr<Client::Stub> Client::StubFor(const std::string& run_id) {
  absl::MutexLock lock(&mu_);
  auto replica = run_replicas_.find(run_id);
  if (replica == run_replicas_.end()) return stub_;
  return replica_stubs_.at(replica->second);
}

std::shared_ptr<Client::Stub> Client::Remember(const std::string& run_id,
                                               const std::string& address) {
  absl::MutexLock lock(&mu_);
  std::shared_ptr<Stub>& stub = replica_stubs_[address];
  if (stub == nullptr) {
    ConnectionOptions replica = options_;
    replica.target = address;
    stub = v1::Curvd::NewStub(MakeChannel(replica));
  }
  run_replicas_[run_id] = address;
  return stub;
}

grpc::Status Client::Routed(const std::string& run_id,
                            const ContextFactory& make_context,
                            const Call& call) {
  std::unique_ptr<grpc::ClientContext> context = make_context();
  grpc::Status status = call(*StubFor(run_id), context.get());
  std::optional<std::string> owner = OwnerNamed(status, *context);
  if (!owner.has_value() || run_id.empty()) return status;
  std::shared_ptr<Stub> stub = Remember(run_id, *owner);
  context = make_context();
  return call(*stub, context.get());
}

template <typename Request, typename Response>
absl::Status Client::Unary(grpc::Status (Stub::*method)(grpc::ClientContext*,
                                                        const Request&,
                                                        Response*),
                           const Request& request, Response* response) {
  return FromGrpcStatus(Routed(
      common::RunIdOf(request).value_or(""), [this] { return UnaryContext(); },
      [&](Stub& stub, grpc::ClientContext* context) {
        return (stub.*method)(context, request, response);
      }));
}

absl::Status Client::WaitForConnected(absl::Duration timeout) {
  if (channel_->WaitForConnected(Deadline(timeout))) return absl::OkStatus();
  return absl::UnavailableError(absl::StrCat(
      "no connection to ", options_.target, " within ",
      absl::FormatDuration(timeout), " (is curvd running there?)"));
}

std::unique_ptr<grpc::ClientContext> Client::UnaryContext() const {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(Deadline(options_.rpc_timeout));
  return context;
}

std::unique_ptr<grpc::ClientContext> Client::UploadContext() const {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(Deadline(options_.upload_timeout));
  return context;
}

absl::StatusOr<v1::Run> Client::CreateRun(const std::string& run_id,
                                          const v1::ModelSpec& model,
                                          const std::string& display_name) {
  v1::CreateRunRequest request;
  request.set_run_id(run_id);
  *request.mutable_run()->mutable_model() = model;
  request.mutable_run()->set_display_name(display_name);
  v1::Run run;
  absl::Status status = Unary(&Stub::CreateRun, request, &run);
  if (!status.ok()) return status;
  return run;
}

absl::StatusOr<v1::Run> Client::GetRun(const std::string& name) {
  v1::GetRunRequest request;
  request.set_name(name);
  v1::Run run;
  absl::Status status = Unary(&Stub::GetRun, request, &run);
  if (!status.ok()) return status;
  return run;
}

absl::StatusOr<std::vector<v1::Run>> Client::ListRuns(int page_size) {
  return ListRunsOf(*stub_, page_size, nullptr);
}

absl::StatusOr<std::vector<v1::Run>> Client::ListRunsOfEveryReplica(
    int page_size) {
  std::string replicas;
  absl::StatusOr<std::vector<v1::Run>> runs =
      ListRunsOf(*stub_, page_size, &replicas);
  if (!runs.ok() || replicas.empty()) return runs;
  std::vector<v1::Run> all;
  for (absl::string_view address : absl::StrSplit(replicas, ',')) {
    ConnectionOptions replica = options_;
    replica.target = std::string(address);
    std::unique_ptr<Stub> stub = v1::Curvd::NewStub(MakeChannel(replica));
    absl::StatusOr<std::vector<v1::Run>> listed =
        ListRunsOf(*stub, page_size, nullptr);
    if (!listed.ok()) {
      return absl::Status(listed.status().code(),
                          absl::StrCat("listing the runs of replica ", address,
                                       ": ", listed.status().message()));
    }
    all.insert(all.end(), listed->begin(), listed->end());
  }
  return all;
}

absl::StatusOr<std::vector<v1::Run>> Client::ListRunsOf(Stub& stub,
                                                        int page_size,
                                                        std::string* replicas) {
  return ListAllPages<v1::ListRunsResponse, v1::Run>(
      [&](const std::string& token, v1::ListRunsResponse* response) {
        v1::ListRunsRequest request;
        request.set_page_size(page_size);
        request.set_page_token(token);
        auto context = UnaryContext();
        grpc::Status status = stub.ListRuns(context.get(), request, response);
        const auto& trailers = context->GetServerTrailingMetadata();
        auto named = trailers.find(
            grpc::string_ref(common::kReplicasMetadataKey.data(),
                             common::kReplicasMetadataKey.size()));
        if (replicas != nullptr && named != trailers.end()) {
          replicas->assign(named->second.data(), named->second.size());
        }
        return FromGrpcStatus(status);
      },
      [](const v1::ListRunsResponse& response, std::vector<v1::Run>* out) {
        out->insert(out->end(), response.runs().begin(), response.runs().end());
      });
}

absl::StatusOr<v1::BlobStatus> Client::WriteBlobFrom(absl::string_view bytes,
                                                     const std::string& digest,
                                                     const std::string& run_id,
                                                     int64_t from) {
  v1::BlobStatus result;
  const int64_t size = static_cast<int64_t>(bytes.size());
  grpc::Status status = Routed(
      run_id, [this] { return UploadContext(); },
      [&](Stub& stub, grpc::ClientContext* context) {
        std::unique_ptr<grpc::ClientWriter<v1::WriteBlobRequest>> writer =
            stub.WriteBlob(context, &result);
        int64_t offset = from;
        bool first = true;
        // An empty remainder still needs one message to carry finish_write.
        do {
          const int64_t length = std::min(kUploadChunkBytes, size - offset);
          v1::WriteBlobRequest request;
          if (first) {
            request.set_digest(digest);
            request.set_size_bytes(size);
            if (!run_id.empty()) request.set_run(common::RunName(run_id));
            first = false;
          }
          request.set_write_offset(offset);
          request.set_data(bytes.data() + offset, static_cast<size_t>(length));
          offset += length;
          request.set_finish_write(offset == size);
          // A failed Write means the stream is broken; Finish says why.
          if (!writer->Write(request)) break;
        } while (offset < size);
        writer->WritesDone();
        return writer->Finish();
      });
  if (!status.ok()) return FromGrpcStatus(status);
  return result;
}

absl::StatusOr<std::string> Client::UploadBlob(absl::string_view bytes,
                                               const std::string& run_id) {
  const std::string digest = Sha256Digest(bytes);
  absl::Status last_error;
  for (int attempt = 0; attempt < std::max(1, options_.upload_attempts);
       ++attempt) {
    if (attempt > 0) absl::SleepFor(absl::Milliseconds(200) * (1 << attempt));
    v1::GetBlobStatusRequest request;
    request.set_digest(digest);
    if (!run_id.empty()) request.set_run(common::RunName(run_id));
    v1::BlobStatus blob;
    absl::Status rpc = Unary(&Stub::GetBlobStatus, request, &blob);
    int64_t offset = 0;
    if (rpc.ok()) {
      if (blob.complete()) return digest;
      offset = blob.committed_size_bytes();
    } else if (!absl::IsNotFound(rpc)) {
      last_error = rpc;
      if (!IsRetryable(last_error)) return last_error;
      continue;
    }
    if (offset < 0 || offset > static_cast<int64_t>(bytes.size())) offset = 0;
    absl::StatusOr<v1::BlobStatus> written =
        WriteBlobFrom(bytes, digest, run_id, offset);
    if (written.ok()) {
      if (written->complete()) return digest;
      last_error = absl::DataLossError(absl::StrCat(
          "server did not commit blob ", digest, ": ",
          written->committed_size_bytes(), " of ", bytes.size(), " bytes"));
      continue;
    }
    last_error = written.status();
    if (!IsRetryable(last_error)) return last_error;
  }
  return absl::Status(last_error.code(),
                      absl::StrCat("upload of ", digest, " failed after ",
                                   options_.upload_attempts,
                                   " attempts: ", last_error.message()));
}

absl::StatusOr<std::string> Client::ReadBlob(const std::string& digest,
                                             const std::string& run_id) {
  std::string bytes;
  absl::Status last_error;
  for (int attempt = 0; attempt < std::max(1, options_.upload_attempts);
       ++attempt) {
    if (attempt > 0) absl::SleepFor(absl::Milliseconds(200) * (1 << attempt));
    v1::ReadBlobRequest request;
    request.set_digest(digest);
    request.set_read_offset(static_cast<int64_t>(bytes.size()));
    if (!run_id.empty()) request.set_run(common::RunName(run_id));
    last_error = FromGrpcStatus(Routed(
        run_id, [this] { return UploadContext(); },
        [&](Stub& stub, grpc::ClientContext* context) {
          std::unique_ptr<grpc::ClientReader<v1::ReadBlobResponse>> reader =
              stub.ReadBlob(context, request);
          v1::ReadBlobResponse chunk;
          while (reader->Read(&chunk)) bytes.append(chunk.data());
          return reader->Finish();
        }));
    if (last_error.ok()) {
      if (Sha256Digest(bytes) != digest) {
        return absl::DataLossError(absl::StrCat(
            "blob ", digest, " read back as ", bytes.size(),
            " bytes of another digest, ", Sha256Digest(bytes)));
      }
      return bytes;
    }
    if (!IsRetryable(last_error)) return last_error;
  }
  return absl::Status(last_error.code(),
                      absl::StrCat("reading ", digest, " failed after ",
                                   options_.upload_attempts,
                                   " attempts: ", last_error.message()));
}

absl::StatusOr<v1::Checkpoint> Client::CreateCheckpoint(
    const std::string& run_id, const v1::Checkpoint& checkpoint) {
  v1::CreateCheckpointRequest request;
  request.set_parent(common::RunName(run_id));
  *request.mutable_checkpoint() = checkpoint;
  v1::Checkpoint created;
  absl::Status status = Unary(&Stub::CreateCheckpoint, request, &created);
  if (!status.ok()) return status;
  return created;
}

absl::StatusOr<v1::Checkpoint> Client::GetCheckpoint(const std::string& name) {
  v1::GetCheckpointRequest request;
  request.set_name(name);
  v1::Checkpoint checkpoint;
  absl::Status status = Unary(&Stub::GetCheckpoint, request, &checkpoint);
  if (!status.ok()) return status;
  return checkpoint;
}

absl::StatusOr<std::vector<v1::Checkpoint>> Client::ListCheckpoints(
    const std::string& run_name, int page_size) {
  return ListAllPages<v1::ListCheckpointsResponse, v1::Checkpoint>(
      [&](const std::string& token, v1::ListCheckpointsResponse* response) {
        v1::ListCheckpointsRequest request;
        request.set_parent(run_name);
        request.set_page_size(page_size);
        request.set_page_token(token);
        return Unary(&Stub::ListCheckpoints, request, response);
      },
      [](const v1::ListCheckpointsResponse& response,
         std::vector<v1::Checkpoint>* out) {
        out->insert(out->end(), response.checkpoints().begin(),
                    response.checkpoints().end());
      });
}

absl::StatusOr<v1::Measurement> Client::CreateMeasurement(
    const std::string& parent, const v1::MeasurementSpec& spec,
    const std::string& request_id) {
  v1::CreateMeasurementRequest request;
  request.set_parent(parent);
  *request.mutable_spec() = spec;
  request.set_request_id(request_id);
  v1::Measurement measurement;
  absl::Status status = Unary(&Stub::CreateMeasurement, request, &measurement);
  if (!status.ok()) return status;
  return measurement;
}

absl::StatusOr<v1::Measurement> Client::GetMeasurement(
    const std::string& name) {
  v1::GetMeasurementRequest request;
  request.set_name(name);
  v1::Measurement measurement;
  absl::Status status = Unary(&Stub::GetMeasurement, request, &measurement);
  if (!status.ok()) return status;
  return measurement;
}

absl::StatusOr<std::vector<v1::Measurement>> Client::ListMeasurements(
    const std::string& parent, int page_size, v1::View view) {
  return ListAllPages<v1::ListMeasurementsResponse, v1::Measurement>(
      [&](const std::string& token, v1::ListMeasurementsResponse* response) {
        v1::ListMeasurementsRequest request;
        request.set_parent(parent);
        request.set_page_size(page_size);
        request.set_view(view);
        request.set_page_token(token);
        return Unary(&Stub::ListMeasurements, request, response);
      },
      [](const v1::ListMeasurementsResponse& response,
         std::vector<v1::Measurement>* out) {
        out->insert(out->end(), response.measurements().begin(),
                    response.measurements().end());
      });
}

absl::StatusOr<v1::Measurement> Client::CancelMeasurement(
    const std::string& name) {
  v1::CancelMeasurementRequest request;
  request.set_name(name);
  v1::Measurement measurement;
  absl::Status status = Unary(&Stub::CancelMeasurement, request, &measurement);
  if (!status.ok()) return status;
  return measurement;
}

absl::StatusOr<v1::DeleteRunResponse> Client::DeleteRun(
    const std::string& name) {
  v1::DeleteRunRequest request;
  request.set_name(name);
  v1::DeleteRunResponse response;
  auto context = UnaryContext();
  grpc::Status status = stub_->DeleteRun(context.get(), request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::StatusOr<v1::Measurement> Client::WaitMeasurement(
    const std::string& name,
    const std::function<void(const v1::Measurement&)>& on_update,
    absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::Duration backoff = absl::Milliseconds(100);
  absl::Status last_error = absl::DeadlineExceededError(
      absl::StrCat("measurement ", name, " did not finish within ",
                   absl::FormatDuration(timeout)));
  v1::WatchMeasurementRequest request;
  request.set_name(name);
  const std::string run_id = common::RunIdOf(request).value_or("");
  bool redirected = false;
  while (absl::Now() < deadline) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(deadline));
    // A reattach during a server restart waits for the channel instead of
    // failing at once.
    context.set_wait_for_ready(true);
    std::unique_ptr<grpc::ClientReader<v1::Measurement>> reader =
        StubFor(run_id)->WatchMeasurement(&context, request);
    v1::Measurement measurement;
    bool received = false;
    while (reader->Read(&measurement)) {
      received = true;
      if (on_update) on_update(measurement);
      if (IsTerminal(measurement.state())) {
        context.TryCancel();
        reader->Finish();
        return measurement;
      }
    }
    const grpc::Status finished = reader->Finish();
    // A replica that does not hold the run names the one that does.
    if (std::optional<std::string> owner = OwnerNamed(finished, context);
        owner.has_value() && !redirected && !run_id.empty()) {
      Remember(run_id, *owner);
      redirected = true;
      continue;
    }
    absl::Status status = FromGrpcStatus(finished);
    if (!status.ok() && !IsRetryable(status) && !absl::IsCancelled(status)) {
      return status;
    }
    if (!status.ok()) last_error = status;
    // A stream that delivered something was healthy: start the backoff over.
    if (received) backoff = absl::Milliseconds(100);
    absl::SleepFor(std::min(backoff, deadline - absl::Now()));
    backoff = std::min(backoff * 2, absl::Seconds(5));
  }
  return absl::DeadlineExceededError(absl::StrCat(
      "measurement ", name, " did not finish within ",
      absl::FormatDuration(timeout), "; last: ", last_error.message()));
}

}  // namespace curvd::client
