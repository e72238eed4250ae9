// CheckEnumValues finds an undeclared enum value wherever a message holds one
// and names it by its path; declared values and unset fields pass.
#include "server/enum_values.h"

#include <memory>

#include "curvd/v1/curvd_service.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/protobuf/dynamic_message.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace curvd::server {
namespace {

namespace v1 = ::curvd::v1;
using ::testing::HasSubstr;

void ExpectRefused(const google::protobuf::Message& message,
                   const std::string& text) {
  const absl::Status status = CheckEnumValues(message);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), HasSubstr(text));
}

TEST(EnumValuesTest, DeclaredValuesAndUnsetFieldsPass) {
  v1::CreateMeasurementRequest request;
  EXPECT_TRUE(CheckEnumValues(request).ok());
  request.mutable_spec()->set_loss(v1::LOSS_FUNCTION_MSE);
  request.mutable_spec()->set_precision(v1::PRECISION_TF32);
  request.mutable_spec()->mutable_hessian_trace()->set_distribution(
      v1::PROBE_DISTRIBUTION_GAUSSIAN);
  EXPECT_TRUE(CheckEnumValues(request).ok());
}

TEST(EnumValuesTest, NamesTheFieldItsValueAndTheEnumsValues) {
  v1::CreateMeasurementRequest request;
  request.mutable_spec()->mutable_hessian_trace()->set_distribution(
      static_cast<v1::ProbeDistribution>(99));
  const absl::Status status = CheckEnumValues(request);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      status.message(),
      "spec.hessian_trace.distribution 99 is not a value of ProbeDistribution "
      "(PROBE_DISTRIBUTION_UNSPECIFIED = 0, PROBE_DISTRIBUTION_RADEMACHER "
      "= 1, PROBE_DISTRIBUTION_GAUSSIAN = 2)");
}

TEST(EnumValuesTest, NestedEnumTypesAreNamedWithinTheirPackage) {
  v1::MeasurementSpec spec;
  spec.mutable_loss_slice()->set_direction(
      static_cast<v1::LossSliceSpec::Direction>(-3));
  ExpectRefused(
      spec,
      "loss_slice.direction -3 is not a value of LossSliceSpec.Direction");
}

TEST(EnumValuesTest, LooksInsideRepeatedMessages) {
  v1::ListMeasurementsResponse response;
  response.add_measurements()->set_state(v1::Measurement::QUEUED);
  response.add_measurements()->set_state(
      static_cast<v1::Measurement::State>(42));
  ExpectRefused(response,
                "measurements[1].state 42 is not a value of Measurement.State");
}

TEST(EnumValuesTest, LooksInsideMapsAndOneofs) {
  google::protobuf::Struct value;
  (*value.mutable_fields())["a"].set_number_value(1);
  EXPECT_TRUE(CheckEnumValues(value).ok());
  (*value.mutable_fields())["a"].set_null_value(
      static_cast<google::protobuf::NullValue>(7));
  ExpectRefused(value,
                "fields[0].value.null_value 7 is not a value of NullValue");
}

// No curvd message has a repeated enum, so one is made for the test.
TEST(EnumValuesTest, LooksAtEachElementOfARepeatedEnum) {
  google::protobuf::FileDescriptorProto file;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
      R"pb(
        name: "repeated_enum.proto"
        package: "test"
        syntax: "proto3"
        enum_type {
          name: "Color"
          value { name: "COLOR_UNSPECIFIED" number: 0 }
          value { name: "RED" number: 1 }
        }
        message_type {
          name: "Palette"
          field {
            name: "colors"
            number: 1
            label: LABEL_REPEATED
            type: TYPE_ENUM
            type_name: ".test.Color"
          }
        }
      )pb",
      &file));
  google::protobuf::DescriptorPool pool;
  ASSERT_NE(pool.BuildFile(file), nullptr);
  const google::protobuf::Descriptor* palette =
      pool.FindMessageTypeByName("test.Palette");
  google::protobuf::DynamicMessageFactory factory(&pool);
  std::unique_ptr<google::protobuf::Message> message(
      factory.GetPrototype(palette)->New());
  const google::protobuf::FieldDescriptor* colors =
      palette->FindFieldByName("colors");
  const google::protobuf::Reflection* reflection = message->GetReflection();
  reflection->AddEnumValue(message.get(), colors, 1);
  EXPECT_TRUE(CheckEnumValues(*message).ok());
  reflection->AddEnumValue(message.get(), colors, 5);
  ExpectRefused(*message,
                "colors[1] 5 is not a value of Color (COLOR_UNSPECIFIED = 0, "
                "RED = 1)");
}

}  // namespace
}  // namespace curvd::server
