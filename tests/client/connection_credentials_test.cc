#include "client/connection_credentials.h"

#include <stdlib.h>

#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace curvd::client {
namespace {

using ::testing::HasSubstr;

constexpr const char* kVariables[] = {
    "CURVD_TOKEN",          "CURVD_TOKEN_FILE", "CURVD_TLS_CA",
    "CURVD_TLS_CERT",       "CURVD_TLS_KEY",    "CURVD_TLS",
    "CURVD_TLS_SERVER_NAME"};

class ApplyCredentialsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : kVariables) unsetenv(name);
  }
  void TearDown() override { SetUp(); }

  // A file under the test's temporary directory holding `contents`.
  std::string File(const std::string& name, const std::string& contents) {
    const std::string path = ::testing::TempDir() + "/" + name;
    std::ofstream(path) << contents;
    return path;
  }
};

TEST_F(ApplyCredentialsTest, NothingGivenIsPlainText) {
  ConnectionOptions options;
  ASSERT_TRUE(ApplyCredentials({}, &options).ok());
  EXPECT_FALSE(options.UsesTls());
  EXPECT_EQ(options.token, "");
}

TEST_F(ApplyCredentialsTest, FlagsReadTheirFiles) {
  CredentialSources sources;
  sources.token_file = File("token", "  secret-token\n");
  sources.tls_ca_file = File("ca.pem", "CA PEM");
  sources.tls_cert_file = File("client.pem", "CERT PEM");
  sources.tls_key_file = File("client.key", "KEY PEM");
  sources.tls_server_name = "curvd.example";
  ConnectionOptions options;
  ASSERT_TRUE(ApplyCredentials(sources, &options).ok());
  EXPECT_EQ(options.token, "secret-token");
  EXPECT_EQ(options.root_certificates, "CA PEM");
  EXPECT_EQ(options.client_certificate, "CERT PEM");
  EXPECT_EQ(options.client_key, "KEY PEM");
  EXPECT_EQ(options.tls_server_name, "curvd.example");
  EXPECT_TRUE(options.UsesTls());
}

TEST_F(ApplyCredentialsTest, TheEnvironmentFillsWhatFlagsLeaveEmpty) {
  setenv("CURVD_TOKEN_FILE", File("env-token", "from-file\n").c_str(), 1);
  setenv("CURVD_TLS_CA", File("env-ca.pem", "ENV CA").c_str(), 1);
  ConnectionOptions options;
  ASSERT_TRUE(ApplyCredentials({}, &options).ok());
  EXPECT_EQ(options.token, "from-file");
  EXPECT_EQ(options.root_certificates, "ENV CA");

  // $CURVD_TOKEN wins over $CURVD_TOKEN_FILE; --token_file over both.
  setenv("CURVD_TOKEN", "from-env", 1);
  ASSERT_TRUE(ApplyCredentials({}, &options).ok());
  EXPECT_EQ(options.token, "from-env");
  CredentialSources flag;
  flag.token_file = File("flag-token", "from-flag");
  ASSERT_TRUE(ApplyCredentials(flag, &options).ok());
  EXPECT_EQ(options.token, "from-flag");
}

TEST_F(ApplyCredentialsTest, TlsAloneAndTokensImplyTls) {
  setenv("CURVD_TLS", "1", 1);
  ConnectionOptions options;
  ASSERT_TRUE(ApplyCredentials({}, &options).ok());
  EXPECT_TRUE(options.UsesTls());
  ConnectionOptions token_only;
  token_only.token = "t";
  EXPECT_TRUE(token_only.UsesTls());
}

TEST_F(ApplyCredentialsTest, RefusesMissingFilesEmptyTokensAndHalfPairs) {
  ConnectionOptions options;
  CredentialSources missing;
  missing.tls_ca_file = "/no/such/ca.pem";
  const absl::Status not_found = ApplyCredentials(missing, &options);
  EXPECT_EQ(not_found.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(not_found.message()), HasSubstr("/no/such/ca.pem"));
  CredentialSources empty;
  empty.token_file = File("empty-token", "\n");
  EXPECT_EQ(ApplyCredentials(empty, &options).code(),
            absl::StatusCode::kInvalidArgument);
  CredentialSources half;
  half.tls_cert_file = File("only.pem", "CERT");
  EXPECT_EQ(ApplyCredentials(half, &options).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace curvd::client
