#include "server/timestamps.h"

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/protobuf/util/time_util.h"

namespace curvd::server {

google::protobuf::Timestamp TimestampNow() {
  return google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(
      absl::ToUnixMicros(absl::Now()));
}

}  // namespace curvd::server
