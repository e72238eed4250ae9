#include "server/enum_values.h"

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/descriptor.h"

namespace curvd::server {
namespace {

using ::google::protobuf::EnumDescriptor;
using ::google::protobuf::FieldDescriptor;
using ::google::protobuf::Message;
using ::google::protobuf::Reflection;

// "LossSliceSpec.Direction" for curvd.v1.LossSliceSpec.Direction: the name
// as the proto files write it.
std::string EnumName(const EnumDescriptor& type) {
  const std::string& package = type.file()->package();
  absl::string_view name = type.full_name();
  if (!package.empty() && absl::StartsWith(name, package + ".")) {
    name.remove_prefix(package.size() + 1);
  }
  return std::string(name);
}

absl::Status CheckValue(const FieldDescriptor& field, int value,
                        const std::string& path) {
  const EnumDescriptor& type = *field.enum_type();
  if (type.FindValueByNumber(value) != nullptr) return absl::OkStatus();
  std::vector<std::string> known;
  for (int i = 0; i < type.value_count(); ++i) {
    known.push_back(
        absl::StrCat(type.value(i)->name(), " = ", type.value(i)->number()));
  }
  return absl::InvalidArgumentError(
      absl::StrCat(path, " ", value, " is not a value of ", EnumName(type),
                   " (", absl::StrJoin(known, ", "), ")"));
}

// `prefix` is the path of `message` from the outermost one, "" or ending in
// '.'.
absl::Status CheckMessage(const Message& message, const std::string& prefix) {
  const Reflection& reflection = *message.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection.ListFields(message, &fields);  // only the set ones
  for (const FieldDescriptor* field : fields) {
    const std::string path = prefix + field->name();
    const bool is_enum = field->cpp_type() == FieldDescriptor::CPPTYPE_ENUM;
    const bool is_message =
        field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE;
    if (!is_enum && !is_message) continue;
    if (!field->is_repeated()) {
      absl::Status status =
          is_enum
              ? CheckValue(*field, reflection.GetEnumValue(message, field),
                           path)
              : CheckMessage(reflection.GetMessage(message, field), path + ".");
      if (!status.ok()) return status;
      continue;
    }
    for (int i = 0; i < reflection.FieldSize(message, field); ++i) {
      const std::string element = absl::StrCat(path, "[", i, "]");
      absl::Status status =
          is_enum
              ? CheckValue(*field,
                           reflection.GetRepeatedEnumValue(message, field, i),
                           element)
              : CheckMessage(reflection.GetRepeatedMessage(message, field, i),
                             element + ".");
      if (!status.ok()) return status;
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckEnumValues(const Message& message) {
  return CheckMessage(message, "");
}

}  // namespace curvd::server
