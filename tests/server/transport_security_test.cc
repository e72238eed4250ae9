#include "server/transport_security.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace curvd::server {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

TEST(IsLoopbackAddressTest, KnowsLoopbackFromEverythingElse) {
  for (const char* local : {"127.0.0.1:50051", "127.1.2.3:0", "localhost:1",
                            "[::1]:50051", "unix:/tmp/curvd.sock"}) {
    EXPECT_TRUE(IsLoopbackAddress(local)) << local;
  }
  for (const char* remote :
       {"0.0.0.0:50051", "[::]:50051", "10.0.0.7:50051", "curvd:50051",
        "128.0.0.1:1", "127.0.0.1.example.com:1", "localhost.example:1",
        ":50051", "127.0.0.256:1"}) {
    EXPECT_FALSE(IsLoopbackAddress(remote)) << remote;
  }
}

SecurityOptions Tls() {
  SecurityOptions security;
  security.tls_cert_file = "server.pem";
  security.tls_key_file = "server.key";
  return security;
}

TEST(ValidateSecurityOptionsTest, LoopbackMayBePlainText) {
  EXPECT_TRUE(ValidateSecurityOptions("127.0.0.1:50051", {}).ok());
  EXPECT_TRUE(ValidateSecurityOptions("127.0.0.1:50051", Tls()).ok());
}

TEST(ValidateSecurityOptionsTest, OtherAddressesNeedTlsAndAuthentication) {
  const absl::Status plain = ValidateSecurityOptions("0.0.0.0:50051", {});
  EXPECT_EQ(plain.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(plain.message()), HasSubstr("--insecure"));
  EXPECT_EQ(ValidateSecurityOptions("0.0.0.0:50051", Tls()).code(),
            absl::StatusCode::kInvalidArgument);

  SecurityOptions tokens = Tls();
  tokens.auth_token_file = "tokens";
  EXPECT_TRUE(ValidateSecurityOptions("0.0.0.0:50051", tokens).ok());
  SecurityOptions mutual = Tls();
  mutual.tls_client_ca_file = "ca.pem";
  EXPECT_TRUE(ValidateSecurityOptions("0.0.0.0:50051", mutual).ok());
  SecurityOptions insecure;
  insecure.insecure = true;
  EXPECT_TRUE(ValidateSecurityOptions("0.0.0.0:50051", insecure).ok());
}

TEST(ValidateSecurityOptionsTest, RefusesHalfConfigurations) {
  SecurityOptions cert_only;
  cert_only.tls_cert_file = "server.pem";
  EXPECT_THAT(
      std::string(ValidateSecurityOptions("127.0.0.1:1", cert_only).message()),
      HasSubstr("--tls_key_file"));
  SecurityOptions ca_only;
  ca_only.tls_client_ca_file = "ca.pem";
  EXPECT_THAT(
      std::string(ValidateSecurityOptions("127.0.0.1:1", ca_only).message()),
      HasSubstr("--tls_client_ca_file needs TLS"));
  // Tokens in clear are refused even on loopback (and with --insecure).
  SecurityOptions tokens_only;
  tokens_only.auth_token_file = "tokens";
  tokens_only.insecure = true;
  EXPECT_THAT(
      std::string(
          ValidateSecurityOptions("127.0.0.1:1", tokens_only).message()),
      HasSubstr("--auth_token_file needs TLS"));
}

TEST(SecurityWarningsTest, WarnsOfInsecureServingAndOpenMetrics) {
  EXPECT_THAT(SecurityWarnings("127.0.0.1:1", "127.0.0.1:9464", {}), IsEmpty());
  EXPECT_THAT(SecurityWarnings("127.0.0.1:1", "", {}), IsEmpty());
  SecurityOptions insecure;
  insecure.insecure = true;
  std::vector<std::string> warnings =
      SecurityWarnings("0.0.0.0:50051", "0.0.0.0:9464", insecure);
  ASSERT_THAT(warnings, SizeIs(2));
  EXPECT_THAT(warnings[0],
              HasSubstr("serving 0.0.0.0:50051 without TLS or authentication"));
  EXPECT_THAT(warnings[1], HasSubstr("/metrics on 0.0.0.0:9464"));
  SecurityOptions tokens = Tls();
  tokens.auth_token_file = "tokens";
  EXPECT_THAT(SecurityWarnings("0.0.0.0:50051", "", tokens), IsEmpty());
}

}  // namespace
}  // namespace curvd::server
