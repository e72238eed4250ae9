// The client library against an in-process fake of the service on a loopback
// port: chunking and resume of uploads, watch reattachment, pagination, and
// status mapping.
#include "client/curvd_client.h"

#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace curvd::client {
namespace {

namespace v1 = ::curvd::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

struct Chunk {
  int64_t offset;
  size_t size;
  bool finish;
};

class FakeCurvd final : public v1::Curvd::Service {
 public:
  grpc::Status GetBlobStatus(grpc::ServerContext*,
                             const v1::GetBlobStatusRequest* request,
                             v1::BlobStatus* response) override {
    absl::MutexLock lock(&mu);
    if (committed.count(request->digest()) == 0) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such blob");
    }
    response->set_digest(request->digest());
    response->set_committed_size_bytes(committed[request->digest()]);
    response->set_complete(complete.count(request->digest()) > 0);
    return grpc::Status::OK;
  }

  grpc::Status WriteBlob(grpc::ServerContext*,
                         grpc::ServerReader<v1::WriteBlobRequest>* reader,
                         v1::BlobStatus* response) override {
    v1::WriteBlobRequest request;
    std::string digest;
    int64_t size = 0;
    bool finished = false;
    absl::MutexLock lock(&mu);
    ++write_calls;
    while (reader->Read(&request)) {
      if (!request.digest().empty()) {
        digest = request.digest();
        size = request.size_bytes();
      }
      chunks.push_back({request.write_offset(), request.data().size(),
                        request.finish_write()});
      if (request.write_offset() != committed[digest]) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bad offset");
      }
      committed[digest] += static_cast<int64_t>(request.data().size());
      finished = request.finish_write();
    }
    if (finished && committed[digest] == size) complete.insert(digest);
    response->set_digest(digest);
    response->set_committed_size_bytes(committed[digest]);
    response->set_complete(complete.count(digest) > 0);
    return grpc::Status::OK;
  }

  grpc::Status GetRun(grpc::ServerContext*, const v1::GetRunRequest* request,
                      v1::Run*) override {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat(request->name(), " not found"));
  }

  grpc::Status ListRuns(grpc::ServerContext*,
                        const v1::ListRunsRequest* request,
                        v1::ListRunsResponse* response) override {
    absl::MutexLock lock(&mu);
    ++list_calls;
    int start =
        request->page_token().empty() ? 0 : std::stoi(request->page_token());
    int end = std::min<int>(start + request->page_size(), 5);
    for (int i = start; i < end; ++i) {
      response->add_runs()->set_name(absl::StrCat("runs/r", i));
    }
    if (end < 5) response->set_next_page_token(absl::StrCat(end));
    return grpc::Status::OK;
  }

  // Scripted: the first stream breaks, the second ends early, the third
  // finishes.
  grpc::Status WatchMeasurement(
      grpc::ServerContext*, const v1::WatchMeasurementRequest* request,
      grpc::ServerWriter<v1::Measurement>* writer) override {
    if (request->name() == "missing") {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such measurement");
    }
    int call;
    {
      absl::MutexLock lock(&mu);
      call = ++watch_calls;
    }
    v1::Measurement m;
    m.set_name(request->name());
    if (call == 1) {
      m.set_state(v1::Measurement::QUEUED);
      writer->Write(m);
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "server restarting");
    }
    if (call == 2) {
      m.set_state(v1::Measurement::RUNNING);
      writer->Write(m);
      return grpc::Status::OK;
    }
    m.set_state(v1::Measurement::FAILED);
    m.set_error_message("NaN weights");
    writer->Write(m);
    return grpc::Status::OK;
  }

  absl::Mutex mu;
  std::map<std::string, int64_t> committed ABSL_GUARDED_BY(mu);
  std::set<std::string> complete ABSL_GUARDED_BY(mu);
  std::vector<Chunk> chunks ABSL_GUARDED_BY(mu);
  int write_calls ABSL_GUARDED_BY(mu) = 0;
  int list_calls ABSL_GUARDED_BY(mu) = 0;
  int watch_calls ABSL_GUARDED_BY(mu) = 0;
};

class CurvdClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(&fake_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ConnectionOptions options;
    options.target = absl::StrCat("127.0.0.1:", port);
    client_ = std::make_unique<Client>(options);
  }
  void TearDown() override { server_->Shutdown(); }

  FakeCurvd fake_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<Client> client_;
};

TEST(Sha256DigestTest, KnownAnswer) {
  EXPECT_EQ(Sha256Digest("abc"),
            "sha256:"
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256Digest(""),
            "sha256:"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST_F(CurvdClientTest, UploadsInMebibyteChunksAndCommits) {
  const std::string blob(kUploadChunkBytes * 2 + 1000, 'x');
  absl::StatusOr<std::string> digest = client_->UploadBlob(blob);
  ASSERT_TRUE(digest.ok()) << digest.status();
  EXPECT_EQ(*digest, Sha256Digest(blob));
  absl::MutexLock lock(&fake_.mu);
  ASSERT_EQ(fake_.chunks.size(), 3u);
  EXPECT_EQ(fake_.chunks[0].offset, 0);
  EXPECT_EQ(fake_.chunks[0].size, static_cast<size_t>(kUploadChunkBytes));
  EXPECT_FALSE(fake_.chunks[0].finish);
  EXPECT_EQ(fake_.chunks[1].offset, kUploadChunkBytes);
  EXPECT_EQ(fake_.chunks[2].offset, 2 * kUploadChunkBytes);
  EXPECT_EQ(fake_.chunks[2].size, 1000u);
  EXPECT_TRUE(fake_.chunks[2].finish);
  EXPECT_EQ(fake_.complete.count(*digest), 1u);
}

TEST_F(CurvdClientTest, ResumesAtTheCommittedOffset) {
  const std::string blob(kUploadChunkBytes + 10, 'y');
  {
    absl::MutexLock lock(&fake_.mu);
    fake_.committed[Sha256Digest(blob)] = kUploadChunkBytes;
  }
  ASSERT_TRUE(client_->UploadBlob(blob).ok());
  absl::MutexLock lock(&fake_.mu);
  ASSERT_EQ(fake_.chunks.size(), 1u);
  EXPECT_EQ(fake_.chunks[0].offset, kUploadChunkBytes);
  EXPECT_EQ(fake_.chunks[0].size, 10u);
  EXPECT_TRUE(fake_.chunks[0].finish);
}

TEST_F(CurvdClientTest, StoredBlobIsNotSentAgain) {
  const std::string blob = "already there";
  {
    absl::MutexLock lock(&fake_.mu);
    fake_.committed[Sha256Digest(blob)] = static_cast<int64_t>(blob.size());
    fake_.complete.insert(Sha256Digest(blob));
  }
  ASSERT_TRUE(client_->UploadBlob(blob).ok());
  absl::MutexLock lock(&fake_.mu);
  EXPECT_EQ(fake_.write_calls, 0);
}

TEST_F(CurvdClientTest, EmptyBlobSendsOneFinishingMessage) {
  ASSERT_TRUE(client_->UploadBlob("").ok());
  absl::MutexLock lock(&fake_.mu);
  ASSERT_EQ(fake_.chunks.size(), 1u);
  EXPECT_EQ(fake_.chunks[0].size, 0u);
  EXPECT_TRUE(fake_.chunks[0].finish);
}

TEST_F(CurvdClientTest, WaitReattachesUntilTerminal) {
  std::vector<v1::Measurement::State> seen;
  absl::StatusOr<v1::Measurement> done = client_->WaitMeasurement(
      "runs/r/checkpoints/1/measurements/m",
      [&](const v1::Measurement& m) { seen.push_back(m.state()); },
      absl::Seconds(30));
  ASSERT_TRUE(done.ok()) << done.status();
  // A FAILED measurement is data, not an error of the wait.
  EXPECT_EQ(done->state(), v1::Measurement::FAILED);
  EXPECT_EQ(done->error_message(), "NaN weights");
  EXPECT_THAT(seen,
              ElementsAre(v1::Measurement::QUEUED, v1::Measurement::RUNNING,
                          v1::Measurement::FAILED));
  absl::MutexLock lock(&fake_.mu);
  EXPECT_EQ(fake_.watch_calls, 3);
}

TEST_F(CurvdClientTest, WaitReturnsNotFoundAtOnce) {
  absl::StatusOr<v1::Measurement> done =
      client_->WaitMeasurement("missing", nullptr, absl::Seconds(30));
  EXPECT_TRUE(absl::IsNotFound(done.status())) << done.status();
}

TEST_F(CurvdClientTest, ListFollowsEveryPage) {
  absl::StatusOr<std::vector<v1::Run>> runs =
      client_->ListRuns(/*page_size=*/2);
  ASSERT_TRUE(runs.ok()) << runs.status();
  std::vector<std::string> names;
  for (const v1::Run& run : *runs) names.push_back(run.name());
  EXPECT_THAT(names, ElementsAre("runs/r0", "runs/r1", "runs/r2", "runs/r3",
                                 "runs/r4"));
  absl::MutexLock lock(&fake_.mu);
  EXPECT_EQ(fake_.list_calls, 3);
}

TEST_F(CurvdClientTest, MapsGrpcStatusToAbsl) {
  absl::StatusOr<v1::Run> run = client_->GetRun("runs/nope");
  EXPECT_TRUE(absl::IsNotFound(run.status()));
  EXPECT_THAT(run.status().message(), HasSubstr("runs/nope not found"));
}

}  // namespace
}  // namespace curvd::client
