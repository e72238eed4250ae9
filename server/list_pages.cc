#include "server/list_pages.h"

#include <vector>

#include "curvd/v1/resources.pb.h"
#include "google/protobuf/descriptor.h"

namespace curvd::server {

using ::google::protobuf::FieldDescriptor;
using ::google::protobuf::Message;
using ::google::protobuf::Reflection;

// Walks the fields that are set (ListFields), so the cost follows the message,
// not its type's size.
void ClearFullViewOnlyFields(Message* message) {
  const Reflection* reflection = message->GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection->ListFields(*message, &fields);
  for (const FieldDescriptor* field : fields) {
    if (field->options().GetExtension(curvd::v1::full_view_only)) {
      reflection->ClearField(message, field);
    } else if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      if (field->is_repeated()) {
        const int n = reflection->FieldSize(*message, field);
        for (int i = 0; i < n; ++i) {
          ClearFullViewOnlyFields(
              reflection->MutableRepeatedMessage(message, field, i));
        }
      } else {
        ClearFullViewOnlyFields(reflection->MutableMessage(message, field));
      }
    }
  }
}

}  // namespace curvd::server
