// WriteBlob and GetBlobStatus over the socket: resumable chunked uploads,
// and the errors that keep what was stored.
#include <filesystem>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service_fixture.h"

namespace curvd::server {
namespace {

using ::testing::HasSubstr;

TEST_F(ServiceTest, UploadResumesAfterAPartialStream) {
  const std::string data(3000, 'w');
  const std::string digest = Sha256(data);
  v1::BlobStatus status;
  // The client stops after 1000 bytes without finish_write.
  grpc::Status rpc =
      Write(digest, data.size(), {{0, data.substr(0, 1000)}}, false, &status);
  ASSERT_TRUE(rpc.ok()) << rpc.error_message();
  EXPECT_FALSE(status.complete());
  EXPECT_EQ(status.committed_size_bytes(), 1000);

  v1::GetBlobStatusRequest query;
  query.set_digest(digest);
  grpc::ClientContext context;
  v1::BlobStatus queried;
  ASSERT_TRUE(stub_->GetBlobStatus(&context, query, &queried).ok());
  EXPECT_EQ(queried.committed_size_bytes(), 1000);

  rpc = Write(digest, data.size(),
              {{1000, data.substr(1000, 1000)}, {2000, data.substr(2000)}},
              true, &status);
  ASSERT_TRUE(rpc.ok()) << rpc.error_message();
  EXPECT_TRUE(status.complete());
  EXPECT_EQ(status.committed_size_bytes(), 3000);
  // A stored blob answers at once.
  rpc = Write(digest, data.size(), {{0, ""}}, false, &status);
  ASSERT_TRUE(rpc.ok()) << rpc.error_message();
  EXPECT_TRUE(status.complete());
}

TEST_F(ServiceTest, OffsetMismatchIsFailedPreconditionAndKeepsData) {
  const std::string stored = Upload("an earlier blob that must survive");
  const std::string data(2000, 'x');
  const std::string digest = Sha256(data);
  v1::BlobStatus status;
  ASSERT_TRUE(
      Write(digest, data.size(), {{0, data.substr(0, 500)}}, false, &status)
          .ok());
  grpc::Status rpc = Write(digest, data.size(), {{700, data.substr(700, 100)}},
                           false, &status);
  EXPECT_EQ(rpc.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(rpc.error_message(), HasSubstr("committed size 500"));

  v1::GetBlobStatusRequest query;
  query.set_digest(digest);
  grpc::ClientContext context;
  v1::BlobStatus queried;
  ASSERT_TRUE(stub_->GetBlobStatus(&context, query, &queried).ok());
  EXPECT_EQ(queried.committed_size_bytes(), 500);
  query.set_digest(stored);
  grpc::ClientContext context2;
  ASSERT_TRUE(stub_->GetBlobStatus(&context2, query, &queried).ok());
  EXPECT_TRUE(queried.complete());
}

TEST_F(ServiceTest, DigestMismatchDiscardsThePartialUpload) {
  const std::string stored = Upload("an earlier blob that must survive");
  const std::string claimed = Sha256("something else");
  v1::BlobStatus status;
  grpc::Status rpc = Write(claimed, 10, {{0, "0123456789"}}, true, &status);
  EXPECT_EQ(rpc.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(rpc.error_message(),
              HasSubstr(absl::StrCat("digest mismatch: expected ", claimed,
                                     ", got ", Sha256("0123456789"))));
  v1::GetBlobStatusRequest query;
  query.set_digest(claimed);
  grpc::ClientContext context;
  v1::BlobStatus queried;
  ASSERT_TRUE(stub_->GetBlobStatus(&context, query, &queried).ok());
  EXPECT_EQ(queried.committed_size_bytes(), 0);
  EXPECT_FALSE(queried.complete());
  query.set_digest(stored);
  grpc::ClientContext context2;
  ASSERT_TRUE(stub_->GetBlobStatus(&context2, query, &queried).ok());
  EXPECT_TRUE(queried.complete());
}

TEST_F(ServiceTest, UploadOverTheLimitIsResourceExhaustedBeforeWriting) {
  const std::string data(kMaxBlobBytes + 1, 'b');
  v1::BlobStatus status;
  grpc::Status rpc = Write(Sha256(data), data.size(),
                           {{0, data.substr(0, 100)}}, false, &status);
  EXPECT_EQ(rpc.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(std::filesystem::is_empty(state_dir_ + "/blobs/partial"));
  EXPECT_FALSE(CreateCheckpoint("after-limit", 1).empty());  // still serving
}


}  // namespace
}  // namespace curvd::server
