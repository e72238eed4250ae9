// "Use the run's latest calibration": an llc request that sets
// use_latest_calibration takes step_size, localization and n_beta from the
// recommended cell of the latest SUCCEEDED llc_calibration measurement of its
// run (issue 12).
#ifndef CURVD_SERVER_LATEST_CALIBRATION_H_
#define CURVD_SERVER_LATEST_CALIBRATION_H_

#include <string>

#include "absl/status/status.h"
#include "curvd/v1/resources.pb.h"
#include "server/store.h"

namespace curvd::server {

// When `spec`'s llc (alone or in its plan) sets use_latest_calibration, sets
// its step_size, localization and n_beta to the recommended cell of the
// latest-created SUCCEEDED measurement of `run_name` (any checkpoint) with an
// llc_calibration result, alone or in a plan, and its `calibration` to that
// measurement's name; otherwise leaves `spec` as it is. InvalidArgument
// naming the field when the spec also sets one of the three values;
// FailedPrecondition when the run has no such measurement or its latest has
// no recommended cell; the store's errors. Reads the store; thread-safe as
// the store is.
absl::Status ApplyLatestCalibration(Store& store, const std::string& run_name,
                                    curvd::v1::MeasurementSpec* spec);

}  // namespace curvd::server

#endif  // CURVD_SERVER_LATEST_CALIBRATION_H_
