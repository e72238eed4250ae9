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

  CURVD_ASSIGN_OR_RETURN(ServerSecurity security,
                         BuildServerSecurity(options.security));
  server->tokens_ = security.tokens;

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen, security.credentials,
                           &server->port_);
  builder.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  builder.RegisterService(server->service_.get());
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", options.listen,
        options.security.tls_cert_file.empty()
            ? ""
            : " (or the TLS certificate and key are not a valid pair)"));
  }
  if (!options.health_listen.empty()) {
    // No service registered: the default health service and reflection are
    // all this server answers; curvd.v1 calls here are UNIMPLEMENTED.
    grpc::ServerBuilder health_builder;
    health_builder.AddListeningPort(options.health_listen,
                                    grpc::InsecureServerCredentials(),
                                    &server->health_port_);
    server->health_server_ = health_builder.BuildAndStart();
    if (server->health_server_ == nullptr || server->health_port_ == 0) {
      return absl::UnavailableError(
          absl::StrCat("cannot listen on ", options.health_listen));
    }
  }
  server->SetServing(true);
  return server;
}

void CurvdServer::SetServing(bool serving) {
  // Per-service status too: Kubernetes readiness probes ask for the service by
  // name, and an unregistered name is NOT_FOUND, never SERVING.
  for (grpc::Server* port : {server_.get(), health_server_.get()}) {
    if (port == nullptr) continue;
    grpc::HealthCheckServiceInterface* health = port->GetHealthCheckService();
    health->SetServingStatus(v1::Curvd::service_full_name(), serving);
    health->SetServingStatus(serving);
  }
}

absl::Status CurvdServer::ReloadTokens() {
  if (tokens_ == nullptr) {
    return absl::FailedPreconditionError(
        "no --auth_token_file to reload: this server checks no tokens");
  }
  return tokens_->Reload();
}

CurvdServer::~CurvdServer() {
  Shutdown(absl::ZeroDuration(), absl::ZeroDuration());
}

bool CurvdServer::Shutdown(absl::Duration grace, absl::Duration rpc_deadline) {
  absl::MutexLock lock(&shutdown_mu_);
  if (shut_down_) return workers_stopped_;
  shut_down_ = true;
  SetServing(false);
  if (core_ != nullptr) workers_stopped_ = core_->Drain(grace);
  if (server_ != nullptr) {
    server_->Shutdown(std::chrono::system_clock::now() +
                      absl::ToChronoMilliseconds(rpc_deadline));
    server_->Wait();
  }
  if (health_server_ != nullptr) {
    health_server_->Shutdown();
    health_server_->Wait();
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
