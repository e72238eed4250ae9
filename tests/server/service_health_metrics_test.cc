// grpc.health.v1 and the /metrics endpoint of a running server.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "core/api/out_of_memory.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "health_check.h"
#include "service_fixture.h"

namespace curvd::server {
namespace {

using ::testing::HasSubstr;

TEST_F(ServiceTest, HealthReportsServingForTheServerAndTheService) {
  auto whole = HealthCheck(channel_, "");
  ASSERT_TRUE(whole.ok()) << whole.status();
  EXPECT_EQ(*whole, kServing);
  auto service = HealthCheck(channel_, "curvd.v1.Curvd");
  ASSERT_TRUE(service.ok()) << service.status();
  EXPECT_EQ(*service, kServing);
  EXPECT_EQ(HealthCheck(channel_, "no.such.Service").status().code(),
            absl::StatusCode::kNotFound);
}

std::string HttpGet(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) !=
      0) {
    close(fd);
    return "";
  }
  const std::string request =
      absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: localhost\r\n\r\n");
  if (write(fd, request.data(), request.size()) < 0) {
    close(fd);
    return "";
  }
  std::string response;
  char buffer[4096];
  ssize_t n;
  while ((n = read(fd, buffer, sizeof(buffer))) > 0) response.append(buffer, n);
  close(fd);
  return response;
}

TEST_F(ServiceTest, MetricsEndpointServesEveryFamily) {
  RestartServer(256, /*serve_metrics=*/true);
  const std::string parent = CreateCheckpoint("r", 1);
  v1::Measurement m;
  ASSERT_TRUE(CreateMeasurement(parent, SharpnessSpec(), &m).ok());
  WaitForState(m.name(), v1::Measurement::SUCCEEDED);
  ASSERT_GT(server_->metrics_port(), 0);
  const std::string body = HttpGet(server_->metrics_port(), "/metrics");
  EXPECT_THAT(body, HasSubstr("200 OK"));
  for (const char* family :
       {"grpc_server_started_total", "grpc_server_handled_total",
        "grpc_server_handling_seconds_bucket", "curvd_queue_depth",
        "curvd_measurements_total", "curvd_measurement_duration_seconds_bucket",
        "curvd_hvps_total", "curvd_blob_bytes_received_total",
        "curvd_build_info", "curvd_workers"}) {
    EXPECT_THAT(body, HasSubstr(family));
  }
  EXPECT_THAT(body, HasSubstr("curvd_build_info{version=\"test\"} 1"));
  EXPECT_THAT(body, HasSubstr("curvd_hvps_total{device=\"cpu\"} 7"));
  EXPECT_THAT(body, HasSubstr("curvd_measurements_total{kind=\"sharpness\","
                              "outcome=\"succeeded\"} 1"));
  EXPECT_THAT(body, HasSubstr("grpc_code=\"OK\",grpc_method=\"CreateRun\""));
}

TEST_F(ServiceTest, MetricsShowDeviceMemoryOutOfMemoryAndTheRunsLatestResults) {
  RestartServer(256, /*serve_metrics=*/true);
  const std::string parent = CreateCheckpoint("r", 12);
  v1::Measurement m;
  ASSERT_TRUE(CreateMeasurement(parent, SharpnessSpec(), &m).ok());
  WaitForState(m.name(), v1::Measurement::SUCCEEDED);
  // A refusal that only reads like it (the memory budget's, say) is not
  // counted: the engine marks the real one.
  control_->FailWith(absl::ResourceExhaustedError(
      "cpu ran out of memory even with micro_batch_size 1: out of memory"));
  ASSERT_TRUE(CreateMeasurement(parent, SharpnessSpec(), &m).ok());
  WaitForState(m.name(), v1::Measurement::FAILED);
  control_->FailWith(core::DeviceOutOfMemoryError(
      "cpu ran out of memory even with micro_batch_size 1: out of memory"));
  ASSERT_TRUE(CreateMeasurement(parent, SharpnessSpec(), &m).ok());
  WaitForState(m.name(), v1::Measurement::FAILED);
  const std::string body = HttpGet(server_->metrics_port(), "/metrics");
  EXPECT_THAT(body, HasSubstr("curvd_queue_capacity 256"));
  EXPECT_THAT(body,
              HasSubstr("curvd_device_memory_used_bytes{device=\"cpu\"} 5"));
  EXPECT_THAT(body,
              HasSubstr("curvd_device_memory_total_bytes{device=\"cpu\"} 9"));
  EXPECT_THAT(body,
              HasSubstr("curvd_device_out_of_memory_total{device=\"cpu\"} 1"));
  EXPECT_THAT(body, HasSubstr("curvd_run_latest_value{kind=\"sharpness\","
                              "quantity=\"sharpness\",run=\"r\"} 10"));
  EXPECT_THAT(body, HasSubstr("curvd_run_latest_step{kind=\"sharpness\","
                              "run=\"r\"} 12"));
}

}  // namespace
}  // namespace curvd::server
