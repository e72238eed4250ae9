// How curvctl writes numbers: in full for machines, short for people.
#ifndef CURVD_CLIENT_NUMBER_FORMAT_H_
#define CURVD_CLIENT_NUMBER_FORMAT_H_

#include <string>

namespace curvd::client {

// Enough digits ("%.17g") that reading the text back gives the same double:
// what CSV and JSON consumers get.
std::string RoundTripNumber(double value);

// Six significant digits ("%.6g"): enough for a person to compare values.
std::string ShortNumber(double value);

}  // namespace curvd::client

#endif  // CURVD_CLIENT_NUMBER_FORMAT_H_
