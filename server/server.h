// The curvd server: the service core behind a gRPC server (with health and
// reflection; TLS and bearer tokens when configured), an optional plain-text
// health port for probes, and a /metrics endpoint, with a graceful shutdown.
#ifndef CURVD_SERVER_SERVER_H_
#define CURVD_SERVER_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/device_worker.h"
#include "server/grpc_service.h"
#include "server/service_core.h"
#include "server/transport_security.h"

namespace curvd::server {

struct ServerOptions {
  ServiceOptions service;
  // gRPC address "host:port"; port 0 picks a free one (see
  // CurvdServer::port()).
  std::string listen = "127.0.0.1:50051";
  // /metrics address; empty serves no metrics endpoint. It has no
  // authentication: keep it on loopback or a network only Prometheus reaches.
  std::string metrics_listen = "127.0.0.1:9464";
  // A second, plain-text gRPC address serving grpc.health.v1 (and reflection)
  // alone, for probes that speak neither TLS nor tokens (Kubernetes' gRPC
  // probes); empty serves none. Port 0 picks a free one.
  std::string health_listen;
  // TLS, client certificates and bearer tokens of the `listen` port.
  SecurityOptions security;
  // Largest message accepted; WriteBlob chunks must fit.
  int max_receive_message_bytes = 16 << 20;
};

class CurvdServer {
 public:
  // Builds the service core (see ServiceCore::Create), binds /metrics, the
  // gRPC port (secured as options.security says; see BuildServerSecurity)
  // and the health port, and reports SERVING on grpc.health.v1 on both.
  // Unavailable if a port cannot be bound; NotFound or InvalidArgument for
  // unreadable credential files; the core's errors otherwise. The caller owns
  // the server. Does not check the options (ValidateServerOptions does).
  static absl::StatusOr<std::unique_ptr<CurvdServer>> Start(
      const ServerOptions& options, const EngineFactory& engine_factory);

  // Shuts down with no grace if Shutdown was not called.
  ~CurvdServer();

  // The bound gRPC and metrics ports.
  int port() const { return port_; }
  int metrics_port() const { return core_->metrics().port(); }
  // The bound health port; 0 without options.health_listen.
  int health_port() const { return health_port_; }
  ServiceCore& core() { return *core_; }

  // Graceful stop: health goes NOT_SERVING and CreateMeasurement UNAVAILABLE;
  // running measurements get `grace` to finish and are then stopped (FAILED,
  // UNAVAILABLE); queued ones stay QUEUED for the next start. Reads keep being
  // served meanwhile, so clients can collect results; then the gRPC server
  // stops, cancelling calls still open after `rpc_deadline` (watch streams),
  // and the store is closed last, so no RPC meets a closed store. Returns
  // within grace + ServiceCore::kWorkerStopWait + rpc_deadline (and the
  // store's close), true if every worker stopped; false if one was abandoned
  // inside the engine (ServiceCore::Drain): its measurement is FAILED in the
  // closed store, and the caller ends the process without destroying this
  // object (ExitAfterShutdown). Idempotent (later calls return the first
  // one's answer); thread-safe.
  bool Shutdown(absl::Duration grace, absl::Duration rpc_deadline);

  // Reads the token file again (TokenAuthProcessor::Reload): the next calls
  // are checked against its tokens. FailedPrecondition without a token file;
  // the file's error otherwise, keeping the tokens served. Thread-safe.
  absl::Status ReloadTokens();

 private:
  CurvdServer() = default;

  // Sets the whole server's and curvd.v1.Curvd's health on both ports.
  void SetServing(bool serving);

  bool workers_stopped_ ABSL_GUARDED_BY(shutdown_mu_) = true;

  std::unique_ptr<ServiceCore> core_;
  std::unique_ptr<CurvdService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<grpc::Server> health_server_;
  std::shared_ptr<TokenAuthProcessor> tokens_;
  int port_ = 0;
  int health_port_ = 0;
  absl::Mutex shutdown_mu_;
  bool shut_down_ ABSL_GUARDED_BY(shutdown_mu_) = false;
};

// Ends the process with `status` once `server`'s Shutdown returned: at once
// (std::_Exit, with no destructor running) when a worker was abandoned inside
// the engine, since joining it could take as long as its engine call; else by
// destroying the server and returning `status` for main to return.
int ExitAfterShutdown(std::unique_ptr<CurvdServer> server, bool workers_stopped,
                      int status);

}  // namespace curvd::server

#endif  // CURVD_SERVER_SERVER_H_
