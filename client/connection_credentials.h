// The credentials of a connection to curvd (TLS roots, a client certificate, a
// bearer token) from command-line values or, where those are empty, from the
// environment, so that curvctl, the example trainer and any program linking
// the client take them the same way.
#ifndef CURVD_CLIENT_CONNECTION_CREDENTIALS_H_
#define CURVD_CLIENT_CONNECTION_CREDENTIALS_H_

#include <string>

#include "absl/status/status.h"
#include "client/curvd_client.h"

namespace curvd::client {

// Paths and values as a command line gives them; each empty one is taken from
// the environment variable named beside it.
struct CredentialSources {
  // A file holding the bearer token ($CURVD_TOKEN_FILE). $CURVD_TOKEN, the
  // token itself, comes between the two: a command line never carries a token,
  // which `ps` would show.
  std::string token_file;
  // PEM CAs that sign the server's certificate ($CURVD_TLS_CA).
  std::string tls_ca_file;
  // PEM certificate chain and key for mutual TLS ($CURVD_TLS_CERT,
  // $CURVD_TLS_KEY): both or neither.
  std::string tls_cert_file;
  std::string tls_key_file;
  // The name to check the server's certificate against, when the target's is
  // another ($CURVD_TLS_SERVER_NAME).
  std::string tls_server_name;
  // TLS with the system's roots even without the files above ($CURVD_TLS=1).
  bool tls = false;
};

// Fills the TLS and token fields of `options` from `sources` and the
// environment, reading the files they name (a token file's surrounding
// whitespace is dropped). NotFound naming a file that cannot be read;
// InvalidArgument for a certificate without its key (or the reverse) or an
// empty token. Reads the environment: call it before starting threads that
// change it.
absl::Status ApplyCredentials(const CredentialSources& sources,
                              ConnectionOptions* options);

}  // namespace curvd::client

#endif  // CURVD_CLIENT_CONNECTION_CREDENTIALS_H_
