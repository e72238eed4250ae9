// TLS, mutual TLS and bearer tokens on a real port, with certificates made at
// test time: who is refused (no token, a wrong one, plain text, no client
// certificate), what stays open (health, on the TLS port and the plain-text
// health port), what a good token does (the whole create, upload, measure,
// list path through the C++ client) and what is recorded (the token's name on
// the run), and reading the token file again.
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "client/curvd_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "health_check.h"
#include "service_fixture.h"
#include "test_certificates.h"

namespace curvd::server {
namespace {

using ::testing::HasSubstr;

constexpr char kGoodToken[] = "good-token-0123456789";
constexpr char kOtherToken[] = "other-token-0123456789";

class AuthTest : public ServiceTest {
 protected:
  // TLS and tokens ("trainer-a" holds kGoodToken), a health port, and stub_
  // over TLS with kGoodToken.
  void SetUp() override {
    WriteTokens(absl::StrCat("trainer-a ", kGoodToken, "\n"));
    security_.tls_cert_file = certificates_.Path("server.pem");
    security_.tls_key_file = certificates_.Path("server.key");
    security_.auth_token_file = token_file_;
    health_listen_ = "127.0.0.1:0";
    channel_credentials_ = Tls(kGoodToken);
    ServiceTest::SetUp();
  }

  void WriteTokens(const std::string& text) {
    std::ofstream(token_file_) << text;
  }

  // TLS trusting the test CA, with `token` ("" for none) and optionally the
  // client certificate.
  std::shared_ptr<grpc::ChannelCredentials> Tls(
      const std::string& token, bool client_certificate = false) const {
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs = certificates_.Read("ca.pem");
    if (client_certificate) {
      tls.pem_cert_chain = certificates_.Read("client.pem");
      tls.pem_private_key = certificates_.Read("client.key");
    }
    std::shared_ptr<grpc::ChannelCredentials> ssl = grpc::SslCredentials(tls);
    if (token.empty()) return ssl;
    return grpc::CompositeChannelCredentials(
        ssl, grpc::AccessTokenCredentials(token));
  }

  std::shared_ptr<grpc::Channel> Channel(
      std::shared_ptr<grpc::ChannelCredentials> credentials) const {
    return grpc::CreateChannel(absl::StrCat("localhost:", server_->port()),
                               std::move(credentials));
  }

  // ListRuns over a new channel with `credentials`, sending `authorization`
  // as metadata when it is not empty.
  grpc::Status ListRuns(std::shared_ptr<grpc::ChannelCredentials> credentials,
                        const std::string& authorization = "") const {
    auto stub = v1::Curvd::NewStub(Channel(std::move(credentials)));
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    if (!authorization.empty())
      context.AddMetadata("authorization", authorization);
    v1::ListRunsResponse response;
    return stub->ListRuns(&context, v1::ListRunsRequest(), &response);
  }

  // The C++ client over TLS with `token`.
  client::Client Client(const std::string& token) const {
    client::ConnectionOptions options;
    options.target = absl::StrCat("localhost:", server_->port());
    options.root_certificates = certificates_.Read("ca.pem");
    options.token = token;
    options.rpc_timeout = absl::Seconds(10);
    return client::Client(options);
  }

  testing::TestCertificates certificates_;
  const std::string token_file_ = certificates_.Path("tokens");
};

TEST_F(AuthTest, MissingAndWrongTokensAreUnauthenticated) {
  const grpc::Status missing = ListRuns(Tls(""));
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(missing.error_message(), HasSubstr("Bearer"));
  EXPECT_EQ(ListRuns(Tls(kOtherToken)).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(ListRuns(Tls(""), absl::StrCat("Basic ", kGoodToken)).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(
      ListRuns(Tls(""), absl::StrCat("Bearer ", kGoodToken, "x")).error_code(),
      grpc::StatusCode::UNAUTHENTICATED);
  // The scheme is case-insensitive (RFC 6750).
  EXPECT_TRUE(ListRuns(Tls(""), absl::StrCat("bearer ", kGoodToken)).ok());
  EXPECT_TRUE(ListRuns(Tls(kGoodToken)).ok());
}

TEST_F(AuthTest, WrongTokensReachNoHandler) {
  v1::CreateRunRequest request;
  request.set_run_id("intruder");
  request.mutable_run()->mutable_model()->mutable_zoo()->set_architecture(
      "mlp");
  auto stub = v1::Curvd::NewStub(Channel(Tls(kOtherToken)));
  grpc::ClientContext context;
  v1::Run run;
  EXPECT_EQ(stub->CreateRun(&context, request, &run).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  v1::ListRunsResponse runs;
  grpc::ClientContext list;
  ASSERT_TRUE(stub_->ListRuns(&list, v1::ListRunsRequest(), &runs).ok());
  EXPECT_EQ(runs.runs_size(), 0);
}

TEST_F(AuthTest, PlainTextClientsAreRefused) {
  const grpc::Status status = ListRuns(grpc::InsecureChannelCredentials(),
                                       absl::StrCat("Bearer ", kGoodToken));
  EXPECT_FALSE(status.ok());
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(AuthTest, HealthNeedsNoTokenOnEitherPort) {
  auto tls = HealthCheck(Channel(Tls("")), "curvd.v1.Curvd");
  ASSERT_TRUE(tls.ok()) << tls.status();
  EXPECT_EQ(*tls, kServing);
  ASSERT_NE(server_->health_port(), 0);
  auto plain =
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->health_port()),
                          grpc::InsecureChannelCredentials());
  auto probe = HealthCheck(plain, "curvd.v1.Curvd");
  ASSERT_TRUE(probe.ok()) << probe.status();
  EXPECT_EQ(*probe, kServing);
  auto whole = HealthCheck(plain, "");
  ASSERT_TRUE(whole.ok()) << whole.status();
  EXPECT_EQ(*whole, kServing);
  // The health port serves nothing else.
  auto stub = v1::Curvd::NewStub(plain);
  grpc::ClientContext context;
  v1::ListRunsResponse response;
  EXPECT_EQ(
      stub->ListRuns(&context, v1::ListRunsRequest(), &response).error_code(),
      grpc::StatusCode::UNIMPLEMENTED);
}

TEST_F(AuthTest, HealthPortGoesNotServingOnShutdown) {
  auto plain =
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->health_port()),
                          grpc::InsecureChannelCredentials());
  ASSERT_TRUE(HealthCheck(plain, "curvd.v1.Curvd").ok());
  control_->Block();
  const std::string checkpoint = CreateCheckpoint("r", 1);
  v1::Measurement m;
  ASSERT_TRUE(CreateMeasurement(checkpoint, SharpnessSpec(), &m).ok());
  ASSERT_TRUE(control_->WaitForStarted(1));
  // Shutdown waits for the blocked measurement's grace; health turns first.
  std::thread stopper(
      [this] { server_->Shutdown(absl::Seconds(5), absl::ZeroDuration()); });
  const std::string kNotServing("\x08\x02", 2);
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  absl::StatusOr<std::string> health;
  do {
    health = HealthCheck(plain, "curvd.v1.Curvd");
  } while (health.ok() && *health == kServing && absl::Now() < deadline);
  control_->Release();
  stopper.join();
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(*health, kNotServing);
}

TEST_F(AuthTest, GoodTokenCreatesUploadsMeasuresListsAndIsRecorded) {
  client::Client client = Client(kGoodToken);
  v1::ModelSpec model;
  model.mutable_zoo()->set_architecture("mlp");
  for (int w : {3, 4, 1}) model.mutable_zoo()->add_layer_widths(w);
  auto run = client.CreateRun("tls-run", model);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->creator(), "trainer-a");
  auto digest = client.UploadBlob(testing::SafetensorsNote("over tls"));
  ASSERT_TRUE(digest.ok()) << digest.status();
  v1::Checkpoint checkpoint;
  checkpoint.set_step(1);
  checkpoint.set_digest(*digest);
  auto created = client.CreateCheckpoint("tls-run", checkpoint);
  ASSERT_TRUE(created.ok()) << created.status();
  auto measurement =
      client.CreateMeasurement(created->name(), SharpnessSpec(), "");
  ASSERT_TRUE(measurement.ok()) << measurement.status();
  auto done =
      client.WaitMeasurement(measurement->name(), nullptr, absl::Seconds(10));
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->state(), v1::Measurement::SUCCEEDED);
  auto measurements = client.ListMeasurements(created->name());
  ASSERT_TRUE(measurements.ok()) << measurements.status();
  EXPECT_EQ(measurements->size(), 1u);

  auto got = client.GetRun("runs/tls-run");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->creator(), "trainer-a");
  auto runs = client.ListRuns();
  ASSERT_TRUE(runs.ok()) << runs.status();
  ASSERT_EQ(runs->size(), 1u);
  EXPECT_EQ(runs->front().creator(), "trainer-a");
  // The record survives a restart (it is part of the stored run).
  RestartServer();
  auto again = Client(kGoodToken).GetRun("runs/tls-run");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->creator(), "trainer-a");
}

TEST_F(AuthTest, ClientWithoutTokenGetsUnauthenticated) {
  EXPECT_EQ(Client("").ListRuns().status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(Client(kOtherToken).ListRuns().status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST_F(AuthTest, ReloadServesTheNewTokens) {
  WriteTokens(absl::StrCat("trainer-b ", kOtherToken, "\n"));
  EXPECT_EQ(ListRuns(Tls(kOtherToken)).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  ASSERT_TRUE(server_->ReloadTokens().ok());
  EXPECT_TRUE(ListRuns(Tls(kOtherToken)).ok());
  EXPECT_EQ(ListRuns(Tls(kGoodToken)).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  auto run = Client(kOtherToken).CreateRun("by-b", [] {
    v1::ModelSpec model;
    model.mutable_zoo()->set_architecture("mlp");
    for (int w : {3, 4, 1}) model.mutable_zoo()->add_layer_widths(w);
    return model;
  }());
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->creator(), "trainer-b");
  // A broken file keeps the tokens served.
  WriteTokens("broken\n");
  EXPECT_EQ(server_->ReloadTokens().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(ListRuns(Tls(kOtherToken)).ok());
}

// Mutual TLS alone: the client certificate authenticates, and its common name
// is the run's creator.
class MutualTlsTest : public AuthTest {
 protected:
  void SetUp() override {
    security_.tls_cert_file = certificates_.Path("server.pem");
    security_.tls_key_file = certificates_.Path("server.key");
    security_.tls_client_ca_file = certificates_.Path("ca.pem");
    channel_credentials_ = Tls("", /*client_certificate=*/true);
    ServiceTest::SetUp();
  }
};

TEST_F(MutualTlsTest, ClientsWithoutACertificateAreRefused) {
  const grpc::Status status = ListRuns(Tls(""));
  EXPECT_FALSE(status.ok());
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_TRUE(ListRuns(Tls("", /*client_certificate=*/true)).ok());
}

TEST_F(MutualTlsTest, TheCertificateNameIsRecorded) {
  EXPECT_EQ(CreateRun("by-cert").creator(), "trainer-cert");
}

TEST_F(ServiceTest, PlainTextServersRecordNoCreator) {
  EXPECT_EQ(CreateRun("anonymous").creator(), "");
}

}  // namespace
}  // namespace curvd::server
