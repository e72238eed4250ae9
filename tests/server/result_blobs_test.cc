// A gop result's eigenvectors become a committed safetensors blob that the
// stored result references, identical results sharing one blob; results
// stored before, with the eigenvectors in the message, still decode.
#include "server/result_blobs.h"

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/api/safetensors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/disk_blob_store.h"
#include "test_dirs.h"

namespace curvd::server {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

// A gop result of 2 eigenvectors of M = 3 parameters.
core::MeasurementResult GopWithEigenvectors() {
  core::GopMethod gop;
  gop.result.num_parameters = 3;
  gop.result.metrics.top_eigenvalues = {4.0, 0.5, 0.0};
  gop.result.num_eigenvectors = 2;
  gop.result.eigenvectors = {1, 0, 0, 0, 0.6, 0.8};
  core::MeasurementResult result;
  result.methods.push_back(gop);
  return result;
}

std::vector<double> Doubles(const core::SafetensorsTensor& t) {
  std::vector<double> values(t.data.size() / sizeof(double));
  std::memcpy(values.data(), t.data.data(), t.data.size());
  return values;
}

BlobStoreLimits MaxBlob(int64_t bytes) {
  BlobStoreLimits limits;
  limits.max_blob_bytes = bytes;
  return limits;
}

class ResultBlobsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    blobs_ = DiskBlobStore::Open(testing::MakeTempDir(), MaxBlob(1 << 20)).value();
  }
  std::unique_ptr<DiskBlobStore> blobs_;
};

TEST_F(ResultBlobsTest, EigenvectorsAreStoredOnceAsSafetensors) {
  const absl::StatusOr<ResultBlobs> stored =
      StoreResultBlobs(GopWithEigenvectors(), blobs_.get());
  ASSERT_TRUE(stored.ok()) << stored.status();
  ASSERT_TRUE(stored->gop.has_value());
  EXPECT_EQ(stored->gop->rows, 2);
  EXPECT_EQ(stored->gop->cols, 3);
  auto tensors =
      core::ReadSafetensorsFile(blobs_->PathOf(stored->gop->digest).value());
  ASSERT_TRUE(tensors.ok()) << tensors.status();
  ASSERT_EQ(tensors->size(), 2u);
  EXPECT_EQ((*tensors)[0].name, "eigenvalues");
  EXPECT_EQ((*tensors)[0].dtype, "F64");
  EXPECT_THAT((*tensors)[0].shape, ElementsAre(2));
  EXPECT_THAT(Doubles((*tensors)[0]), ElementsAre(4.0, 0.5));
  EXPECT_EQ((*tensors)[1].name, "eigenvectors");
  EXPECT_THAT((*tensors)[1].shape, ElementsAre(2, 3));
  EXPECT_THAT(Doubles((*tensors)[1]), ElementsAreArray({1., 0., 0., 0., 0.6,
                                                        0.8}));
  // The same result again: the same blob, nothing written twice.
  const absl::StatusOr<ResultBlobs> again =
      StoreResultBlobs(GopWithEigenvectors(), blobs_.get());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->gop->digest, stored->gop->digest);
}

TEST_F(ResultBlobsTest, AResultWithoutEigenvectorsStoresNothing) {
  core::MeasurementResult result = GopWithEigenvectors();
  auto& gop = std::get<core::GopMethod>(result.methods[0]).result;
  gop.num_eigenvectors = 0;
  gop.eigenvectors.clear();
  const absl::StatusOr<ResultBlobs> stored =
      StoreResultBlobs(result, blobs_.get());
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_FALSE(stored->gop.has_value());
  EXPECT_FALSE(StoreResultBlobs(core::MeasurementResult(), blobs_.get())
                   .value()
                   .gop.has_value());
}

TEST_F(ResultBlobsTest, ABlobOverTheStoresLimitFailsNamingIt) {
  blobs_ = DiskBlobStore::Open(testing::MakeTempDir(), MaxBlob(64)).value();
  const absl::StatusOr<ResultBlobs> stored =
      StoreResultBlobs(GopWithEigenvectors(), blobs_.get());
  EXPECT_EQ(stored.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(stored.status().message()),
              ::testing::HasSubstr("the gop eigenvectors could not be stored"));
}

// The cap the server derives from a store's limit admits the worst shape
// under it, one parameter per eigenvector (as many eigenvalues as entries).
TEST_F(ResultBlobsTest, TheCapFromTheBlobLimitFitsInABlobOfIt) {
  constexpr int64_t kLimit = 2048;
  const int64_t floats = GopEigenvectorFloatsInBlob(kLimit);
  EXPECT_EQ(floats, 64);
  EXPECT_EQ(GopEigenvectorFloatsInBlob(100), 1);
  blobs_ = DiskBlobStore::Open(testing::MakeTempDir(), MaxBlob(kLimit)).value();
  core::GopMethod gop;
  gop.result.num_parameters = 1;
  gop.result.num_eigenvectors = floats;
  gop.result.metrics.top_eigenvalues.assign(floats, 1.0 / 3);
  gop.result.eigenvectors.assign(floats, -1.0 / 3);
  core::MeasurementResult result;
  result.methods.push_back(gop);
  const absl::StatusOr<ResultBlobs> stored =
      StoreResultBlobs(result, blobs_.get());
  EXPECT_TRUE(stored.ok()) << stored.status();
}

TEST(ReferenceResultBlobsTest, TheResultOfTheKindOrOfThePlanReferencesIt) {
  ResultBlobs blobs;
  blobs.gop = GopEigenvectorBlob{"sha256:" + std::string(64, 'a'), 2, 3};
  v1::Measurement single;
  single.mutable_spec()->mutable_gop();
  ReferenceResultBlobs(blobs, &single);
  EXPECT_EQ(single.gop().eigenvectors_blob_digest(), blobs.gop->digest);
  EXPECT_THAT(single.gop().eigenvectors_shape(), ElementsAre(2, 3));
  v1::Measurement plan;
  plan.mutable_spec()->mutable_plan()->mutable_gop();
  ReferenceResultBlobs(blobs, &plan);
  EXPECT_EQ(plan.plan().gop().eigenvectors_blob_digest(), blobs.gop->digest);
  v1::Measurement none;
  ReferenceResultBlobs(ResultBlobs(), &none);
  EXPECT_FALSE(none.has_gop());
}

// A result stored before the blobs, its eigenvectors in field 10, decodes.
TEST(ReferenceResultBlobsTest, AResultWithEigenvectorsInTheMessageDecodes) {
  v1::GopResult old;
  old.set_num_eigenvectors(1);
  old.add_eigenvectors(0.6);
  old.add_eigenvectors(0.8);
  v1::GopResult decoded;
  ASSERT_TRUE(decoded.ParseFromString(old.SerializeAsString()));
  EXPECT_THAT(decoded.eigenvectors(), ElementsAre(0.6, 0.8));
  EXPECT_TRUE(decoded.eigenvectors_blob_digest().empty());
}

}  // namespace
}  // namespace curvd::server
