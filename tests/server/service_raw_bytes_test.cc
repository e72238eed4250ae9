// Bytes that are not a method's request message, sent with a generic stub, are
// refused with INVALID_ARGUMENT naming the message type, by unary and
// streaming methods alike; the same stub's well-formed bytes are served.
#include <grpcpp/generic/generic_stub.h>

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service_fixture.h"

namespace curvd::server {
namespace {

// A length-delimited field 1 that claims 5 bytes and has 2: no message parses.
const std::string kTruncated(
    "\x0a\x05"
    "ab",
    4);

struct RawResult {
  grpc::Status status;
  int responses = 0;
  std::string first_response;  // serialized
};

class RawBytesTest : public ServiceTest {
 protected:
  // Calls "/curvd.v1.Curvd/{method}" sending `messages` as they are, reading
  // every response.
  RawResult Call(const std::string& method,
                 const std::vector<std::string>& messages) {
    grpc::GenericStub stub(channel_);
    grpc::CompletionQueue cq;
    grpc::ClientContext context;
    std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call =
        stub.PrepareCall(&context, "/curvd.v1.Curvd/" + method, &cq);
    RawResult result;
    call->StartCall(nullptr);
    bool ok = Next(cq);
    for (const std::string& message : messages) {
      if (!ok) break;
      grpc::Slice slice(message);
      grpc::ByteBuffer bytes(&slice, 1);
      call->Write(bytes, nullptr);
      ok = Next(cq);
    }
    if (ok) {
      call->WritesDone(nullptr);
      Next(cq);
    }
    while (true) {
      grpc::ByteBuffer response;
      call->Read(&response, nullptr);
      if (!Next(cq)) break;
      if (result.responses++ == 0) {
        std::vector<grpc::Slice> slices;
        EXPECT_TRUE(response.Dump(&slices).ok());
        for (const grpc::Slice& s : slices) {
          result.first_response.append(reinterpret_cast<const char*>(s.begin()),
                                       s.size());
        }
      }
    }
    call->Finish(&result.status, nullptr);
    Next(cq);
    cq.Shutdown();
    void* tag;
    while (cq.Next(&tag, &ok)) {
    }
    return result;
  }

 private:
  // Waits for the one outstanding operation; whether it succeeded.
  static bool Next(grpc::CompletionQueue& cq) {
    void* tag;
    bool ok = false;
    EXPECT_TRUE(cq.Next(&tag, &ok));
    return ok;
  }
};

TEST_F(RawBytesTest, UndecodableRequestsAreInvalidArgumentNamingTheType) {
  const std::string parent = CreateCheckpoint("r", 1);
  const struct {
    const char* method;
    const char* type;
  } cases[] = {
      {"CreateMeasurement", "CreateMeasurementRequest"},  // unary
      {"GetRun", "GetRunRequest"},
      {"ListRuns", "ListRunsRequest"},
      {"ReadBlob", "ReadBlobRequest"},  // server streaming
      {"WatchMeasurement", "WatchMeasurementRequest"},
      {"WriteBlob", "WriteBlobRequest"},  // client streaming
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.method);
    RawResult result = Call(c.method, {kTruncated});
    EXPECT_EQ(result.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(result.status.error_message(),
              absl::StrCat("request is not a valid curvd.v1.", c.type));
    EXPECT_EQ(result.responses, 0);
  }
  EXPECT_EQ(ListAll(parent).measurements_size(), 0);
}

// A later message of an upload is parsed too: it is refused, not taken for
// the client closing its side.
TEST_F(RawBytesTest, AnUndecodableLaterUploadMessageIsInvalidArgument) {
  const std::string data = "some bytes";
  v1::WriteBlobRequest first;
  first.set_digest(Sha256(data));
  first.set_size_bytes(static_cast<int64_t>(data.size()));
  first.set_data(data.substr(0, 4));
  RawResult result = Call("WriteBlob", {first.SerializeAsString(), kTruncated});
  EXPECT_EQ(result.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(result.status.error_message(),
            "request is not a valid curvd.v1.WriteBlobRequest");
}

// The generic stub reaches the service: well-formed bytes get the answers the
// typed stub gets.
TEST_F(RawBytesTest, WellFormedBytesAreServed) {
  CreateRun("r");
  v1::GetRunRequest get;
  get.set_name("runs/r");
  RawResult found = Call("GetRun", {get.SerializeAsString()});
  ASSERT_TRUE(found.status.ok()) << found.status.error_message();
  v1::Run run;
  ASSERT_TRUE(run.ParseFromString(found.first_response));
  EXPECT_EQ(run.name(), "runs/r");
  get.set_name("runs/nope");
  EXPECT_EQ(Call("GetRun", {get.SerializeAsString()}).status.error_code(),
            grpc::StatusCode::NOT_FOUND);
  // An empty message is a request with every field unset.
  RawResult listed = Call("ListRuns", {""});
  ASSERT_TRUE(listed.status.ok()) << listed.status.error_message();
  v1::ListRunsResponse runs;
  ASSERT_TRUE(runs.ParseFromString(listed.first_response));
  EXPECT_EQ(runs.runs_size(), 1);

  const std::string digest = Upload("a blob to read");
  v1::ReadBlobRequest read;
  read.set_digest(digest);
  RawResult chunks = Call("ReadBlob", {read.SerializeAsString()});
  ASSERT_TRUE(chunks.status.ok()) << chunks.status.error_message();
  v1::ReadBlobResponse chunk;
  ASSERT_TRUE(chunk.ParseFromString(chunks.first_response));
  EXPECT_EQ(chunk.data(), "a blob to read");
}

}  // namespace
}  // namespace curvd::server
