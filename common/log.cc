#include "common/log.h"

#include <cstdio>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace curvd::common {
namespace {

absl::Mutex stderr_mutex(absl::kConstInit);

char SeverityLetter(LogSeverity severity) {
  switch (severity) {
    case LogSeverity::kInfo:
      return 'I';
    case LogSeverity::kWarning:
      return 'W';
    case LogSeverity::kError:
      return 'E';
  }
  return '?';
}

}  // namespace

void LogLine(LogSeverity severity, absl::string_view message) {
  // The whole line is built first so that it leaves in one fwrite; the mutex
  // keeps lines whole where stderr would split a long write.
  std::string line =
      absl::StrCat(std::string(1, SeverityLetter(severity)), " ",
                   absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", absl::Now(),
                                    absl::UTCTimeZone()),
                   " ", message, "\n");
  absl::MutexLock lock(&stderr_mutex);
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace curvd::common
