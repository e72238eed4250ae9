#include "server/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"

namespace curvd::server {

absl::StatusOr<std::unique_ptr<CurvdServer>> CurvdServer::Start(
    const ServerOptions& options, const EngineFactory& engine_factory) {
  std::unique_ptr<CurvdServer> server(new CurvdServer());
  CURVD_ASSIGN_OR_RETURN(server->core_,
                         ServiceCore::Create(options.service, engine_factory));
  if (!options.metrics_listen.empty()) {
    CURVD_RETURN_IF_ERROR(
        server->core_->metrics().Serve(options.metrics_listen));
  }
  server->service_ = std::make_unique<CurvdService>(server->core_.get());

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen, grpc::InsecureServerCredentials(),
                           &server->port_);
  builder.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  builder.RegisterService(server->service_.get());
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.listen));
  }
  // Per-service status too: Kubernetes readiness probes ask for the service by
  // name, and an unregistered name is NOT_FOUND, never SERVING.
  grpc::HealthCheckServiceInterface* health =
      server->server_->GetHealthCheckService();
  health->SetServingStatus(v1::Curvd::service_full_name(), true);
  health->SetServingStatus(true);
  return server;
}

CurvdServer::~CurvdServer() {
  Shutdown(absl::ZeroDuration(), absl::ZeroDuration());
}

bool CurvdServer::Shutdown(absl::Duration grace, absl::Duration rpc_deadline) {
  absl::MutexLock lock(&shutdown_mu_);
  if (shut_down_) return workers_stopped_;
  shut_down_ = true;
  if (server_ != nullptr)
    server_->GetHealthCheckService()->SetServingStatus(false);
  if (core_ != nullptr) workers_stopped_ = core_->Drain(grace);
  if (server_ != nullptr) {
    server_->Shutdown(std::chrono::system_clock::now() +
                      absl::ToChronoMilliseconds(rpc_deadline));
    server_->Wait();
  }
  if (core_ != nullptr) core_->CloseStore();
  return workers_stopped_;
}

int ExitAfterShutdown(std::unique_ptr<CurvdServer> server, bool workers_stopped,
                      int status) {
  if (!workers_stopped) {
    // The store is closed; what a worker writes from now on is a blob that
    // nothing references at most, which a later sweep removes.
    std::fflush(nullptr);
    std::_Exit(status);
  }
  server.reset();
  return status;
}

}  // namespace curvd::server
