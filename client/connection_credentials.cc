#include "client/connection_credentials.h"

#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/file_contents.h"
#include "common/status_macros.h"

namespace curvd::client {
namespace {

using ::curvd::common::ReadFileContents;

// The environment variable `name`, "" when unset.
std::string Environment(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

// `value` when set, else the environment variable `name`.
std::string OrEnvironment(const std::string& value, const char* name) {
  return !value.empty() ? value : Environment(name);
}

absl::StatusOr<std::string> Token(const CredentialSources& sources) {
  std::string file = sources.token_file;
  if (file.empty()) {
    const std::string token = Environment("CURVD_TOKEN");
    if (!token.empty()) return std::string(absl::StripAsciiWhitespace(token));
    file = Environment("CURVD_TOKEN_FILE");
    if (file.empty()) return std::string();
  }
  CURVD_ASSIGN_OR_RETURN(std::string contents, ReadFileContents(file));
  std::string token(absl::StripAsciiWhitespace(contents));
  if (token.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the token file ", file, " is empty"));
  }
  return token;
}

}  // namespace

absl::Status ApplyCredentials(const CredentialSources& sources,
                              ConnectionOptions* options) {
  CURVD_ASSIGN_OR_RETURN(options->token, Token(sources));
  const std::string ca = OrEnvironment(sources.tls_ca_file, "CURVD_TLS_CA");
  const std::string cert =
      OrEnvironment(sources.tls_cert_file, "CURVD_TLS_CERT");
  const std::string key = OrEnvironment(sources.tls_key_file, "CURVD_TLS_KEY");
  if (cert.empty() != key.empty()) {
    return absl::InvalidArgumentError(
        "a TLS client certificate and its key go together: give both "
        "(--tls_cert and --tls_key, or $CURVD_TLS_CERT and $CURVD_TLS_KEY) or "
        "neither");
  }
  if (!ca.empty()) {
    CURVD_ASSIGN_OR_RETURN(options->root_certificates, ReadFileContents(ca));
  }
  if (!cert.empty()) {
    CURVD_ASSIGN_OR_RETURN(options->client_certificate, ReadFileContents(cert));
    CURVD_ASSIGN_OR_RETURN(options->client_key, ReadFileContents(key));
  }
  options->tls_server_name =
      OrEnvironment(sources.tls_server_name, "CURVD_TLS_SERVER_NAME");
  options->tls = sources.tls || Environment("CURVD_TLS") == "1";
  return absl::OkStatus();
}

}  // namespace curvd::client
