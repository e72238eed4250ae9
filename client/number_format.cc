#include "client/number_format.h"

#include "absl/strings/str_format.h"

namespace curvd::client {

std::string RoundTripNumber(double value) {
  return absl::StrFormat("%.17g", value);
}

std::string ShortNumber(double value) { return absl::StrFormat("%.6g", value); }

}  // namespace curvd::client
