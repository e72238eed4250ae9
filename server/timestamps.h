// The time the service stamps on what it stores (create, start and end times).
#ifndef CURVD_SERVER_TIMESTAMPS_H_
#define CURVD_SERVER_TIMESTAMPS_H_

#include "google/protobuf/timestamp.pb.h"

namespace curvd::server {

// The current time to the microsecond, the resolution the store keeps
// (*_time_us columns), so that a time read back equals the one written.
// protobuf's TimeUtil::GetCurrentTime is not used: it has whole seconds.
// Thread-safe.
google::protobuf::Timestamp TimestampNow();

}  // namespace curvd::server

#endif  // CURVD_SERVER_TIMESTAMPS_H_
