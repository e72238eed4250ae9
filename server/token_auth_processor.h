// The bearer-token check of a TLS server: a grpc::AuthMetadataProcessor that
// admits a call whose "authorization: Bearer TOKEN" header names a known token
// and records the token's name in the call's AuthContext. docs/adr/0017 says
// why the check lives here rather than in an interceptor or the handlers.
#ifndef CURVD_SERVER_TOKEN_AUTH_PROCESSOR_H_
#define CURVD_SERVER_TOKEN_AUTH_PROCESSOR_H_

#include <grpcpp/security/auth_context.h>
#include <grpcpp/security/auth_metadata_processor.h>

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "server/bearer_tokens.h"

namespace curvd::server {

// The AuthContext property holding the name of the caller's token; it is the
// call's peer identity.
inline constexpr char kTokenNameProperty[] = "curvd_token_name";

// Whether the method at `path` ("/package.Service/Method") is served without a
// token: grpc.health.v1 and server reflection, which Kubernetes probes and
// grpcurl reach with no credentials. Pure.
bool IsUnauthenticatedMethod(absl::string_view path);

// Who made the call in `context`, for the record: the name of its bearer token,
// else the common name of its TLS client certificate, else "" (a server that
// does not authenticate). Thread-safe.
std::string CallerName(const grpc::AuthContext& context);

class TokenAuthProcessor final : public grpc::AuthMetadataProcessor {
 public:
  // Reads the tokens of the file at `path` (BearerTokens::Load); its errors.
  static absl::StatusOr<std::shared_ptr<TokenAuthProcessor>> Load(
      const std::string& path);

  // Processing is a hash and a few comparisons: it runs on gRPC's thread.
  bool IsBlocking() const override { return false; }

  // OK for IsUnauthenticatedMethod paths; otherwise OK with kTokenNameProperty
  // set and the header consumed (handlers never see the token) when the
  // header's token is known, UNAUTHENTICATED (naming neither tokens nor names)
  // when the header is missing, is not a Bearer token or names no token.
  // Thread-safe.
  grpc::Status Process(const InputMetadata& auth_metadata,
                       grpc::AuthContext* context,
                       OutputMetadata* consumed_auth_metadata,
                       OutputMetadata* response_metadata) override;

  // Reads the file again and, when it parses, serves its tokens from the next
  // call on; otherwise keeps the current ones and returns the error.
  // Thread-safe.
  absl::Status Reload();

  // How many tokens are served now.
  size_t size() const;

 private:
  TokenAuthProcessor(std::string path, BearerTokens tokens);

  const std::string path_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const BearerTokens> tokens_ ABSL_GUARDED_BY(mu_);
};

}  // namespace curvd::server

#endif  // CURVD_SERVER_TOKEN_AUTH_PROCESSOR_H_
