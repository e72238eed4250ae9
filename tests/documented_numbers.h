// How the proto's comments and curvctl's help write core's defaults and
// bounds, so that tests can look for the values read from core.
#ifndef CURVD_TESTS_DOCUMENTED_NUMBERS_H_
#define CURVD_TESTS_DOCUMENTED_NUMBERS_H_

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"

namespace curvd::testing {

// As the docs write numbers: 1e-6, 0.01, 300.
inline std::string Number(double value) {
  return absl::StrReplaceAll(absl::StrFormat("%g", value),
                             {{"e-0", "e-"}, {"e+0", "e"}});
}

// "default 300".
inline std::string Default(double value) {
  return absl::StrCat("default ", Number(value));
}

// "1..64".
inline std::string Range(int low, int high) {
  return absl::StrCat(low, "..", high);
}

// "1%" for 0.01.
inline std::string Percent(double fraction) {
  return absl::StrCat(Number(fraction * 100), "%");
}

}  // namespace curvd::testing

#endif  // CURVD_TESTS_DOCUMENTED_NUMBERS_H_
