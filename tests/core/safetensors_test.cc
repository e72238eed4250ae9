#include "core/api/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "core/api/data_roots.h"
#include "tests/core/peak_memory.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace curvd::core {
namespace {

using ::testing::HasSubstr;

std::string FloatBytes(const std::vector<float>& values) {
  std::string bytes(values.size() * sizeof(float), '\0');
  std::memcpy(bytes.data(), values.data(), bytes.size());
  return bytes;
}

// A file made of a literal header and `data_size` zero bytes of data.
std::string FileWithHeader(const std::string& header, size_t data_size) {
  std::string out;
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i)
    out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  return out + header + std::string(data_size, '\0');
}

TEST(SafetensorsTest, RoundTripKeepsNamesDtypesShapesAndBytes) {
  std::vector<SafetensorsTensor> tensors = {
      {"weight", "F32", {2, 3}, FloatBytes({1, 2, 3, 4, 5, 6})},
      {"bias", "F64", {2}, std::string(16, '\x01')},
      {"count", "I64", {}, std::string(8, '\x02')},
      {"empty", "F16", {0, 4}, ""},
  };
  auto bytes = SerializeSafetensors(tensors);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  // The data must start 8-byte aligned after the header.
  uint64_t header_size = 0;
  std::memcpy(&header_size, bytes->data(), 8);
  EXPECT_EQ(header_size % 8, 0u);

  auto parsed = ParseSafetensors(*bytes);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->size(), 4u);
  // Sorted by name.
  EXPECT_EQ((*parsed)[0].name, "bias");
  EXPECT_EQ((*parsed)[1].name, "count");
  EXPECT_EQ((*parsed)[2].name, "empty");
  EXPECT_EQ((*parsed)[3].name, "weight");
  EXPECT_EQ((*parsed)[3].dtype, "F32");
  EXPECT_EQ((*parsed)[3].shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ((*parsed)[3].data, tensors[0].data);
  EXPECT_EQ((*parsed)[0].data, tensors[1].data);
  EXPECT_TRUE((*parsed)[1].shape.empty());
  EXPECT_EQ((*parsed)[1].data, tensors[2].data);
  EXPECT_EQ((*parsed)[2].shape, (std::vector<int64_t>{0, 4}));
}

TEST(SafetensorsTest, ParsesHandWrittenFileAndSkipsMetadata) {
  const std::string file = FileWithHeader(
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}})",
      3);
  auto parsed = ParseSafetensors(file);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->size(), 1u);
  EXPECT_EQ((*parsed)[0].name, "a");
  EXPECT_EQ((*parsed)[0].data.size(), 3u);
}

TEST(SafetensorsTest, DtypeSizes) {
  EXPECT_EQ(SafetensorsDtypeSize("F64"), 8);
  EXPECT_EQ(SafetensorsDtypeSize("F32"), 4);
  EXPECT_EQ(SafetensorsDtypeSize("BF16"), 2);
  EXPECT_EQ(SafetensorsDtypeSize("BOOL"), 1);
  EXPECT_EQ(SafetensorsDtypeSize("F8"), 0);
}

void ExpectInvalid(const std::string& file, const std::string& message_part) {
  auto parsed = ParseSafetensors(file);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument)
      << parsed.status();
  EXPECT_THAT(std::string(parsed.status().message()), HasSubstr(message_part));
}

TEST(SafetensorsTest, RejectsHeaderLengthLargerThanFile) {
  std::string file = FileWithHeader(R"({})", 0);
  file[0] = static_cast<char>(200);  // claims 200 header bytes; the file has 2
  ExpectInvalid(file, "header length 200 is larger than the 2 bytes");
}

TEST(SafetensorsTest, RejectsHugeHeaderLengthWithoutOverflow) {
  std::string file = FileWithHeader(R"({})", 0);
  std::memset(file.data(), 0xff, 8);
  ExpectInvalid(file, "is larger than the");
}

TEST(SafetensorsTest, RejectsFileShorterThanLengthField) {
  ExpectInvalid(std::string(5, '\0'), "too short");
}

TEST(SafetensorsTest, RejectsOffsetsBeyondTheData) {
  ExpectInvalid(
      FileWithHeader(
          R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8),
      "outside the 8 data bytes");
}

TEST(SafetensorsTest, RejectsSizeThatDoesNotMatchShape) {
  ExpectInvalid(
      FileWithHeader(
          R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", 16),
      "needs 12 bytes but its data_offsets span 16");
}

TEST(SafetensorsTest, RejectsGapsOverlapsAndTrailingData) {
  ExpectInvalid(
      FileWithHeader(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                     R"("b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}})",
                     3),
      "must be contiguous");
  ExpectInvalid(
      FileWithHeader(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}})",
                     4),
      "must be contiguous");
  ExpectInvalid(
      FileWithHeader(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})",
                     5),
      "cover 2 data bytes but the file has 5");
}

TEST(SafetensorsTest, RejectsShapeWhoseSizeOverflows) {
  ExpectInvalid(
      FileWithHeader(
          R"({"w":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,0]}})",
          0),
      "overflows");
}

TEST(SafetensorsTest, RejectsMalformedHeaders) {
  ExpectInvalid(FileWithHeader("{not json", 0), "not valid JSON");
  ExpectInvalid(FileWithHeader("[1,2]", 0), "not a JSON object");
  ExpectInvalid(
      FileWithHeader(std::string(1000, '[') + std::string(1000, ']'), 0),
      "nested too deeply");
  ExpectInvalid(
      FileWithHeader(R"({"w":{"dtype":"F7","shape":[1],"data_offsets":[0,1]}})",
                     1),
      "unknown dtype 'F7'");
  ExpectInvalid(
      FileWithHeader(
          R"({"w":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}})", 1),
      "not a non-negative integer");
  ExpectInvalid(FileWithHeader(R"({"w":{"dtype":"U8","shape":[1]}})", 1),
                "data_offsets");
}

TEST(SafetensorsTest, SerializeRejectsDataOfTheWrongSize) {
  auto bytes = SerializeSafetensors({{"w", "F32", {3}, std::string(8, '\0')}});
  ASSERT_FALSE(bytes.ok());
  EXPECT_EQ(bytes.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bytes.status().message()),
              HasSubstr("needs 12 bytes but has 8"));
}

TEST(SafetensorsTest, SerializeRejectsDuplicateNames) {
  auto bytes =
      SerializeSafetensors({{"w", "U8", {1}, "a"}, {"w", "U8", {1}, "b"}});
  ASSERT_FALSE(bytes.ok());
  EXPECT_THAT(std::string(bytes.status().message()),
              HasSubstr("duplicate tensor name 'w'"));
}

TEST(SafetensorsTest, ReadFileReportsMissingFileAsNotFound) {
  auto parsed = ReadSafetensorsFile("/nonexistent/curvd/weights.safetensors");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kNotFound);
}

TEST(SafetensorsTest, IndexGivesEachTensorsPlaceInTheFile) {
  const std::string path = ::testing::TempDir() + "/index.safetensors";
  const std::string bytes =
      SerializeSafetensors({{"b", "U8", {3}, "xyz"}, {"a", "F32", {1}, "abcd"}})
          .value();
  std::ofstream(path, std::ios::binary) << bytes;
  FileDescriptor fd(open(path.c_str(), O_RDONLY));
  auto index = ReadSafetensorsIndex(fd.get(), path);
  ASSERT_TRUE(index.ok()) << index.status();
  ASSERT_EQ(index->size(), 2u);
  EXPECT_EQ((*index)[0].name, "a");
  EXPECT_EQ(bytes.substr((*index)[0].offset, (*index)[0].bytes), "abcd");
  EXPECT_EQ(bytes.substr((*index)[1].offset, (*index)[1].bytes), "xyz");
  auto capped = ReadSafetensorsIndex(fd.get(), path, 16);
  ASSERT_FALSE(capped.ok());
  EXPECT_THAT(std::string(capped.status().message()),
              HasSubstr(path + ": safetensors: header length"));
  EXPECT_THAT(std::string(capped.status().message()),
              HasSubstr("exceeds the limit of 16 bytes"));
}

// Issue 15's 97 MiB header took 1.7 GB to refuse; its length alone refuses it
// now, before any of it is read.
TEST(SafetensorsTest, HugeHeaderIsRefusedBeforeItIsRead) {
  const std::string path = ::testing::TempDir() + "/huge_header.safetensors";
  const uint64_t header = uint64_t{97} << 20;
  {
    std::ofstream out(path, std::ios::binary);
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>(header >> (8 * i)));
  }
  ASSERT_EQ(truncate(path.c_str(), static_cast<off_t>(8 + header + 16)), 0);
  FileDescriptor fd(open(path.c_str(), O_RDONLY));
  absl::StatusOr<std::vector<SafetensorsEntry>> index;
  const int64_t growth = testing::PeakRssGrowth(
      [&] { index = ReadSafetensorsIndex(fd.get(), path); });
  ASSERT_FALSE(index.ok());
  EXPECT_EQ(index.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(index.status().message()),
              HasSubstr("exceeds the limit of 16777216 bytes"));
  if (growth >= 0) {
    EXPECT_LT(growth, int64_t{8} << 20);
  }
  unlink(path.c_str());
}

}  // namespace
}  // namespace curvd::core
