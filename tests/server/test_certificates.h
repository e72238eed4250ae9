// A throw-away PKI for the TLS tests, made at test time by
// tests/make_test_certificates.sh (openssl), so that no key is committed.
#ifndef CURVD_TESTS_SERVER_TEST_CERTIFICATES_H_
#define CURVD_TESTS_SERVER_TEST_CERTIFICATES_H_

#include <cstdlib>
#include <string>

#include "common/file_contents.h"
#include "gtest/gtest.h"
#include "test_dirs.h"

namespace curvd::server::testing {

// Files of one PKI: ca.pem, server.pem/.key (localhost, 127.0.0.1) and
// client.pem/.key (common name "trainer-cert"), all signed by the CA.
class TestCertificates {
 public:
  // Makes them in a new temporary directory; fails the test when openssl
  // does.
  TestCertificates() : dir_(MakeTempDir()) {
    const std::string command =
        std::string(CURVD_MAKE_TEST_CERTIFICATES) + " " + dir_;
    EXPECT_EQ(std::system(command.c_str()), 0) << command;
  }

  std::string Path(const std::string& file) const { return dir_ + "/" + file; }
  // The contents of `file`; empty (and a test failure) when unreadable.
  std::string Read(const std::string& file) const {
    auto contents = common::ReadFileContents(Path(file));
    EXPECT_TRUE(contents.ok()) << contents.status();
    return contents.ok() ? *contents : "";
  }

 private:
  std::string dir_;
};

}  // namespace curvd::server::testing

#endif  // CURVD_TESTS_SERVER_TEST_CERTIFICATES_H_
