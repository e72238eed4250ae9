// The client library against an in-process fake of the service on a loopback
// port: chunking and resume of uploads and reads, watch reattachment,
// pagination, status mapping, and `curvctl export` of a gop result's arrays.
#include "client/curvd_client.h"

#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "client/curvctl_commands.h"
#include "client/gop_export.h"
#include "core/api/safetensors.h"
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

  // Streams `blobs` in chunks of 4 bytes; the first stream breaks after one.
  grpc::Status ReadBlob(
      grpc::ServerContext*, const v1::ReadBlobRequest* request,
      grpc::ServerWriter<v1::ReadBlobResponse>* writer) override {
    std::string blob;
    int call;
    {
      absl::MutexLock lock(&mu);
      if (blobs.count(request->digest()) == 0) {
        return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such blob");
      }
      blob = blobs[request->digest()];
      read_offsets.push_back(request->read_offset());
      call = static_cast<int>(read_offsets.size());
    }
    for (size_t at = request->read_offset(); at < blob.size(); at += 4) {
      v1::ReadBlobResponse chunk;
      chunk.set_data(blob.substr(at, 4));
      writer->Write(chunk);
      if (call == 1) {
        return grpc::Status(grpc::StatusCode::UNAVAILABLE, "connection lost");
      }
    }
    return grpc::Status::OK;
  }

  grpc::Status GetMeasurement(grpc::ServerContext*,
                              const v1::GetMeasurementRequest* request,
                              v1::Measurement* response) override {
    absl::MutexLock lock(&mu);
    if (measurements.count(request->name()) == 0) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such measurement");
    }
    *response = measurements[request->name()];
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

  // Two pages of one measurement each; records the views asked for.
  grpc::Status ListMeasurements(grpc::ServerContext*,
                                const v1::ListMeasurementsRequest* request,
                                v1::ListMeasurementsResponse* response) override {
    absl::MutexLock lock(&mu);
    list_views.push_back(request->view());
    const bool first = request->page_token().empty();
    response->add_measurements()->set_name(first ? "m0" : "m1");
    if (first) response->set_next_page_token("1");
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
  std::map<std::string, std::string> blobs ABSL_GUARDED_BY(mu);
  std::vector<int64_t> read_offsets ABSL_GUARDED_BY(mu);
  std::map<std::string, v1::Measurement> measurements ABSL_GUARDED_BY(mu);
  int write_calls ABSL_GUARDED_BY(mu) = 0;
  int list_calls ABSL_GUARDED_BY(mu) = 0;
  std::vector<v1::View> list_views ABSL_GUARDED_BY(mu);
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

TEST_F(CurvdClientTest, ListMeasurementsAsksForItsViewOnEveryPage) {
  absl::StatusOr<std::vector<v1::Measurement>> basic =
      client_->ListMeasurements("runs/r/checkpoints/-");
  ASSERT_TRUE(basic.ok()) << basic.status();
  EXPECT_EQ(basic->size(), 2u);
  ASSERT_TRUE(client_->ListMeasurements("runs/r/checkpoints/-", 1,
                                        v1::VIEW_FULL)
                  .ok());
  absl::MutexLock lock(&fake_.mu);
  EXPECT_THAT(fake_.list_views,
              ElementsAre(v1::VIEW_BASIC, v1::VIEW_BASIC, v1::VIEW_FULL,
                          v1::VIEW_FULL));
}

TEST_F(CurvdClientTest, MapsGrpcStatusToAbsl) {
  absl::StatusOr<v1::Run> run = client_->GetRun("runs/nope");
  EXPECT_TRUE(absl::IsNotFound(run.status()));
  EXPECT_THAT(run.status().message(), HasSubstr("runs/nope not found"));
}

TEST_F(CurvdClientTest, ReadBlobResumesAfterABreakAndChecksTheDigest) {
  const std::string data = "the bytes of a stored blob";
  {
    absl::MutexLock lock(&fake_.mu);
    fake_.blobs[Sha256Digest(data)] = data;
    fake_.blobs[Sha256Digest("other")] = data;
  }
  absl::StatusOr<std::string> read = client_->ReadBlob(Sha256Digest(data));
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, data);
  {
    absl::MutexLock lock(&fake_.mu);
    EXPECT_THAT(fake_.read_offsets, ElementsAre(0, 4));
  }
  EXPECT_EQ(client_->ReadBlob(Sha256Digest("other")).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(client_->ReadBlob(Sha256Digest("missing")).status().code(),
            absl::StatusCode::kNotFound);
}

core::SafetensorsTensor F64(const std::string& name,
                            std::vector<int64_t> shape,
                            const std::vector<double>& values) {
  core::SafetensorsTensor t;
  t.name = name;
  t.dtype = "F64";
  t.shape = std::move(shape);
  t.data.assign(reinterpret_cast<const char*>(values.data()),
                values.size() * sizeof(double));
  return t;
}

std::vector<double> Values(const core::SafetensorsTensor& t) {
  std::vector<double> values(t.data.size() / sizeof(double));
  std::memcpy(values.data(), t.data.data(), t.data.size());
  return values;
}

// A SUCCEEDED gop of M = 2 with one eigenvector in a blob and one layer.
v1::Measurement GopMeasurement(const std::string& blob_digest) {
  v1::Measurement m;
  m.set_name("runs/r/checkpoints/1/measurements/g");
  m.set_state(v1::Measurement::SUCCEEDED);
  v1::GopResult* gop = m.mutable_gop();
  gop->set_num_parameters(2);
  gop->mutable_metrics()->add_eigenvalues(3);
  gop->mutable_metrics()->add_eigenvalues(1);
  gop->mutable_metrics()->add_top_eigenvalues(3);
  gop->mutable_metrics()->add_top_eigenvalues(1);
  gop->set_num_eigenvectors(1);
  gop->set_eigenvectors_blob_digest(blob_digest);
  gop->add_eigenvectors_shape(1);
  gop->add_eigenvectors_shape(2);
  v1::GopLayer* layer = gop->add_layers();
  layer->set_name("fc0");
  layer->mutable_metrics()->add_eigenvalues(2.5);
  return m;
}

TEST_F(CurvdClientTest, ExportWritesAGopResultsArraysAsSafetensors) {
  const std::string blob =
      core::SerializeSafetensors({F64("eigenvalues", {1}, {3}),
                                  F64("eigenvectors", {1, 2}, {0.6, 0.8})})
          .value();
  const v1::Measurement m = GopMeasurement(Sha256Digest(blob));
  v1::Measurement sharpness;
  sharpness.set_name("runs/r/checkpoints/1/measurements/s");
  sharpness.set_state(v1::Measurement::SUCCEEDED);
  sharpness.mutable_sharpness();
  {
    absl::MutexLock lock(&fake_.mu);
    fake_.blobs[Sha256Digest(blob)] = blob;
    fake_.measurements[m.name()] = m;
    fake_.measurements[sharpness.name()] = sharpness;
  }
  const std::string path = ::testing::TempDir() + "/gop_export.safetensors";
  std::ostringstream out, err;
  ASSERT_EQ(RunCurvctl({"export", m.name(), "--server",
                        client_->options().target, "--out", path},
                       out, err),
            kExitOk)
      << err.str();
  auto tensors = core::ReadSafetensorsFile(path);
  ASSERT_TRUE(tensors.ok()) << tensors.status();
  ASSERT_EQ(tensors->size(), 4u);
  EXPECT_EQ((*tensors)[0].name, "eigenvalues");
  EXPECT_THAT(Values((*tensors)[0]), ElementsAre(3, 1));
  EXPECT_EQ((*tensors)[1].name, "eigenvectors");
  EXPECT_THAT((*tensors)[1].shape, ElementsAre(1, 2));
  EXPECT_THAT(Values((*tensors)[1]), ElementsAre(0.6, 0.8));
  EXPECT_EQ((*tensors)[2].name, "layers.fc0.eigenvalues");
  EXPECT_THAT(Values((*tensors)[2]), ElementsAre(2.5));
  EXPECT_EQ((*tensors)[3].name, "top_eigenvalues");
  EXPECT_THAT(Values((*tensors)[3]), ElementsAre(3, 1));

  std::ostringstream no_gop;
  EXPECT_EQ(RunCurvctl({"export", sharpness.name(), "--server",
                        client_->options().target, "--out", path},
                       out, no_gop),
            kExitError);
  EXPECT_THAT(no_gop.str(), HasSubstr("measured no gop"));
  std::ostringstream no_out;
  EXPECT_EQ(RunCurvctl({"export", m.name()}, out, no_out), kExitUsage);
  EXPECT_THAT(no_out.str(), HasSubstr("--out is required"));
}

// A result stored before the eigenvectors became blobs carries them in the
// message; one whose blob has another shape is refused.
TEST(GopExportFileTest, TakesInMessageEigenvectorsAndChecksShapes) {
  v1::GopResult old = GopMeasurement("").gop();
  old.clear_eigenvectors_shape();
  old.add_eigenvectors(0.6);
  old.add_eigenvectors(0.8);
  auto file = GopExportFile(old, "");
  ASSERT_TRUE(file.ok()) << file.status();
  auto tensors = core::ParseSafetensors(*file);
  ASSERT_TRUE(tensors.ok()) << tensors.status();
  EXPECT_EQ((*tensors)[1].name, "eigenvectors");
  EXPECT_THAT(Values((*tensors)[1]), ElementsAre(0.6, 0.8));
  const std::string wrong =
      core::SerializeSafetensors({F64("eigenvectors", {2, 1}, {0.6, 0.8})})
          .value();
  EXPECT_EQ(GopExportFile(GopMeasurement("d").gop(), wrong).status().code(),
            absl::StatusCode::kInvalidArgument);
  old.add_eigenvectors(0.1);
  EXPECT_EQ(GopExportFile(old, "").status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace curvd::client
