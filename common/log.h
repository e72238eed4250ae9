// The server's diagnostics: one line per message on stderr, with its severity
// and time. Debian 12's Abseil (20220623) has no absl/log; this header is the
// one place to switch to it (CURVD_LOG(s) becomes LOG(s)) once Debian ships it.
#ifndef CURVD_COMMON_LOG_H_
#define CURVD_COMMON_LOG_H_

#include <sstream>

#include "absl/strings/string_view.h"

namespace curvd::common {

enum class LogSeverity { kInfo, kWarning, kError };

// Writes "<S> <UTC time to the microsecond> <message>\n" to stderr, S being I,
// W or E, with one write. Thread-safe: lines from several threads never
// interleave.
void LogLine(LogSeverity severity, absl::string_view message);

// Collects one line with << and writes it through LogLine when destroyed. Use
// it through CURVD_LOG, as a temporary.
class LogMessage {
 public:
  explicit LogMessage(LogSeverity severity) : severity_(severity) {}
  LogMessage(const LogMessage&) = delete;
  LogMessage& operator=(const LogMessage&) = delete;
  ~LogMessage() { LogLine(severity_, stream_.str()); }

  template <typename T>
  LogMessage& operator<<(const T& value) {
    stream_ << value;
    return *this;
  }

 private:
  const LogSeverity severity_;
  std::ostringstream stream_;
};

}  // namespace curvd::common

#define CURVD_LOG_SEVERITY_INFO ::curvd::common::LogSeverity::kInfo
#define CURVD_LOG_SEVERITY_WARNING ::curvd::common::LogSeverity::kWarning
#define CURVD_LOG_SEVERITY_ERROR ::curvd::common::LogSeverity::kError

// CURVD_LOG(INFO) << "serving on port " << port; one line, no "\n" needed.
#define CURVD_LOG(severity) \
  ::curvd::common::LogMessage(CURVD_LOG_SEVERITY_##severity)

#endif  // CURVD_COMMON_LOG_H_
