// The child gets the archive's descriptor as its standard input and one pipe
// as its standard output and error; the parent reads the pipe (a bounded
// prefix) until the child closes it or the deadline passes, then reaps the
// child, killing it first on a timeout. posix_spawn, not fork: the server is
// multi-threaded and large, and glibc's posix_spawn execs from a vfork-style
// child that copies nothing and reports exec failures to the caller.
#include "core/data/archive_check.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <map>
#include <optional>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"

extern char** environ;

namespace curvd::core {
namespace {

// Of the child's output, what a message may quote.
constexpr size_t kMaxOutputBytes = 4096;
// Verdicts kept; past this the cache starts again empty.
constexpr size_t kMaxVerdicts = 4096;

using FileIdentity = std::tuple<dev_t, ino_t, off_t, time_t, long, time_t, long>;

class Verdicts {
 public:
  std::optional<absl::Status> Find(const FileIdentity& file) {
    absl::MutexLock lock(&mu_);
    auto it = verdicts_.find(file);
    if (it == verdicts_.end()) return std::nullopt;
    return it->second;
  }
  void Keep(const FileIdentity& file, const absl::Status& verdict) {
    absl::MutexLock lock(&mu_);
    if (verdicts_.size() >= kMaxVerdicts) verdicts_.clear();
    verdicts_[file] = verdict;
  }

 private:
  absl::Mutex mu_;
  std::map<FileIdentity, absl::Status> verdicts_ ABSL_GUARDED_BY(mu_);
};

Verdicts& TheVerdicts() {
  static Verdicts* verdicts = new Verdicts();
  return *verdicts;
}

std::optional<FileIdentity> IdentityOf(int fd) {
  struct stat info;
  if (fstat(fd, &info) != 0) return std::nullopt;
  return FileIdentity(info.st_dev, info.st_ino, info.st_size,
                      info.st_mtim.tv_sec, info.st_mtim.tv_nsec,
                      info.st_ctim.tv_sec, info.st_ctim.tv_nsec);
}

// Reads `pipe` until its writers close it or `deadline`; false on a timeout.
bool ReadUntilClosed(int pipe, absl::Time deadline, std::string& output) {
  while (true) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return false;
    pollfd ready = {pipe, POLLIN, 0};
    const int polled = poll(
        &ready, 1,
        static_cast<int>(std::min<int64_t>(absl::ToInt64Milliseconds(left) + 1,
                                           INT_MAX)));
    if (polled < 0 && errno != EINTR) return true;
    if (polled <= 0) continue;
    char buffer[4096];
    const ssize_t n = read(pipe, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return true;
    output.append(buffer, std::min<size_t>(n, kMaxOutputBytes - std::min(
                                                  output.size(), kMaxOutputBytes)));
  }
}

// The child's verdict from how it ended and what it wrote.
absl::Status VerdictOf(int wait_status, const std::string& output) {
  if (WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0)
    return absl::OkStatus();
  if (WIFSIGNALED(wait_status)) {
    const int signal = WTERMSIG(wait_status);
    return absl::InvalidArgumentError(absl::StrCat(
        "LibTorch's TorchScript loader crashed on it (signal ", signal, ", ",
        strsignal(signal), ") in the child process curvd loads archives in "
        "first"));
  }
  const absl::string_view message = absl::StripAsciiWhitespace(output);
  if (message.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the archive checker exited with status ",
                     WEXITSTATUS(wait_status), " and said nothing"));
  }
  return absl::InvalidArgumentError(message);
}

absl::Status RunChild(int fd, const std::string& checker,
                      absl::Duration timeout) {
  int pipe[2];
  if (pipe2(pipe, O_CLOEXEC) != 0) {
    return absl::InternalError(
        absl::StrCat("cannot make a pipe: ", std::strerror(errno)));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fd, STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, pipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, pipe[1], STDERR_FILENO);
  char* argv[] = {const_cast<char*>(checker.c_str()), nullptr};
  pid_t child = 0;
  const int spawned = posix_spawn(&child, checker.c_str(), &actions, nullptr,
                                  argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  close(pipe[1]);
  if (spawned != 0) {
    close(pipe[0]);
    return absl::FailedPreconditionError(
        absl::StrCat("cannot run the TorchScript archive checker '", checker,
                     "': ", std::strerror(spawned)));
  }
  std::string output;
  const bool closed =
      ReadUntilClosed(pipe[0], absl::Now() + timeout, output);
  close(pipe[0]);
  if (!closed) kill(child, SIGKILL);
  int wait_status = 0;
  while (waitpid(child, &wait_status, 0) < 0) {
    if (errno != EINTR) {
      return absl::InternalError(absl::StrCat(
          "cannot wait for the archive checker: ", std::strerror(errno)));
    }
  }
  if (!closed) {
    return absl::DeadlineExceededError(absl::StrCat(
        "loading it took longer than ", absl::FormatDuration(timeout),
        " in the child process curvd loads archives in first, which was "
        "stopped"));
  }
  return VerdictOf(wait_status, output);
}

}  // namespace

absl::Status CheckArchiveInChild(int fd, const std::string& checker,
                                 absl::Duration timeout) {
  const std::optional<FileIdentity> file = IdentityOf(fd);
  if (file.has_value()) {
    if (std::optional<absl::Status> known = TheVerdicts().Find(*file))
      return *known;
  }
  absl::Status verdict = RunChild(fd, checker, timeout);
  if (lseek(fd, 0, SEEK_SET) != 0) {
    return absl::InternalError(absl::StrCat(
        "cannot rewind the archive after checking it: ", std::strerror(errno)));
  }
  // A timeout may be the machine's load, and a checker that cannot run says
  // nothing of the archive: neither is kept.
  if (file.has_value() && (verdict.ok() || absl::IsInvalidArgument(verdict)))
    TheVerdicts().Keep(*file, verdict);
  return verdict;
}

}  // namespace curvd::core
