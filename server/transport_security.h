// How the gRPC port is secured: TLS from certificate files, optionally mutual
// TLS, and bearer tokens; and the rule that only a loopback address may be
// served without them. docs/adr/0017 records the choices.
#ifndef CURVD_SERVER_TRANSPORT_SECURITY_H_
#define CURVD_SERVER_TRANSPORT_SECURITY_H_

#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/token_auth_processor.h"

namespace curvd::server {

struct SecurityOptions {
  // PEM files of the server's certificate chain and private key; both or
  // neither. Set, the gRPC port speaks TLS only.
  std::string tls_cert_file;
  std::string tls_key_file;
  // PEM file of the CAs that sign client certificates; set, every connection
  // must present a certificate they verify (mutual TLS). Needs TLS.
  std::string tls_client_ca_file;
  // File of "NAME TOKEN" lines (BearerTokens); set, every curvd.v1 call needs
  // "authorization: Bearer TOKEN". Needs TLS, so tokens never cross in clear.
  std::string auth_token_file;
  // Serves a non-loopback address without TLS or client authentication.
  bool insecure = false;
};

// Whether `listen` only accepts connections from this host: a "unix:" socket,
// "localhost", an IPv4 127.0.0.0/8 address or [::1], each with ":port". Pure.
bool IsLoopbackAddress(absl::string_view listen);

// Whether calls on the gRPC port must authenticate (tokens or client
// certificates).
bool AuthenticatesClients(const SecurityOptions& security);

// Checks the combinations: certificate and key together; a client CA or a
// token file only with TLS; and a `listen` address that is not loopback only
// with TLS and client authentication, unless `insecure`. InvalidArgument
// naming the flags. Pure.
absl::Status ValidateSecurityOptions(absl::string_view listen,
                                     const SecurityOptions& security);

// What start-up must warn about, one sentence each: serving `listen` with
// --insecure, and a /metrics address (`metrics_listen`, "" for none) that
// other hosts reach, which has no authentication. Pure.
std::vector<std::string> SecurityWarnings(absl::string_view listen,
                                          absl::string_view metrics_listen,
                                          const SecurityOptions& security);

// The credentials of the gRPC port, and the token check installed on them
// (null without a token file).
struct ServerSecurity {
  std::shared_ptr<grpc::ServerCredentials> credentials;
  std::shared_ptr<TokenAuthProcessor> tokens;
};

// Reads the files `security` names and builds the port's credentials:
// insecure without a certificate; TLS (requiring and verifying client
// certificates when a client CA is given) otherwise, with the token check
// when a token file is given. NotFound or InvalidArgument naming a file that
// cannot be read or parsed.
absl::StatusOr<ServerSecurity> BuildServerSecurity(
    const SecurityOptions& security);

}  // namespace curvd::server

#endif  // CURVD_SERVER_TRANSPORT_SECURITY_H_
