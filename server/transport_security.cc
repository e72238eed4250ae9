#include "server/transport_security.h"

#include <grpcpp/security/server_credentials.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/file_contents.h"
#include "common/status_macros.h"

namespace curvd::server {
namespace {

// The host part of "host:port" or "[v6]:port".
absl::string_view Host(absl::string_view listen) {
  if (absl::ConsumePrefix(&listen, "[")) {
    return listen.substr(0, listen.find(']'));
  }
  return listen.substr(0, listen.rfind(':'));
}

bool IsLoopbackIpv4(absl::string_view host) {
  std::vector<absl::string_view> octets = absl::StrSplit(host, '.');
  if (octets.size() != 4 || octets[0] != "127") return false;
  for (absl::string_view octet : octets) {
    int value = 0;
    if (!absl::SimpleAtoi(octet, &value) || value < 0 || value > 255)
      return false;
  }
  return true;
}

bool IsLoopbackOrUnix(absl::string_view address) {
  return address.empty() || IsLoopbackAddress(address);
}

}  // namespace

bool IsLoopbackAddress(absl::string_view listen) {
  if (absl::StartsWith(listen, "unix:")) return true;
  const absl::string_view host = Host(listen);
  return host == "localhost" || host == "::1" || IsLoopbackIpv4(host);
}

bool AuthenticatesClients(const SecurityOptions& security) {
  return !security.auth_token_file.empty() ||
         !security.tls_client_ca_file.empty();
}

absl::Status ValidateSecurityOptions(absl::string_view listen,
                                     const SecurityOptions& security) {
  const bool tls = !security.tls_cert_file.empty();
  if (tls != !security.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls_cert_file and --tls_key_file go together: give both or neither");
  }
  if (!tls && !security.tls_client_ca_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls_client_ca_file needs TLS: give --tls_cert_file and "
        "--tls_key_file too");
  }
  if (!tls && !security.auth_token_file.empty()) {
    return absl::InvalidArgumentError(
        "--auth_token_file needs TLS (--tls_cert_file and --tls_key_file): "
        "bearer tokens would otherwise cross the network in clear");
  }
  if (!IsLoopbackAddress(listen) && !security.insecure &&
      !(tls && AuthenticatesClients(security))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--listen ", listen,
        " is not a loopback address: serving it needs TLS (--tls_cert_file, "
        "--tls_key_file) and client authentication (--auth_token_file, "
        "--tls_client_ca_file or both); --insecure serves it without them"));
  }
  return absl::OkStatus();
}

std::vector<std::string> SecurityWarnings(absl::string_view listen,
                                          absl::string_view metrics_listen,
                                          const SecurityOptions& security) {
  std::vector<std::string> warnings;
  if (!IsLoopbackAddress(listen)) {
    std::vector<std::string> missing;
    if (security.tls_cert_file.empty()) missing.push_back("TLS");
    if (!AuthenticatesClients(security)) missing.push_back("authentication");
    if (!missing.empty()) {
      warnings.push_back(absl::StrCat(
          "INSECURE (--insecure): serving ", listen, " without ",
          absl::StrJoin(missing, " or "),
          ": anyone who reaches the port can upload, fill the disk, occupy "
          "the devices and read files under the data roots"));
    }
  }
  if (!IsLoopbackOrUnix(metrics_listen)) {
    warnings.push_back(absl::StrCat(
        "/metrics on ", metrics_listen,
        " has no authentication or TLS: anyone who reaches it reads the "
        "metrics (run ids of active runs included)"));
  }
  return warnings;
}

absl::StatusOr<ServerSecurity> BuildServerSecurity(
    const SecurityOptions& security) {
  ServerSecurity built;
  if (security.tls_cert_file.empty()) {
    built.credentials = grpc::InsecureServerCredentials();
    return built;
  }
  grpc::SslServerCredentialsOptions tls;
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  CURVD_ASSIGN_OR_RETURN(pair.private_key,
                         common::ReadFileContents(security.tls_key_file));
  CURVD_ASSIGN_OR_RETURN(pair.cert_chain,
                         common::ReadFileContents(security.tls_cert_file));
  tls.pem_key_cert_pairs.push_back(std::move(pair));
  if (!security.tls_client_ca_file.empty()) {
    CURVD_ASSIGN_OR_RETURN(
        tls.pem_root_certs,
        common::ReadFileContents(security.tls_client_ca_file));
    tls.client_certificate_request =
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  built.credentials = grpc::SslServerCredentials(tls);
  if (!security.auth_token_file.empty()) {
    CURVD_ASSIGN_OR_RETURN(built.tokens,
                           TokenAuthProcessor::Load(security.auth_token_file));
    built.credentials->SetAuthMetadataProcessor(built.tokens);
  }
  return built;
}

}  // namespace curvd::server
