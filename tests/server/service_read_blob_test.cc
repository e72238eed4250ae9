// ReadBlob over the socket: a committed blob streams back whole, in chunks of
// kReadBlobChunkBytes, from any offset; unknown, unfinished and malformed
// digests are refused.
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/blob_download.h"
#include "service_fixture.h"

namespace curvd::server {
namespace {

using ::testing::HasSubstr;

TEST_F(ServiceTest, ReadBlobStreamsAnUploadBackInChunks) {
  max_blob_bytes_ = 3 * kReadBlobChunkBytes;
  RestartServer();
  std::string data(2 * kReadBlobChunkBytes + 5, 'r');
  for (size_t i = 0; i < data.size(); i += 4093) data[i] = static_cast<char>(i);
  const std::string digest = Upload(data);
  std::string read;
  int messages = 0;
  grpc::Status status = Read(digest, 0, &read, &messages);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(messages, 3);
  EXPECT_TRUE(read == data);
  // A reader that lost the stream resumes where it stopped.
  const int64_t offset = kReadBlobChunkBytes + 7;
  ASSERT_TRUE(Read(digest, offset, &read, &messages).ok());
  EXPECT_EQ(messages, 1);
  EXPECT_TRUE(read == data.substr(offset));
  // At the end: nothing more, and OK.
  ASSERT_TRUE(Read(digest, data.size(), &read, &messages).ok());
  EXPECT_EQ(messages, 0);
  status = Read(digest, data.size() + 1, &read);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_THAT(status.error_message(), HasSubstr("past the end"));
}

TEST_F(ServiceTest, ReadBlobRefusesUnknownUnfinishedAndMalformedDigests) {
  std::string read;
  grpc::Status status = Read(Sha256("never uploaded"), 0, &read);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), HasSubstr("is not stored"));
  // An upload stopped half way is not a blob yet.
  const std::string half = std::string(1000, 'h');
  v1::BlobStatus written;
  ASSERT_TRUE(Write(Sha256(half), half.size(), {{0, half.substr(0, 500)}},
                    false, &written)
                  .ok());
  EXPECT_EQ(Read(Sha256(half), 0, &read).error_code(),
            grpc::StatusCode::NOT_FOUND);
  for (const std::string& bad :
       {std::string("sha256:abc"), std::string("md5:") + std::string(64, 'a'),
        std::string("")}) {
    status = Read(bad, 0, &read);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << bad;
  }
  status = Read(Upload("stored"), -1, &read);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("read_offset must be >= 0"));
}

}  // namespace
}  // namespace curvd::server
