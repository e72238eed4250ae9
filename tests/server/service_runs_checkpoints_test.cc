// Runs and checkpoints over the socket: idempotent creates and pagination.
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service_fixture.h"

namespace curvd::server {
namespace {

using ::testing::HasSubstr;

TEST_F(ServiceTest, CreateRunIsIdempotentForTheSameModel) {
  v1::Run first = CreateRun("exp-1");
  EXPECT_EQ(first.name(), "runs/exp-1");
  v1::Run again = CreateRun("exp-1");
  EXPECT_EQ(again.name(), first.name());

  v1::CreateRunRequest different;
  different.set_run_id("exp-1");
  auto* zoo = different.mutable_run()->mutable_model()->mutable_zoo();
  for (int w : {3, 8, 1}) zoo->add_layer_widths(w);
  grpc::ClientContext context;
  v1::Run run;
  EXPECT_EQ(stub_->CreateRun(&context, different, &run).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);

  v1::CreateRunRequest bad_id = different;
  bad_id.set_run_id("Bad/Id");
  grpc::ClientContext context2;
  EXPECT_EQ(stub_->CreateRun(&context2, bad_id, &run).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}


TEST_F(ServiceTest, CheckpointNeedsAKnownRunAndAnUploadedBlob) {
  CreateRun("r");
  v1::CreateCheckpointRequest request;
  request.set_parent("runs/r");
  request.mutable_checkpoint()->set_step(1);
  request.mutable_checkpoint()->set_digest(Sha256("never uploaded"));
  grpc::ClientContext context;
  v1::Checkpoint checkpoint;
  EXPECT_EQ(
      stub_->CreateCheckpoint(&context, request, &checkpoint).error_code(),
      grpc::StatusCode::FAILED_PRECONDITION);
  request.set_parent("runs/unknown");
  grpc::ClientContext context2;
  EXPECT_EQ(
      stub_->CreateCheckpoint(&context2, request, &checkpoint).error_code(),
      grpc::StatusCode::NOT_FOUND);
  // Idempotent for the same content.
  const std::string name = CreateCheckpoint("r", 2);
  EXPECT_EQ(CreateCheckpoint("r", 2), name);
}


TEST_F(ServiceTest, ListRunsAndCheckpointsPaginate) {
  for (int i = 0; i < 5; ++i) CreateCheckpoint("r" + std::to_string(i), i);
  for (int i = 1; i < 5; ++i) CreateCheckpoint("r0", 10 + i);
  v1::ListRunsRequest runs_request;
  runs_request.set_page_size(2);
  grpc::ClientContext context;
  v1::ListRunsResponse runs;
  ASSERT_TRUE(stub_->ListRuns(&context, runs_request, &runs).ok());
  EXPECT_EQ(runs.runs_size(), 2);
  EXPECT_EQ(runs.runs(0).name(), "runs/r0");
  EXPECT_EQ(runs.runs(0).checkpoint_count(), 5);
  EXPECT_FALSE(runs.next_page_token().empty());

  v1::ListCheckpointsRequest request;
  request.set_parent("runs/r0");
  request.set_page_size(3);
  grpc::ClientContext context2;
  v1::ListCheckpointsResponse page1;
  ASSERT_TRUE(stub_->ListCheckpoints(&context2, request, &page1).ok());
  ASSERT_EQ(page1.checkpoints_size(), 3);
  EXPECT_EQ(page1.checkpoints(0).step(), 0);
  EXPECT_EQ(page1.checkpoints(2).step(), 12);
  request.set_page_token(page1.next_page_token());
  grpc::ClientContext context3;
  v1::ListCheckpointsResponse page2;
  ASSERT_TRUE(stub_->ListCheckpoints(&context3, request, &page2).ok());
  ASSERT_EQ(page2.checkpoints_size(), 2);
  EXPECT_EQ(page2.checkpoints(1).step(), 14);
  EXPECT_TRUE(page2.next_page_token().empty());
}


}  // namespace
}  // namespace curvd::server
