#include "server/server_config.h"

#include <unistd.h>

#include <climits>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/grpc_status.h"

namespace curvd::server {
namespace {

using ::testing::HasSubstr;

TEST(ResolveDevicesTest, AutoUsesEveryCudaDeviceOrTheCpu) {
  EXPECT_EQ(*ResolveDevices("auto", 0), std::vector<std::string>{"cpu"});
  EXPECT_EQ(*ResolveDevices("auto", 2),
            (std::vector<std::string>{"cuda:0", "cuda:1"}));
}

TEST(ResolveDevicesTest, AcceptsListsOfVisibleDevices) {
  EXPECT_EQ(*ResolveDevices("cpu", 0), std::vector<std::string>{"cpu"});
  EXPECT_EQ(*ResolveDevices("cuda:1, cpu", 2),
            (std::vector<std::string>{"cuda:1", "cpu"}));
}

TEST(ResolveDevicesTest, RejectsUnknownMissingAndRepeatedDevices) {
  EXPECT_EQ(ResolveDevices("cuda:0", 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveDevices("tpu", 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveDevices("cpu,cpu", 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveDevices("", 0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ResolveDataRootsTest, RequiresExistingDirectories) {
  auto roots = ResolveDataRoots(::testing::TempDir());
  ASSERT_TRUE(roots.ok()) << roots.status();
  EXPECT_EQ(roots->size(), 1u);
  EXPECT_TRUE(ResolveDataRoots("")->empty());
  EXPECT_EQ(ResolveDataRoots("/no/such/dir").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ResolveArchiveCheckerTest, AutoIsTheCheckerBesideThisProgram) {
  char self[PATH_MAX] = {};
  ASSERT_GT(readlink("/proc/self/exe", self, sizeof(self) - 1), 0);
  const std::string program = self;
  auto checker = ResolveArchiveChecker("auto");
  ASSERT_TRUE(checker.ok()) << checker.status();
  EXPECT_EQ(*checker, program.substr(0, program.rfind('/')) +
                          "/curvd_archive_check");
  EXPECT_EQ(*ResolveArchiveChecker("none"), "");
  EXPECT_EQ(*ResolveArchiveChecker("/bin/sh"), "/bin/sh");
}

TEST(ResolveArchiveCheckerTest, RequiresAnExecutableFile) {
  const std::string plain = ::testing::TempDir() + "/not-executable";
  std::ofstream(plain) << "#!/bin/sh\n";
  for (const std::string& flag : {std::string("/no/such/checker"), plain,
                                  ::testing::TempDir()}) {
    auto checker = ResolveArchiveChecker(flag);
    EXPECT_EQ(checker.status().code(), absl::StatusCode::kInvalidArgument)
        << flag;
    EXPECT_THAT(std::string(checker.status().message()),
                HasSubstr("--archive_checker"));
  }
}

TEST(ValidateServerOptionsTest, NamesTheBadFlag) {
  ServerOptions options;
  options.service.state_dir = "relative-state";
  ASSERT_TRUE(ValidateServerOptions(&options).ok());
  EXPECT_EQ(options.service.state_dir.front(), '/');

  ServerOptions bad_listen;
  bad_listen.listen = "nowhere";
  EXPECT_THAT(std::string(ValidateServerOptions(&bad_listen).message()),
              HasSubstr("--listen"));
  ServerOptions bad_blob;
  bad_blob.service.state_dir = "s";
  bad_blob.service.blob_limits.max_blob_bytes = 0;
  EXPECT_THAT(std::string(ValidateServerOptions(&bad_blob).message()),
              HasSubstr("--max_blob_bytes"));
  ServerOptions bad_queue;
  bad_queue.service.state_dir = "s";
  bad_queue.service.queue_capacity = 0;
  EXPECT_THAT(std::string(ValidateServerOptions(&bad_queue).message()),
              HasSubstr("--queue_capacity"));
  ServerOptions bad_cap;
  bad_cap.service.state_dir = "s";
  bad_cap.service.request_limits.exact_hessian_max_parameters = 0;
  EXPECT_THAT(std::string(ValidateServerOptions(&bad_cap).message()),
              HasSubstr("--exact_hessian_max_parameters"));
  ServerOptions bad_matrix_cap;
  bad_matrix_cap.service.state_dir = "s";
  bad_matrix_cap.service.request_limits.exact_hessian_max_matrix_parameters =
      bad_matrix_cap.service.request_limits.exact_hessian_max_parameters + 1;
  EXPECT_THAT(std::string(ValidateServerOptions(&bad_matrix_cap).message()),
              HasSubstr("--exact_hessian_max_matrix_parameters"));
  for (int64_t RequestLimits::*cap :
       {&RequestLimits::gop_max_samples, &RequestLimits::gop_max_gram_floats,
        &RequestLimits::gop_max_gradient_floats,
        &RequestLimits::gop_max_eigenvector_floats}) {
    ServerOptions bad_gop;
    bad_gop.service.state_dir = "s";
    bad_gop.service.request_limits.*cap = 0;
    EXPECT_THAT(std::string(ValidateServerOptions(&bad_gop).message()),
                ::testing::MatchesRegex("--gop_max_[a-z_]+ must be positive, "
                                        "got 0"));
  }
  for (int nice : {-1, 20}) {
    ServerOptions bad_nice;
    bad_nice.service.state_dir = "s";
    bad_nice.service.worker_nice = nice;
    EXPECT_THAT(std::string(ValidateServerOptions(&bad_nice).message()),
                HasSubstr("--worker_nice must be in [0, 19]"));
  }
}

TEST(ResolveReplicaPlacementTest, ALoneServerByDefault) {
  absl::StatusOr<ReplicaPlacement> lone = ResolveReplicaPlacement({});
  ASSERT_TRUE(lone.ok());
  EXPECT_EQ(lone->replicas(), 1);
  EXPECT_TRUE(lone->addresses().empty());
  ReplicaFlags indexed;
  indexed.index = 1;
  EXPECT_THAT(std::string(ResolveReplicaPlacement(indexed).status().message()),
              HasSubstr("--replica_index must be 0"));
}

TEST(ResolveReplicaPlacementTest, ExpandsTheTemplateAndReadsTheHostName) {
  ReplicaFlags flags;
  flags.replicas = 3;
  flags.address_template = "curvd-{index}.curvd-headless:50051";
  flags.hostname = "curvd-2";
  absl::StatusOr<ReplicaPlacement> placement = ResolveReplicaPlacement(flags);
  ASSERT_TRUE(placement.ok()) << placement.status();
  EXPECT_EQ(placement->index(), 2);
  EXPECT_EQ(placement->replicas(), 3);
  EXPECT_EQ(placement->addresses()[1], "curvd-1.curvd-headless:50051");
  flags.hostname = "curvd-3";
  EXPECT_THAT(std::string(ResolveReplicaPlacement(flags).status().message()),
              HasSubstr("--replica_index must be in [0, 3)"));
  flags.hostname = "";
  flags.address_template = "curvd:50051";
  EXPECT_THAT(std::string(ResolveReplicaPlacement(flags).status().message()),
              HasSubstr("must contain {index}"));
}

TEST(ResolveReplicaPlacementTest, TakesAnAddressListThatAgreesWithTheCount) {
  ReplicaFlags flags;
  flags.index = 1;
  flags.addresses = "127.0.0.1:5000, 127.0.0.1:5001";
  absl::StatusOr<ReplicaPlacement> placement = ResolveReplicaPlacement(flags);
  ASSERT_TRUE(placement.ok()) << placement.status();
  EXPECT_EQ(placement->replicas(), 2);
  EXPECT_EQ(placement->addresses()[1], "127.0.0.1:5001");
  flags.replicas = 3;
  EXPECT_THAT(std::string(ResolveReplicaPlacement(flags).status().message()),
              HasSubstr("disagrees"));
  flags.replicas = 2;
  flags.address_template = "x-{index}:1";
  EXPECT_THAT(std::string(ResolveReplicaPlacement(flags).status().message()),
              HasSubstr("not both"));
}

TEST(GrpcStatusTest, KeepsTheCodeAndTruncatesLongMessages) {
  grpc::Status status = ToGrpcStatus(absl::NotFoundError("runs/x not found"));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(status.error_message(), "runs/x not found");
  grpc::Status long_status =
      ToGrpcStatus(absl::InvalidArgumentError(std::string(5000, 'x')));
  EXPECT_EQ(long_status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(long_status.error_message().size(), kMaxGrpcErrorMessageBytes);
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
}

}  // namespace
}  // namespace curvd::server
