// List pages bounded by bytes and the BASIC / FULL views (curvd_service.proto,
// View): exact Hessians whose matrices together pass a client's 16 MiB
// receive limit, listed through a channel with that limit.
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "client/curvctl_commands.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "server/list_pages.h"
#include "service_fixture.h"

namespace curvd::server {
namespace {

using ::testing::HasSubstr;

class ListPagesTest : public ServiceTest {
 protected:
  // A SUCCEEDED exact Hessian of `parameters` parameters with its matrix,
  // stored directly.
  std::string StoreExactHessian(const std::string& parent, int parameters,
                                const std::string& id) {
    v1::Measurement m;
    m.set_name(absl::StrCat(parent, "/measurements/", id));
    m.mutable_spec()->set_shard_uri(kShard);
    m.mutable_spec()->mutable_exact_hessian()->set_return_matrix(true);
    m.set_state(v1::Measurement::SUCCEEDED);
    v1::ExactHessianResult* r = m.mutable_exact_hessian();
    for (int i = 0; i < parameters; ++i) r->add_eigenvalues(i);
    r->mutable_matrix()->Resize(parameters * parameters, 0.5);
    r->set_rank(parameters);
    EXPECT_TRUE(server_->core().store().InsertMeasurement(parent, m, "").ok());
    return m.name();
  }

  // A stub whose channel has curvctl's 16 MiB receive limit.
  std::unique_ptr<v1::Curvd::Stub> ClientStub() {
    grpc::ChannelArguments arguments;
    arguments.SetMaxReceiveMessageSize(16 << 20);
    return v1::Curvd::NewStub(grpc::CreateCustomChannel(
        absl::StrCat("127.0.0.1:", server_->port()),
        grpc::InsecureChannelCredentials(), arguments));
  }

  // Every page of `request`'s list through ClientStub; the sizes of the pages
  // in `page_sizes`.
  grpc::Status ListAll(v1::ListMeasurementsRequest request,
                       std::vector<v1::Measurement>* listed,
                       std::vector<int>* page_sizes) {
    std::unique_ptr<v1::Curvd::Stub> stub = ClientStub();
    do {
      grpc::ClientContext context;
      v1::ListMeasurementsResponse response;
      grpc::Status status = stub->ListMeasurements(&context, request, &response);
      if (!status.ok()) return status;
      page_sizes->push_back(response.measurements_size());
      for (v1::Measurement& m : *response.mutable_measurements())
        listed->push_back(std::move(m));
      request.set_page_token(response.next_page_token());
    } while (!request.page_token().empty());
    return grpc::Status::OK;
  }
};

// 930 x 930 doubles: about 6.9 MB a matrix, 20.8 MB for three.
constexpr int kParameters = 930;

TEST_F(ListPagesTest, BasicViewListsThreeLargeExactHessiansInOnePage) {
  const std::string parent = CreateCheckpoint("r", 1);
  for (const char* id : {"a", "b", "c"}) StoreExactHessian(parent, kParameters, id);
  v1::ListMeasurementsRequest request;
  request.set_parent("runs/r/checkpoints/-");
  std::vector<v1::Measurement> listed;
  std::vector<int> pages;
  grpc::Status status = ListAll(request, &listed, &pages);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(pages, (std::vector<int>{3}));
  for (const v1::Measurement& m : listed) {
    EXPECT_EQ(m.exact_hessian().matrix_size(), 0) << m.name();
    EXPECT_EQ(m.exact_hessian().eigenvalues_size(), kParameters);
    EXPECT_EQ(m.exact_hessian().rank(), kParameters);
  }
  // Get is FULL.
  v1::GetMeasurementRequest get;
  get.set_name(listed[0].name());
  grpc::ClientContext context;
  v1::Measurement full;
  ASSERT_TRUE(ClientStub()->GetMeasurement(&context, get, &full).ok());
  EXPECT_EQ(full.exact_hessian().matrix_size(), kParameters * kParameters);
}

TEST_F(ListPagesTest, FullViewEndsPagesAtTheByteBudget) {
  const std::string parent = CreateCheckpoint("r", 1);
  std::vector<std::string> stored;
  for (const char* id : {"a", "b", "c"})
    stored.push_back(StoreExactHessian(parent, kParameters, id));
  // Small ones share a page up to the budget.
  for (int i = 0; i < 3; ++i)
    stored.push_back(StoreExactHessian(parent, 300, absl::StrCat("s", i)));
  v1::ListMeasurementsRequest request;
  request.set_parent(parent);
  request.set_view(v1::VIEW_FULL);
  std::vector<v1::Measurement> listed;
  std::vector<int> pages;
  grpc::Status status = ListAll(request, &listed, &pages);
  ASSERT_TRUE(status.ok()) << status.error_message();
  // Each large one is over the 4 MiB budget and alone; the three small ones
  // (720 kB each) fit one page.
  EXPECT_EQ(pages, (std::vector<int>{1, 1, 1, 3}));
  ASSERT_EQ(listed.size(), stored.size());
  for (size_t i = 0; i < listed.size(); ++i) {
    EXPECT_EQ(listed[i].name(), stored[i]);
    const int p = i < 3 ? kParameters : 300;
    EXPECT_EQ(listed[i].exact_hessian().matrix_size(), p * p);
  }
}

// curvctl results over three exact Hessians of 20.8 MB in all: the table in
// BASIC (--csv), --json in FULL (a page each) with every matrix.
TEST_F(ListPagesTest, CurvctlResultsListsLargeExactHessians) {
  const std::string parent = CreateCheckpoint("r", 1);
  for (const char* id : {"a", "b", "c"}) StoreExactHessian(parent, kParameters, id);
  const std::string server = absl::StrCat("--server=127.0.0.1:", server_->port());
  std::ostringstream table, table_err;
  ASSERT_EQ(client::RunCurvctl({"results", server, "--run=r", "--csv"}, table,
                               table_err),
            client::kExitOk)
      << table_err.str();
  for (const char* id : {"a", "b", "c"})
    EXPECT_THAT(table.str(), HasSubstr(absl::StrCat("measurements/", id)));
  std::ostringstream json, json_err;
  ASSERT_EQ(client::RunCurvctl({"results", server, "--run=r", "--json",
                                "--page_size=2"},
                               json, json_err),
            client::kExitOk)
      << json_err.str();
  v1::ListMeasurementsResponse parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json.str(), &parsed)
                  .ok());
  ASSERT_EQ(parsed.measurements_size(), 3);
  for (const v1::Measurement& m : parsed.measurements())
    EXPECT_EQ(m.exact_hessian().matrix_size(), kParameters * kParameters);
  std::ostringstream basic, basic_err;
  ASSERT_EQ(client::RunCurvctl({"results", server, "--run=r", "--json",
                                "--view=basic"},
                               basic, basic_err),
            client::kExitOk);
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(basic.str(), &parsed)
                  .ok());
  ASSERT_EQ(parsed.measurements_size(), 3);
  for (const v1::Measurement& m : parsed.measurements())
    EXPECT_EQ(m.exact_hessian().matrix_size(), 0);
}

TEST_F(ListPagesTest, FullViewRefusesAnItemOverTheLargestPage) {
  const std::string parent = CreateCheckpoint("r", 1);
  // 1500 x 1500 doubles: 18 MB, over 16 MiB.
  const std::string big = StoreExactHessian(parent, 1500, "big");
  v1::ListMeasurementsRequest request;
  request.set_parent(parent);
  request.set_view(v1::VIEW_FULL);
  std::vector<v1::Measurement> listed;
  std::vector<int> pages;
  grpc::Status status = ListAll(request, &listed, &pages);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(), HasSubstr(big));
  EXPECT_THAT(status.error_message(), HasSubstr("VIEW_BASIC"));
  // BASIC lists it.
  request.set_view(v1::VIEW_BASIC);
  listed.clear();
  status = ListAll(request, &listed, &pages);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].exact_hessian().eigenvalues_size(), 1500);
}

TEST_F(ListPagesTest, BadListInputsAreInvalidArgument) {
  CreateCheckpoint("r", 1);
  const auto code = [&](auto call) {
    grpc::ClientContext context;
    return call(&context).error_code();
  };
  v1::ListMeasurementsRequest measurements;
  measurements.set_parent("runs/r/checkpoints/-");
  measurements.set_view(static_cast<v1::View>(7));
  v1::ListMeasurementsResponse m;
  EXPECT_EQ(code([&](grpc::ClientContext* c) {
              return stub_->ListMeasurements(c, measurements, &m);
            }),
            grpc::StatusCode::INVALID_ARGUMENT);
  v1::ListRunsRequest runs;
  runs.set_view(static_cast<v1::View>(-1));
  v1::ListRunsResponse r;
  EXPECT_EQ(code([&](grpc::ClientContext* c) {
              return stub_->ListRuns(c, runs, &r);
            }),
            grpc::StatusCode::INVALID_ARGUMENT);
  runs.set_view(v1::VIEW_FULL);
  runs.set_page_size(-1);
  EXPECT_EQ(code([&](grpc::ClientContext* c) {
              return stub_->ListRuns(c, runs, &r);
            }),
            grpc::StatusCode::INVALID_ARGUMENT);
  v1::ListCheckpointsRequest checkpoints;
  checkpoints.set_parent("runs/r");
  checkpoints.set_view(static_cast<v1::View>(3));
  v1::ListCheckpointsResponse k;
  EXPECT_EQ(code([&](grpc::ClientContext* c) {
              return stub_->ListCheckpoints(c, checkpoints, &k);
            }),
            grpc::StatusCode::INVALID_ARGUMENT);
  checkpoints.set_view(v1::VIEW_BASIC);
  checkpoints.set_page_token("garbage");
  EXPECT_EQ(code([&](grpc::ClientContext* c) {
              return stub_->ListCheckpoints(c, checkpoints, &k);
            }),
            grpc::StatusCode::INVALID_ARGUMENT);
  // Valid views list.
  checkpoints.clear_page_token();
  EXPECT_EQ(code([&](grpc::ClientContext* c) {
              return stub_->ListCheckpoints(c, checkpoints, &k);
            }),
            grpc::StatusCode::OK);
  EXPECT_EQ(k.checkpoints_size(), 1);
}

// The proto's paging comment cites the constants.
TEST(ListPageBoundsTest, AreTheDocumentedOnes) {
  std::ifstream file(absl::StrCat(CURVD_PROTO_DIR, "/curvd_service.proto"));
  std::stringstream proto;
  proto << file.rdbuf();
  ASSERT_FALSE(proto.str().empty());
  EXPECT_THAT(proto.str(), HasSubstr(absl::StrCat("its items past ",
                                                  kListPageBytes >> 20, " MiB")));
  EXPECT_THAT(proto.str(), HasSubstr(absl::StrCat("one over ",
                                                  kMaxListItemBytes >> 20, " MiB")));
}

TEST(ClearFullViewOnlyFieldsTest, ClearsMarkedFieldsAtAnyDepth) {
  v1::Measurement m;
  m.mutable_exact_hessian()->add_matrix(1);
  m.mutable_exact_hessian()->add_eigenvalues(2);
  v1::Measurement llc;
  v1::LlcChain* chain = llc.mutable_llc_calibration()
                            ->add_cells()
                            ->mutable_result()
                            ->add_chains();
  chain->set_llc(3);
  chain->add_loss_trace(4);
  chain->add_llc_running_mean(5);
  chain->add_distance_trace(6);
  chain->add_full_loss_trace(7);
  ClearFullViewOnlyFields(&m);
  ClearFullViewOnlyFields(&llc);
  EXPECT_EQ(m.exact_hessian().matrix_size(), 0);
  EXPECT_EQ(m.exact_hessian().eigenvalues_size(), 1);
  const v1::LlcChain& cleared =
      llc.llc_calibration().cells(0).result().chains(0);
  EXPECT_EQ(cleared.llc(), 3);
  EXPECT_EQ(cleared.loss_trace_size() + cleared.llc_running_mean_size() +
                cleared.distance_trace_size() + cleared.full_loss_trace_size(),
            0);
}

}  // namespace
}  // namespace curvd::server
