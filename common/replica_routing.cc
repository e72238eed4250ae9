#include "common/replica_routing.h"

#include "absl/strings/strip.h"

namespace curvd::common {
namespace {

using ::google::protobuf::FieldDescriptor;

constexpr absl::string_view kRunIdField = "run_id";
constexpr absl::string_view kRunNameFields[] = {"name", "parent", "run"};

// The run segment of "runs/{run}[/...]", or empty.
absl::string_view RunSegment(absl::string_view name) {
  if (!absl::ConsumePrefix(&name, "runs/")) return {};
  return name.substr(0, name.find('/'));
}

// The value of `message`'s singular string field `field_name`, or empty.
std::string StringField(const google::protobuf::Message& message,
                        absl::string_view field_name) {
  const FieldDescriptor* field =
      message.GetDescriptor()->FindFieldByName(std::string(field_name));
  if (field == nullptr || field->is_repeated() ||
      field->cpp_type() != FieldDescriptor::CPPTYPE_STRING) {
    return "";
  }
  return message.GetReflection()->GetString(message, field);
}

}  // namespace

std::optional<std::string> RunIdOf(const google::protobuf::Message& request) {
  std::string id = StringField(request, kRunIdField);
  for (absl::string_view field : kRunNameFields) {
    if (!id.empty()) break;
    id = std::string(RunSegment(StringField(request, field)));
  }
  if (id.empty()) return std::nullopt;
  return id;
}

}  // namespace curvd::common
