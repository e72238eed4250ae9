#include "server/replica_placement.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/resource_names.h"
#include "core_fixture.h"
#include "curvd/v1/curvd_service.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/service_impl.h"

namespace curvd::server {
namespace {

namespace v1 = ::curvd::v1;
using ::curvd::common::RunIdOf;
using ::testing::HasSubstr;
using ::testing::Optional;

const std::vector<std::string> kThree = {"curvd-0.h:50051", "curvd-1.h:50051",
                                         "curvd-2.h:50051"};

// The published test vectors of the jump hash (the reference Go and Elixir
// implementations agree on them).
TEST(JumpConsistentHashTest, MatchesTheReferenceVectors) {
  EXPECT_EQ(JumpConsistentHash(1, 1), 0);
  EXPECT_EQ(JumpConsistentHash(42, 57), 43);
  EXPECT_EQ(JumpConsistentHash(0xDEAD10CC, 1), 0);
  EXPECT_EQ(JumpConsistentHash(0xDEAD10CC, 666), 361);
  EXPECT_EQ(JumpConsistentHash(256, 1024), 520);
  EXPECT_EQ(JumpConsistentHash(1, 128), 55);
  EXPECT_EQ(JumpConsistentHash(129, 128), 120);
  EXPECT_EQ(JumpConsistentHash(~uint64_t{0}, 128), 92);
}

TEST(RunPlacementKeyTest, IsTheFirstEightBytesOfSha256BigEndian) {
  // SHA-256("abc") = ba7816bf8f01cfea 414140de...
  EXPECT_EQ(RunPlacementKey("abc"), 0xba7816bf8f01cfeaULL);
}

TEST(ReplicaPlacementTest,
     SpreadsRunsEvenlyAndGrowingMovesRunsOnlyToTheNewOne) {
  auto three = ReplicaPlacement::Create(0, kThree);
  std::vector<std::string> four_addresses = kThree;
  four_addresses.push_back("curvd-3.h:50051");
  auto four = ReplicaPlacement::Create(0, four_addresses);
  ASSERT_TRUE(three.ok() && four.ok());
  int per_replica[3] = {0, 0, 0};
  int moved = 0;
  constexpr int kRuns = 3000;
  for (int i = 0; i < kRuns; ++i) {
    const std::string run = absl::StrCat("run-", i);
    const int owner = three->OwnerOf(run);
    ASSERT_GE(owner, 0);
    ASSERT_LT(owner, 3);
    ++per_replica[owner];
    const int grown = four->OwnerOf(run);
    if (grown != owner) {
      EXPECT_EQ(grown, 3) << run;
      ++moved;
    }
  }
  for (int count : per_replica) {
    EXPECT_GT(count, kRuns / 3 - 150);
    EXPECT_LT(count, kRuns / 3 + 150);
  }
  EXPECT_GT(moved, kRuns / 4 - 150);
  EXPECT_LT(moved, kRuns / 4 + 150);
}

TEST(ReplicaPlacementTest, ALoneServerOwnsEveryRun) {
  ReplicaPlacement lone;
  EXPECT_EQ(lone.replicas(), 1);
  EXPECT_TRUE(lone.Owns("anything"));
  v1::GetRunRequest request;
  request.set_name("runs/anything");
  EXPECT_TRUE(lone.Check(request).ok());
}

TEST(ReplicaPlacementTest, CreateRefusesBadSets) {
  EXPECT_FALSE(ReplicaPlacement::Create(0, {}).ok());
  EXPECT_FALSE(ReplicaPlacement::Create(3, kThree).ok());
  EXPECT_FALSE(ReplicaPlacement::Create(-1, kThree).ok());
  EXPECT_FALSE(ReplicaPlacement::Create(0, {"a:1", ""}).ok());
}

TEST(RunIdOfTest, ReadsTheRunOfEveryRunScopedRequest) {
  v1::CreateRunRequest create;
  create.set_run_id("r1");
  EXPECT_THAT(RunIdOf(create), Optional(std::string("r1")));
  v1::GetRunRequest get;
  get.set_name("runs/r2");
  EXPECT_THAT(RunIdOf(get), Optional(std::string("r2")));
  v1::CreateMeasurementRequest measure;
  measure.set_parent("runs/r3/checkpoints/7");
  EXPECT_THAT(RunIdOf(measure), Optional(std::string("r3")));
  v1::WatchMeasurementRequest watch;
  watch.set_name("runs/r4/checkpoints/7/measurements/abc");
  EXPECT_THAT(RunIdOf(watch), Optional(std::string("r4")));
  v1::WriteBlobRequest blob;
  blob.set_run("runs/r5");
  EXPECT_THAT(RunIdOf(blob), Optional(std::string("r5")));
}

TEST(RunIdOfTest, RequestsAboutNoRunHaveNone) {
  EXPECT_EQ(RunIdOf(v1::ListRunsRequest()), std::nullopt);
  EXPECT_EQ(RunIdOf(v1::GetBlobStatusRequest()), std::nullopt);
  EXPECT_EQ(RunIdOf(v1::CreateRunRequest()), std::nullopt);
  v1::GetRunRequest malformed;
  malformed.set_name("checkpoints/1");
  EXPECT_EQ(RunIdOf(malformed), std::nullopt);
}

TEST(ReplicaPlacementTest, CheckRefusesAnotherReplicasRunNamingItsAddress) {
  auto placement = ReplicaPlacement::Create(1, kThree);
  ASSERT_TRUE(placement.ok());
  std::string mine, theirs;
  for (int i = 0; mine.empty() || theirs.empty(); ++i) {
    const std::string run = absl::StrCat("r", i);
    (placement->Owns(run) ? mine : theirs) = run;
  }
  v1::GetCheckpointRequest request;
  request.set_name(absl::StrCat("runs/", mine, "/checkpoints/1"));
  EXPECT_TRUE(placement->Check(request).ok());
  EXPECT_FALSE(OwnerAddress(placement->Check(request)).has_value());

  request.set_name(absl::StrCat("runs/", theirs, "/checkpoints/1"));
  absl::Status refused = placement->Check(request);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  const std::string& owner = kThree[placement->OwnerOf(theirs)];
  EXPECT_THAT(refused.message(), HasSubstr(owner));
  EXPECT_THAT(refused.message(), HasSubstr("runs/" + theirs));
  EXPECT_THAT(OwnerAddress(refused), Optional(owner));

  EXPECT_TRUE(placement->Check(v1::ListRunsRequest()).ok());
}

TEST(ExpandReplicaAddressesTest, ReplacesTheIndex) {
  EXPECT_EQ(*ExpandReplicaAddresses("curvd-{index}.curvd-headless:50051", 2),
            (std::vector<std::string>{"curvd-0.curvd-headless:50051",
                                      "curvd-1.curvd-headless:50051"}));
  EXPECT_FALSE(ExpandReplicaAddresses("curvd:50051", 2).ok());
  EXPECT_FALSE(ExpandReplicaAddresses("curvd-{index}:1", 0).ok());
}

TEST(ReplicaIndexFromHostnameTest, ReadsAStatefulSetOrdinal) {
  EXPECT_EQ(*ReplicaIndexFromHostname("curvd-0"), 0);
  EXPECT_EQ(*ReplicaIndexFromHostname("my-curvd-12"), 12);
  EXPECT_FALSE(ReplicaIndexFromHostname("curvd").ok());
  EXPECT_FALSE(ReplicaIndexFromHostname("curvd-").ok());
  EXPECT_FALSE(ReplicaIndexFromHostname("curvd-+1").ok());
  EXPECT_FALSE(ReplicaIndexFromHostname("curvd-1a").ok());
}

class GeneratedRunIdTest : public testing::CoreTest {};

TEST_F(GeneratedRunIdTest, AGeneratedRunIdIsOneThisReplicaHolds) {
  auto placement = ReplicaPlacement::Create(2, kThree);
  ASSERT_TRUE(placement.ok());
  placement_ = *placement;
  ASSERT_TRUE(StartCore().ok());
  for (int i = 0; i < 12; ++i) {
    v1::CreateRunRequest request;
    request.mutable_run()->mutable_model()->mutable_zoo()->add_layer_widths(3);
    request.mutable_run()->mutable_model()->mutable_zoo()->add_layer_widths(1);
    v1::Run run;
    ASSERT_TRUE(CreateRunImpl(*core_, request, &run).ok());
    absl::StatusOr<std::string> id = common::ParseRunName(run.name());
    ASSERT_TRUE(id.ok()) << run.name();
    EXPECT_EQ(placement->OwnerOf(*id), 2) << run.name();
  }
}

}  // namespace
}  // namespace curvd::server
