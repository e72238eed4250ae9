// Fresh temporary directories for tests.
#ifndef CURVD_TESTS_SERVER_TEST_DIRS_H_
#define CURVD_TESTS_SERVER_TEST_DIRS_H_

#include <stdlib.h>

#include <string>

#include "gtest/gtest.h"

namespace curvd::server::testing {

// A new empty directory under the test's temporary directory; left behind for
// inspection when a test fails.
inline std::string MakeTempDir() {
  std::string pattern = ::testing::TempDir() + "curvd_server_test_XXXXXX";
  char* dir = mkdtemp(pattern.data());
  EXPECT_NE(dir, nullptr);
  return pattern;
}

}  // namespace curvd::server::testing

#endif  // CURVD_TESTS_SERVER_TEST_DIRS_H_
