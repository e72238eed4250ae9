// What the server and the client both read off a Measurement: the name of its
// kind and whether its state is final.
#ifndef CURVD_COMMON_MEASUREMENTS_H_
#define CURVD_COMMON_MEASUREMENTS_H_

#include <string>

#include "curvd/v1/resources.pb.h"

namespace curvd::common {

// True for QUEUED/RUNNING's successors: SUCCEEDED, FAILED, CANCELLED.
bool IsTerminal(curvd::v1::Measurement::State state);

// The name of the spec's kind field ("sharpness", "hessian_trace",
// "spectral_density", "trace_h3", ..., "plan"), or "unspecified" when the spec
// sets none: curvctl's spelling, the `kind` label of metrics and the store's
// kind column.
std::string KindName(const curvd::v1::MeasurementSpec& spec);

}  // namespace curvd::common

#endif  // CURVD_COMMON_MEASUREMENTS_H_
