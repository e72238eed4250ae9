#include "server/token_auth_processor.h"

#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "common/status_macros.h"

namespace curvd::server {
namespace {

constexpr absl::string_view kUnauthenticatedServices[] = {
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
};

constexpr char kAuthorization[] = "authorization";
constexpr char kPath[] = ":path";
// RFC 6750: the scheme is case-insensitive, one space before the token.
constexpr absl::string_view kBearer = "bearer ";

absl::string_view View(grpc::string_ref ref) {
  return absl::string_view(ref.data(), ref.size());
}

grpc::Status Unauthenticated(const char* message) {
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, message);
}

}  // namespace

bool IsUnauthenticatedMethod(absl::string_view path) {
  for (absl::string_view service : kUnauthenticatedServices) {
    if (absl::StartsWith(path, service)) return true;
  }
  return false;
}

std::string CallerName(const grpc::AuthContext& context) {
  for (const char* property : {kTokenNameProperty, "x509_common_name"}) {
    std::vector<grpc::string_ref> values = context.FindPropertyValues(property);
    if (!values.empty()) return std::string(View(values.front()));
  }
  return "";
}

absl::StatusOr<std::shared_ptr<TokenAuthProcessor>> TokenAuthProcessor::Load(
    const std::string& path) {
  CURVD_ASSIGN_OR_RETURN(BearerTokens tokens, BearerTokens::Load(path));
  return std::shared_ptr<TokenAuthProcessor>(
      new TokenAuthProcessor(path, std::move(tokens)));
}

TokenAuthProcessor::TokenAuthProcessor(std::string path, BearerTokens tokens)
    : path_(std::move(path)),
      tokens_(std::make_shared<const BearerTokens>(std::move(tokens))) {}

grpc::Status TokenAuthProcessor::Process(
    const InputMetadata& auth_metadata, grpc::AuthContext* context,
    OutputMetadata* consumed_auth_metadata,
    OutputMetadata* /*response_metadata*/) {
  auto path = auth_metadata.find(kPath);
  if (path != auth_metadata.end() &&
      IsUnauthenticatedMethod(View(path->second)))
    return grpc::Status::OK;
  auto header = auth_metadata.find(kAuthorization);
  if (header == auth_metadata.end()) {
    return Unauthenticated(
        "curvd needs a bearer token: send \"authorization: Bearer TOKEN\" "
        "metadata");
  }
  absl::string_view value = View(header->second);
  if (!absl::StartsWithIgnoreCase(value, kBearer)) {
    return Unauthenticated(
        "the authorization metadata is not \"Bearer TOKEN\"");
  }
  value.remove_prefix(kBearer.size());
  std::shared_ptr<const BearerTokens> tokens;
  {
    absl::MutexLock lock(&mu_);
    tokens = tokens_;
  }
  std::optional<std::string> name = tokens->Find(value);
  if (!name.has_value()) return Unauthenticated("the bearer token is unknown");
  context->AddProperty(kTokenNameProperty, *name);
  context->SetPeerIdentityPropertyName(kTokenNameProperty);
  consumed_auth_metadata->insert(std::make_pair(
      std::string(kAuthorization),
      std::string(header->second.data(), header->second.size())));
  return grpc::Status::OK;
}

absl::Status TokenAuthProcessor::Reload() {
  CURVD_ASSIGN_OR_RETURN(BearerTokens tokens, BearerTokens::Load(path_));
  auto fresh = std::make_shared<const BearerTokens>(std::move(tokens));
  absl::MutexLock lock(&mu_);
  tokens_ = std::move(fresh);
  return absl::OkStatus();
}

size_t TokenAuthProcessor::size() const {
  absl::MutexLock lock(&mu_);
  return tokens_->size();
}

}  // namespace curvd::server
