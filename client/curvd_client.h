// A C++ client of the curvd.v1 service over the generated stubs: blocking calls
// that return absl::Status/StatusOr, a chunked resumable blob upload, a
// measurement wait that reattaches to its watch stream, and List* calls that
// follow every page. The proto is the real interface; this is a convenience.
// With several replicas (docs/adr/0019) every call about a run goes to the
// replica that holds it: a replica's refusal naming the owner is followed once
// and remembered for the run, so one address of the set is all a client needs.
#ifndef CURVD_CLIENT_CURVD_CLIENT_H_
#define CURVD_CLIENT_CURVD_CLIENT_H_

#include <grpcpp/channel.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/measurements.h"
#include "curvd/v1/curvd_service.grpc.pb.h"

namespace curvd::client {

// Every connection setting in one place, so that keepalive and message limits
// are chosen together (they must agree with the server's, or the server answers
// GOAWAY "too_many_pings").
struct ConnectionOptions {
  // host:port, or any gRPC target ("dns:///curvd.ns.svc:50051" balances over a
  // headless Service with round_robin).
  std::string target = "localhost:50051";
  // HTTP/2 pings on a quiet connection detect a dead peer during a long watch.
  // A gRPC server, curvd included, by default accepts pings no more often than
  // every 5 minutes and answers more frequent ones with GOAWAY, so this is the
  // shortest interval that is safe without server-side changes.
  absl::Duration keepalive_time = absl::Minutes(5);
  absl::Duration keepalive_timeout = absl::Seconds(20);
  // Pinging without active calls would count as strikes on the server.
  bool keepalive_permit_without_calls = false;
  // Responses are small; lists of a thousand measurements fit in this.
  int max_receive_message_bytes = 16 << 20;
  // Deadline of each unary call.
  absl::Duration rpc_timeout = absl::Seconds(30);
  // Deadline of one blob upload attempt, whatever its size.
  absl::Duration upload_timeout = absl::Minutes(10);
  // Upload attempts after a transport failure, each resuming where the server
  // committed.
  int upload_attempts = 3;
  // Load-balancing policy; round_robin spreads new runs over replicas behind
  // a headless Service (a server-chosen run id stays where it was created;
  // calls about an existing run reach its replica by redirect).
  std::string load_balancing_policy = "round_robin";

  // Credentials (ApplyCredentials fills them from flags and the environment).
  // TLS is used when `tls` is set or any of the fields below is: the PEM CAs
  // that sign the server's certificate (empty: the system's roots).
  bool tls = false;
  std::string root_certificates;
  // A PEM certificate chain and its key, for a server that asks for client
  // certificates (mutual TLS).
  std::string client_certificate;
  std::string client_key;
  // Checked against the server's certificate instead of the target's host
  // (a server reached by IP address or through a port-forward).
  std::string tls_server_name;
  // Sent as "authorization: Bearer TOKEN" with every call. It implies TLS: a
  // token is never sent in clear.
  std::string token;

  // Whether the channel speaks TLS, as the fields above say.
  bool UsesTls() const {
    return tls || !root_certificates.empty() || !client_certificate.empty() ||
           !token.empty();
  }
};

// Bytes per WriteBlob message: well under the default 4 MiB receive limit.
inline constexpr int64_t kUploadChunkBytes = 1 << 20;

// "sha256:<64 lowercase hex>" of `bytes`, the blob identity the server checks.
std::string Sha256Digest(absl::string_view bytes);

// The absl::Status with the same code and message as a grpc::Status.
absl::Status FromGrpcStatus(const grpc::Status& status);

// IsTerminal and KindName, for trainers (common/measurements.h).
using ::curvd::common::IsTerminal;
using ::curvd::common::KindName;

// A connection to one curvd server, or to a replica set through any of its
// replicas. Thread-safe: calls may come from several threads at once (gRPC
// channels and stubs are). The channel to a replica that a refusal names is
// made as the target's is (ConnectionOptions, the same credentials).
class Client {
 public:
  // Creates a channel to options.target; it connects lazily on the first call,
  // so an unreachable server shows up as UNAVAILABLE from that call.
  explicit Client(ConnectionOptions options);
  // Uses an existing channel (tests, in-process servers).
  Client(std::shared_ptr<grpc::Channel> channel, ConnectionOptions options);

  const ConnectionOptions& options() const { return options_; }

  // Blocks until the channel is connected or `timeout` passes (then
  // UNAVAILABLE).
  absl::Status WaitForConnected(absl::Duration timeout);

  // Registers run `run_id` with `model`. Idempotent for the same model; another
  // model under the same id is ALREADY_EXISTS.
  absl::StatusOr<curvd::v1::Run> CreateRun(
      const std::string& run_id, const curvd::v1::ModelSpec& model,
      const std::string& display_name = "");
  // `name` is "runs/{run}"; NOT_FOUND when it is unknown.
  absl::StatusOr<curvd::v1::Run> GetRun(const std::string& name);
  // Every run of the replica reached, following next_page_token; `page_size`
  // bounds each response.
  absl::StatusOr<std::vector<curvd::v1::Run>> ListRuns(int page_size = 100);
  // Every run of every replica: the runs of each replica that the target's
  // ListRuns names (trailer curvd-replicas), in replica order; a lone server's
  // runs when it names none. The first error of any replica is returned.
  absl::StatusOr<std::vector<curvd::v1::Run>> ListRunsOfEveryReplica(
      int page_size = 100);

  // Uploads `bytes` as a content-addressed blob and returns its digest. Asks
  // GetBlobStatus first, so a stored blob costs no transfer and an interrupted
  // upload resumes at the committed offset; retries transport failures up to
  // options().upload_attempts times. Errors other than UNAVAILABLE,
  // DEADLINE_EXCEEDED and ABORTED are returned at once (RESOURCE_EXHAUSTED for
  // a blob over the server's limit, INVALID_ARGUMENT for a digest mismatch).
  // `run_id`, when set, is the run the blob is for: it goes to that run's
  // replica (a checkpoint or an archive must be uploaded there).
  absl::StatusOr<std::string> UploadBlob(absl::string_view bytes,
                                         const std::string& run_id = "");

  // The bytes of the committed blob `digest` (an upload, or an array the server
  // stored, such as a gop result's eigenvectors), read with ReadBlob. A
  // stream that breaks (UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED) resumes at
  // the bytes received, up to options().upload_attempts streams in all, each
  // under upload_timeout. NOT_FOUND for a blob not stored, INVALID_ARGUMENT
  // for a malformed digest, DATA_LOSS when the bytes do not hash to `digest`.
  // `run_id`, when set, is the run whose result or upload the blob is: it is
  // read from that run's replica.
  absl::StatusOr<std::string> ReadBlob(const std::string& digest,
                                       const std::string& run_id = "");

  // Records `checkpoint` (step, format, digest or uri, train_loss) under run
  // `run_id`. Idempotent for the same step and content.
  absl::StatusOr<curvd::v1::Checkpoint> CreateCheckpoint(
      const std::string& run_id, const curvd::v1::Checkpoint& checkpoint);
  // `name` is "runs/{run}/checkpoints/{step}".
  absl::StatusOr<curvd::v1::Checkpoint> GetCheckpoint(const std::string& name);
  absl::StatusOr<std::vector<curvd::v1::Checkpoint>> ListCheckpoints(
      const std::string& run_name, int page_size = 100);

  // Queues a measurement of checkpoint `parent`; returns it in state QUEUED.
  // `request_id` (may be empty) makes a retry return the first one created.
  absl::StatusOr<curvd::v1::Measurement> CreateMeasurement(
      const std::string& parent, const curvd::v1::MeasurementSpec& spec,
      const std::string& request_id);
  absl::StatusOr<curvd::v1::Measurement> GetMeasurement(
      const std::string& name);
  // Measurements of a checkpoint, or of a whole run with parent
  // "runs/{run}/checkpoints/-", following next_page_token. `page_size` bounds
  // each response's count (the server also bounds its bytes); VIEW_BASIC
  // leaves out the fields marked full_view_only (an exact Hessian's matrix,
  // LLC traces), VIEW_FULL has them (curvd_service.proto, View).
  absl::StatusOr<std::vector<curvd::v1::Measurement>> ListMeasurements(
      const std::string& parent, int page_size = 100,
      curvd::v1::View view = curvd::v1::VIEW_BASIC);
  absl::StatusOr<curvd::v1::Measurement> CancelMeasurement(
      const std::string& name);

  // Deletes run `name` ("runs/{run}") with its checkpoints, measurements and
  // the blobs nothing else uses; FAILED_PRECONDITION while a measurement of it
  // is QUEUED or RUNNING.
  absl::StatusOr<curvd::v1::DeleteRunResponse> DeleteRun(
      const std::string& name);

  // Follows measurement `name` through WatchMeasurement until a terminal state
  // and returns it (a FAILED measurement is an OK StatusOr: the failure is
  // data). `on_update`, if set, sees every state the stream delivers, on this
  // thread. A stream that ends early or breaks (server restart, network) is
  // reattached by name with backoff; DEADLINE_EXCEEDED once `timeout` passes in
  // all.
  absl::StatusOr<curvd::v1::Measurement> WaitMeasurement(
      const std::string& name,
      const std::function<void(const curvd::v1::Measurement&)>& on_update,
      absl::Duration timeout);

 private:
  using Stub = curvd::v1::Curvd::Stub;
  using ContextFactory = std::function<std::unique_ptr<grpc::ClientContext>()>;
  using Call = std::function<grpc::Status(Stub&, grpc::ClientContext*)>;

  // A context with the unary deadline.
  std::unique_ptr<grpc::ClientContext> UnaryContext() const;
  // A context with the upload deadline.
  std::unique_ptr<grpc::ClientContext> UploadContext() const;
  // The stub for calls about run `run_id`: the replica a refusal named for it,
  // else the target's (also for "", a call about no run).
  std::shared_ptr<Stub> StubFor(const std::string& run_id);
  // The stub of the replica at `address`, remembered as `run_id`'s.
  std::shared_ptr<Stub> Remember(const std::string& run_id,
                                 const std::string& address);
  // Runs `call` with a context from `make_context` on the stub for `run_id`;
  // when the answer is a replica's refusal naming the owner, remembers the
  // owner and runs it once more there.
  grpc::Status Routed(const std::string& run_id,
                      const ContextFactory& make_context, const Call& call);
  // A unary `method` of the stub, routed by the run `request` is about.
  template <typename Request, typename Response>
  absl::Status Unary(grpc::Status (Stub::*method)(grpc::ClientContext*,
                                                  const Request&, Response*),
                     const Request& request, Response* response);
  // Every run of the replica behind `stub`; `replicas` gets its
  // curvd-replicas trailer, if it is not null.
  absl::StatusOr<std::vector<curvd::v1::Run>> ListRunsOf(Stub& stub,
                                                         int page_size,
                                                         std::string* replicas);
  // One WriteBlob stream from the committed offset; returns the final status.
  absl::StatusOr<curvd::v1::BlobStatus> WriteBlobFrom(absl::string_view bytes,
                                                      const std::string& digest,
                                                      const std::string& run_id,
                                                      int64_t offset);

  ConnectionOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::shared_ptr<Stub> stub_;
  absl::Mutex mu_;
  // The stub of each replica a refusal named, by address, and the address of
  // each run's replica where it is not the target.
  absl::flat_hash_map<std::string, std::shared_ptr<Stub>> replica_stubs_
      ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::string> run_replicas_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace curvd::client

#endif  // CURVD_CLIENT_CURVD_CLIENT_H_
