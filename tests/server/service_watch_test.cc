// WatchMeasurement over the socket: the stored state first, then each change.
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service_fixture.h"

namespace curvd::server {
namespace {

using ::testing::HasSubstr;

TEST_F(ServiceTest, WatchSeesQueuedRunningSucceeded) {
  const std::string parent = CreateCheckpoint("r", 1);
  control_->Block();
  v1::Measurement created;
  ASSERT_TRUE(CreateMeasurement(parent, SharpnessSpec(3), &created).ok());
  EXPECT_EQ(created.state(), v1::Measurement::QUEUED);
  EXPECT_THAT(created.name(), ::testing::StartsWith(parent + "/measurements/"));

  grpc::ClientContext context;
  v1::WatchMeasurementRequest request;
  request.set_name(created.name());
  auto reader = stub_->WatchMeasurement(&context, request);
  std::vector<v1::Measurement::State> states;
  v1::Measurement m;
  while (reader->Read(&m)) {
    if (states.empty() || states.back() != m.state())
      states.push_back(m.state());
    if (m.state() == v1::Measurement::RUNNING) control_->Release();
  }
  ASSERT_TRUE(reader->Finish().ok());
  // The first message may already show RUNNING if the worker was quick.
  ASSERT_GE(states.size(), 2u);
  EXPECT_EQ(states.back(), v1::Measurement::SUCCEEDED);
  EXPECT_EQ(states[states.size() - 2], v1::Measurement::RUNNING);
  EXPECT_EQ(m.sharpness().top_size(), 3);
  EXPECT_DOUBLE_EQ(m.sharpness().sharpness(), 10.0);
  EXPECT_EQ(m.diagnostics().device(), "cpu");
  EXPECT_EQ(m.diagnostics().hvps(), 7);

  // Reattaching after the end replays the terminal state and ends.
  grpc::ClientContext again;
  auto replay = stub_->WatchMeasurement(&again, request);
  ASSERT_TRUE(replay->Read(&m));
  EXPECT_EQ(m.state(), v1::Measurement::SUCCEEDED);
  EXPECT_FALSE(replay->Read(&m));
  EXPECT_TRUE(replay->Finish().ok());
}

TEST_F(ServiceTest, WatchStartsWithQueuedWhileTheEngineIsBusy) {
  const std::string parent = CreateCheckpoint("r", 1);
  control_->Block();
  v1::Measurement first, second;
  ASSERT_TRUE(CreateMeasurement(parent, SharpnessSpec(), &first).ok());
  ASSERT_TRUE(control_->WaitForStarted(1));
  ASSERT_TRUE(CreateMeasurement(parent, SharpnessSpec(), &second).ok());
  grpc::ClientContext context;
  v1::WatchMeasurementRequest request;
  request.set_name(second.name());
  auto reader = stub_->WatchMeasurement(&context, request);
  v1::Measurement m;
  ASSERT_TRUE(reader->Read(&m));
  EXPECT_EQ(m.state(), v1::Measurement::QUEUED);
  control_->Release();
  std::vector<v1::Measurement::State> later;
  while (reader->Read(&m)) later.push_back(m.state());
  EXPECT_TRUE(reader->Finish().ok());
  ASSERT_FALSE(later.empty());
  EXPECT_EQ(later.front(), v1::Measurement::RUNNING);
  EXPECT_EQ(later.back(), v1::Measurement::SUCCEEDED);
}


}  // namespace
}  // namespace curvd::server
