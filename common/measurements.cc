#include "common/measurements.h"

#include <google/protobuf/descriptor.h>

namespace curvd::common {

bool IsTerminal(curvd::v1::Measurement::State state) {
  return state == curvd::v1::Measurement::SUCCEEDED ||
         state == curvd::v1::Measurement::FAILED ||
         state == curvd::v1::Measurement::CANCELLED;
}

std::string KindName(const curvd::v1::MeasurementSpec& spec) {
  // The kind fields are named as the kinds are.
  const google::protobuf::FieldDescriptor* field =
      spec.GetReflection()->GetOneofFieldDescriptor(
          spec,
          curvd::v1::MeasurementSpec::descriptor()->FindOneofByName("kind"));
  return field != nullptr ? field->name() : "unspecified";
}

}  // namespace curvd::common
