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
#include <chrono>
#include <climits>
#include <cstring>
#include <map>
#include <optional>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"

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

// Reads `pipe` until its writers close it or `deadline`; false on a timeout
// or when the pipe cannot be polled (the caller then kills the child).
bool ReadUntilClosed(int pipe, std::chrono::steady_clock::time_point deadline,
                     std::string& output) {
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd ready = {pipe, POLLIN, 0};
    const int polled = poll(
        &ready, 1, static_cast<int>(std::min<int64_t>(left.count() + 1, INT_MAX)));
    if (polled < 0 && errno != EINTR) return false;
    if (polled <= 0) continue;
    char buffer[4096];
    const ssize_t n = read(pipe, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return true;
    output.append(buffer, std::min<size_t>(n, kMaxOutputBytes - std::min(
                                                  output.size(), kMaxOutputBytes)));
  }
}

// Signals by which a loader crash ends the child; any other (SIGKILL from
// the kernel's out-of-memory killer, a signal from outside) says nothing of
// the archive.
bool IsCrash(int signal) {
  return signal == SIGSEGV || signal == SIGBUS || signal == SIGILL ||
         signal == SIGFPE || signal == SIGABRT || signal == SIGTRAP;
}

// The child's verdict from how it ended and what it wrote: OK or
// InvalidArgument for what the archive decides, Unavailable or
// FailedPrecondition otherwise.
absl::Status VerdictOf(int wait_status, const std::string& output) {
  const absl::string_view message = absl::StripAsciiWhitespace(output);
  if (WIFSIGNALED(wait_status)) {
    const int signal = WTERMSIG(wait_status);
    if (!IsCrash(signal)) {
      return absl::UnavailableError(absl::StrCat(
          "the archive checker was killed by signal ", signal, " (",
          strsignal(signal), "), perhaps for want of memory; try again"));
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "LibTorch's TorchScript loader crashed on it (signal ", signal, ", ",
        strsignal(signal), ") in the child process curvd loads archives in "
        "first"));
  }
  const int code = WEXITSTATUS(wait_status);
  if (code == 0) return absl::OkStatus();
  if (code == kArchiveRefusedExitCode) {
    return absl::InvalidArgumentError(
        message.empty() ? "the loader refused it and said nothing" : message);
  }
  // 127: the checker's libraries missing, say: the deployment, not the
  // archive.
  return absl::FailedPreconditionError(absl::StrCat(
      "the archive checker exited with status ", code,
      message.empty() ? "" : ": ", message));
}

// Attributes of the child: no signal blocked (the server blocks SIGTERM,
// SIGINT and SIGHUP for its signal thread) and the default action for those
// and SIGPIPE, so that the child can be stopped like any process.
struct SpawnAttributes {
  SpawnAttributes() {
    posix_spawnattr_init(&attributes);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attributes, &none);
    sigset_t defaults;
    sigemptyset(&defaults);
    for (int signal : {SIGPIPE, SIGTERM, SIGINT, SIGHUP})
      sigaddset(&defaults, signal);
    posix_spawnattr_setsigdefault(&attributes, &defaults);
    posix_spawnattr_setflags(&attributes,
                             POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  }
  ~SpawnAttributes() { posix_spawnattr_destroy(&attributes); }
  posix_spawnattr_t attributes;
};

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
  // Descriptors opened without close-on-exec stay out of the child too.
  posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);
  const SpawnAttributes spawn;
  char* argv[] = {const_cast<char*>(checker.c_str()), nullptr};
  pid_t child = 0;
  const int spawned = posix_spawn(&child, checker.c_str(), &actions,
                                  &spawn.attributes, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  close(pipe[1]);
  if (spawned != 0) {
    close(pipe[0]);
    return absl::FailedPreconditionError(
        absl::StrCat("cannot run the TorchScript archive checker '", checker,
                     "': ", std::strerror(spawned)));
  }
  std::string output;
  const bool closed = ReadUntilClosed(
      pipe[0],
      std::chrono::steady_clock::now() + absl::ToChronoMilliseconds(timeout),
      output);
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
  const std::optional<FileIdentity> before = IdentityOf(fd);
  std::optional<absl::Status> verdict;
  if (before.has_value()) verdict = TheVerdicts().Find(*before);
  if (!verdict.has_value()) {
    verdict = RunChild(fd, checker, timeout);
    // Kept: what the archive decides (OK, InvalidArgument), and only when
    // the file did not change while the child read it. A timeout may be the
    // machine's load, and the other errors say nothing of the archive.
    if (before.has_value() && IdentityOf(fd) == before &&
        (verdict->ok() || absl::IsInvalidArgument(*verdict))) {
      TheVerdicts().Keep(*before, *verdict);
    }
  }
  if (lseek(fd, 0, SEEK_SET) != 0) {
    return absl::InternalError(absl::StrCat(
        "cannot rewind the archive after checking it: ", std::strerror(errno)));
  }
  return *verdict;
}

}  // namespace curvd::core
