// The client library against two in-process fake replicas on loopback ports:
// a refusal naming the owner (FAILED_PRECONDITION with the curvd-owner
// trailer) is followed once and remembered for the run, for unary calls,
// uploads and watches; ListRunsOfEveryReplica fans out over the addresses the
// target names (docs/adr/0019).
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "client/curvd_client.h"
#include "gtest/gtest.h"

namespace curvd::client {
namespace {

namespace v1 = ::curvd::v1;

// A replica that holds the runs named in `mine` and refuses the others,
// naming `owner` when it is set.
class FakeReplica final : public v1::Curvd::Service {
 public:
  grpc::Status GetRun(grpc::ServerContext* context,
                      const v1::GetRunRequest* request,
                      v1::Run* response) override {
    if (grpc::Status refused = Refuse(context, request->name());
        !refused.ok()) {
      return refused;
    }
    response->set_name(request->name());
    return grpc::Status::OK;
  }

  grpc::Status GetBlobStatus(grpc::ServerContext* context,
                             const v1::GetBlobStatusRequest* request,
                             v1::BlobStatus* response) override {
    if (grpc::Status refused = Refuse(context, request->run()); !refused.ok()) {
      return refused;
    }
    response->set_digest(request->digest());
    response->set_complete(true);
    return grpc::Status::OK;
  }

  grpc::Status WatchMeasurement(
      grpc::ServerContext* context, const v1::WatchMeasurementRequest* request,
      grpc::ServerWriter<v1::Measurement>* writer) override {
    if (grpc::Status refused = Refuse(context, request->name());
        !refused.ok()) {
      return refused;
    }
    v1::Measurement done;
    done.set_name(request->name());
    done.set_state(v1::Measurement::SUCCEEDED);
    writer->Write(done);
    return grpc::Status::OK;
  }

  grpc::Status ListRuns(grpc::ServerContext* context,
                        const v1::ListRunsRequest*,
                        v1::ListRunsResponse* response) override {
    if (!replicas.empty())
      context->AddTrailingMetadata("curvd-replicas", replicas);
    response->add_runs()->set_name(mine);
    return grpc::Status::OK;
  }

  int calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }

  // The run this replica holds ("runs/a"), the owner's address it names for
  // the others, and the set's addresses ListRuns names.
  std::string mine;
  std::string owner;
  std::string replicas;

 private:
  grpc::Status Refuse(grpc::ServerContext* context, const std::string& name) {
    {
      absl::MutexLock lock(&mu_);
      ++calls_;
    }
    if (name.rfind(mine, 0) == 0) return grpc::Status::OK;
    if (!owner.empty()) context->AddTrailingMetadata("curvd-owner", owner);
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        absl::StrCat(name, " is held by another replica"));
  }

  absl::Mutex mu_;
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
};

class ReplicaRedirectTest : public ::testing::Test {
 protected:
  void SetUp() override {
    a_.mine = "runs/a";
    b_.mine = "runs/b";
    std::string addresses[2];
    FakeReplica* fakes[2] = {&a_, &b_};
    for (int i = 0; i < 2; ++i) {
      grpc::ServerBuilder builder;
      int port = 0;
      builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                               &port);
      builder.RegisterService(fakes[i]);
      servers_[i] = builder.BuildAndStart();
      ASSERT_NE(servers_[i], nullptr);
      addresses[i] = absl::StrCat("127.0.0.1:", port);
    }
    a_.owner = addresses[1];
    a_.replicas = b_.replicas = absl::StrCat(addresses[0], ",", addresses[1]);
    ConnectionOptions options;
    options.target = addresses[0];
    client_ = std::make_unique<Client>(options);
  }
  void TearDown() override {
    for (auto& server : servers_) server->Shutdown();
  }

  FakeReplica a_, b_;
  std::unique_ptr<grpc::Server> servers_[2];
  std::unique_ptr<Client> client_;
};

TEST_F(ReplicaRedirectTest, FollowsTheOwnerOnceAndRemembersItForTheRun) {
  absl::StatusOr<v1::Run> run = client_->GetRun("runs/b");
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->name(), "runs/b");
  EXPECT_EQ(a_.calls(), 1);
  EXPECT_EQ(b_.calls(), 1);
  // Later calls about runs/b go straight to its replica, uploads too.
  ASSERT_TRUE(client_->GetRun("runs/b").ok());
  ASSERT_TRUE(client_->UploadBlob("bytes", "b").ok());
  EXPECT_EQ(a_.calls(), 1);
  EXPECT_EQ(b_.calls(), 3);
  // runs/a is still the target's.
  ASSERT_TRUE(client_->GetRun("runs/a").ok());
  EXPECT_EQ(a_.calls(), 2);
}

TEST_F(ReplicaRedirectTest, AWatchFollowsTheOwner) {
  absl::StatusOr<v1::Measurement> done = client_->WaitMeasurement(
      "runs/b/checkpoints/0/measurements/m", nullptr, absl::Seconds(10));
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->state(), v1::Measurement::SUCCEEDED);
  EXPECT_EQ(b_.calls(), 1);
}

TEST_F(ReplicaRedirectTest, ARefusalThatNamesNoOwnerIsReturned) {
  a_.owner.clear();
  absl::StatusOr<v1::Run> run = client_->GetRun("runs/b");
  EXPECT_EQ(run.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(b_.calls(), 0);
}

TEST_F(ReplicaRedirectTest, ListsEveryReplicasRunsOrOnlyTheTargets) {
  absl::StatusOr<std::vector<v1::Run>> all = client_->ListRunsOfEveryReplica();
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].name(), "runs/a");
  EXPECT_EQ((*all)[1].name(), "runs/b");
  absl::StatusOr<std::vector<v1::Run>> one = client_->ListRuns();
  ASSERT_TRUE(one.ok());
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ((*one)[0].name(), "runs/a");
}

}  // namespace
}  // namespace curvd::client
