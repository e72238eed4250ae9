#include "server/disk_blob_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <algorithm>
#include <iterator>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace curvd::server {
namespace {

namespace fs = std::filesystem;

constexpr absl::string_view kSha256Prefix = "sha256:";

// The path goes to the log only: answers do not show where blobs are kept.
absl::Status IoError(absl::string_view what, const std::string& path) {
  const char* error = std::strerror(errno);
  CURVD_LOG(ERROR) << "curvd: " << what << " " << path << ": " << error;
  return absl::InternalError(
      absl::StrCat(what, " a file of the blob store: ", error));
}

absl::string_view HexOf(absl::string_view digest) {
  return digest.substr(kSha256Prefix.size());
}

std::string ReadSmallFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Writes all of `data` at the file offset of `fd` (or at `offset` when >= 0).
bool WriteAll(int fd, absl::string_view data, off_t offset = -1) {
  while (!data.empty()) {
    const ssize_t n = offset < 0 ? write(fd, data.data(), data.size())
                                 : pwrite(fd, data.data(), data.size(), offset);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
    if (offset >= 0) offset += n;
  }
  return true;
}

std::optional<absl::Time> ModifiedTime(const std::string& path) {
  struct stat info;
  if (stat(path.c_str(), &info) != 0) return std::nullopt;
  return absl::TimeFromTimespec(info.st_mtim);
}

// The digests of the blob files in `dir` (named by their hex) and the sizes
// of those files; other names are skipped.
std::vector<std::pair<std::string, int64_t>> BlobFiles(const std::string& dir) {
  std::vector<std::pair<std::string, int64_t>> files;
  std::error_code error;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, error)) {
    std::string digest =
        absl::StrCat(kSha256Prefix, entry.path().filename().string());
    std::error_code size_error;
    const uintmax_t size = entry.file_size(size_error);
    if (BlobStore::ValidateDigest(digest).ok() && !size_error) {
      files.emplace_back(std::move(digest), static_cast<int64_t>(size));
    }
  }
  return files;
}

}  // namespace

absl::Status BlobStore::ValidateDigest(absl::string_view digest) {
  bool ok = absl::StartsWith(digest, kSha256Prefix) &&
            digest.size() == kSha256Prefix.size() + 64;
  for (char c : ok ? HexOf(digest) : absl::string_view()) {
    ok = ok && (absl::ascii_isdigit(c) || (c >= 'a' && c <= 'f'));
  }
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("digest \"", digest.substr(0, 80),
                     "\" must be sha256:<64 lowercase hex>"));
  }
  return absl::OkStatus();
}

// One upload: the partial file open for appending and its saved hash state,
// rewritten after every chunk. The chunk's bytes are written before the state
// that covers them, so a process that dies between the two leaves a state
// short of the file, and the next upload cuts the file back to it.
class DiskBlobWriter : public BlobWriter {
 public:
  DiskBlobWriter(DiskBlobStore* store, std::string digest, int64_t size)
      : store_(store), digest_(std::move(digest)), size_(size) {}
  ~DiskBlobWriter() override {
    if (data_fd_ >= 0) close(data_fd_);
    if (state_fd_ >= 0) close(state_fd_);
    store_->Release(digest_, opened_ && !finished_
                                 ? std::optional<int64_t>(committed_size())
                                 : std::nullopt);
  }

  // Resumes from the saved state, or starts from 0 without one (or with one
  // longer than the declared size, which cannot be this blob's prefix).
  absl::Status Open() {
    std::optional<Sha256Stream> saved = store_->ResumableState(digest_);
    if (saved.has_value() && saved->bytes() <= size_) sha_ = *saved;
    const std::string partial = store_->PartialPath(digest_);
    opened_ = true;
    data_fd_ = open(partial.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (data_fd_ < 0) return IoError("cannot open", partial);
    if (ftruncate(data_fd_, sha_.bytes()) != 0 ||
        lseek(data_fd_, 0, SEEK_END) < 0) {
      return IoError("cannot resume", partial);
    }
    const std::string state = store_->StatePath(digest_);
    state_fd_ = open(state.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (state_fd_ < 0 || ftruncate(state_fd_, 0) != 0) {
      return IoError("cannot open", state);
    }
    return SaveState();
  }

  int64_t committed_size() const override { return sha_.bytes(); }

  absl::Status Append(int64_t offset, absl::string_view data) override {
    if (finished_)
      return absl::FailedPreconditionError("blob upload already finished");
    const int64_t committed = committed_size();
    if (offset != committed) {
      return absl::FailedPreconditionError(absl::StrCat(
          "write_offset ", offset, " does not equal the committed size ",
          committed, " of ", digest_));
    }
    if (committed + static_cast<int64_t>(data.size()) > size_) {
      return absl::InvalidArgumentError(
          absl::StrCat("chunk at offset ", offset, " of ", data.size(),
                       " bytes runs past the declared size_bytes ", size_));
    }
    if (data.empty()) return absl::OkStatus();
    if (!WriteAll(data_fd_, data)) {
      return IoError("cannot write", store_->PartialPath(digest_));
    }
    sha_.Update(data);
    return SaveState();
  }

  absl::StatusOr<BlobState> Finish() override {
    if (finished_)
      return absl::FailedPreconditionError("blob upload already finished");
    if (committed_size() != size_) {
      return absl::InvalidArgumentError(
          absl::StrCat("finish_write with ", committed_size(), " of ", size_,
                       " bytes committed for ", digest_));
    }
    finished_ = true;
    const std::string actual = sha_.Digest();
    const std::string partial = store_->PartialPath(digest_);
    const std::string state = store_->StatePath(digest_);
    const int fsync_result = fsync(data_fd_);
    close(data_fd_);
    data_fd_ = -1;
    if (actual != digest_) {
      std::remove(partial.c_str());
      std::remove(state.c_str());
      return absl::InvalidArgumentError(absl::StrCat(
          "digest mismatch: expected ", digest_, ", got ", actual));
    }
    if (fsync_result != 0) return IoError("cannot sync", partial);
    const std::string committed = store_->CommittedPath(digest_);
    if (std::rename(partial.c_str(), committed.c_str()) != 0) {
      return IoError("cannot commit", committed);
    }
    std::remove(state.c_str());
    store_->AddCommitted(size_);
    return BlobState{digest_, size_, true};
  }

 private:
  absl::Status SaveState() {
    if (!WriteAll(state_fd_, store_->StateRecord(sha_), 0)) {
      return IoError("cannot write", store_->StatePath(digest_));
    }
    return absl::OkStatus();
  }

  DiskBlobStore* const store_;
  const std::string digest_;
  const int64_t size_;
  Sha256Stream sha_;
  int data_fd_ = -1;
  int state_fd_ = -1;
  bool opened_ = false;  // the partial file may exist
  bool finished_ = false;
};

absl::StatusOr<std::unique_ptr<DiskBlobStore>> DiskBlobStore::Open(
    const std::string& root, const BlobStoreLimits& limits,
    std::string boot_id, std::string database_dir) {
  std::error_code error;
  for (const char* sub : {"sha256", "partial"}) {
    fs::create_directories(fs::path(root) / sub, error);
    if (error) {
      return absl::InternalError(absl::StrCat("cannot create ", root, "/", sub,
                                              ": ", error.message()));
    }
  }
  std::unique_ptr<DiskBlobStore> store(new DiskBlobStore(
      root, limits, std::move(boot_id), std::move(database_dir)));
  absl::MutexLock lock(&store->mu_);
  for (const auto& [digest, size] : BlobFiles(store->committed_dir())) {
    store->committed_bytes_ += size;
  }
  for (const auto& [digest, size] :
       BlobFiles((fs::path(root) / "partial").string())) {
    store->SetPartialLocked(
        digest, Partial{std::max(kMinPartialReservation, size), "", false});
  }
  return store;
}

BlobStoreFactory DiskBlobStore::Factory() {
  return [](const std::string& state_dir, const BlobStoreLimits& limits)
             -> absl::StatusOr<std::unique_ptr<BlobStore>> {
    return Open((fs::path(state_dir) / "blobs").string(), limits,
                CurrentBootId(), state_dir);
  };
}

std::string DiskBlobStore::CurrentBootId() {
  return std::string(absl::StripAsciiWhitespace(
      ReadSmallFile("/proc/sys/kernel/random/boot_id")));
}

std::string DiskBlobStore::committed_dir() const {
  return (fs::path(root_) / "sha256").string();
}

std::string DiskBlobStore::CommittedPath(absl::string_view digest) const {
  return (fs::path(root_) / "sha256" / std::string(HexOf(digest))).string();
}

std::string DiskBlobStore::PartialPath(absl::string_view digest) const {
  return (fs::path(root_) / "partial" / std::string(HexOf(digest))).string();
}

std::string DiskBlobStore::StatePath(absl::string_view digest) const {
  return PartialPath(digest) + ".sha256";
}

std::string DiskBlobStore::StateRecord(const Sha256Stream& state) const {
  return absl::StrCat(boot_id_, "\n", state.Serialize());
}

std::optional<Sha256Stream> DiskBlobStore::ResumableState(
    absl::string_view digest) const {
  if (boot_id_.empty()) return std::nullopt;
  const std::string record = ReadSmallFile(StatePath(digest));
  const std::string boot = absl::StrCat(boot_id_, "\n");
  if (!absl::StartsWith(record, boot)) return std::nullopt;
  std::optional<Sha256Stream> state =
      Sha256Stream::Parse(absl::string_view(record).substr(boot.size()));
  std::error_code error;
  const uintmax_t size = fs::file_size(PartialPath(digest), error);
  if (!state.has_value() || error ||
      size < static_cast<uintmax_t>(state->bytes())) {
    return std::nullopt;
  }
  return state;
}

absl::StatusOr<BlobState> DiskBlobStore::Status(
    const std::string& digest) const {
  CURVD_RETURN_IF_ERROR(ValidateDigest(digest));
  BlobState state;
  state.digest = digest;
  const std::string committed = CommittedPath(digest);
  std::error_code error;
  const uintmax_t size = fs::file_size(committed, error);
  if (!error) {
    state.committed_size_bytes = static_cast<int64_t>(size);
    state.complete = true;
    // Asked for now: a sweep leaves it to the client that is about to use it.
    utimensat(AT_FDCWD, committed.c_str(), nullptr, 0);
    return state;
  }
  if (std::optional<Sha256Stream> saved = ResumableState(digest)) {
    state.committed_size_bytes = saved->bytes();
  }
  return state;
}

absl::StatusOr<std::string> DiskBlobStore::PathOf(
    const std::string& digest) const {
  CURVD_RETURN_IF_ERROR(ValidateDigest(digest));
  std::string path = CommittedPath(digest);
  std::error_code error;
  if (!fs::is_regular_file(path, error)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "blob ", digest, " is not uploaded (finish it with WriteBlob)"));
  }
  return path;
}

absl::StatusOr<std::unique_ptr<BlobWriter>> DiskBlobStore::OpenWriter(
    const std::string& digest, int64_t size_bytes, const std::string& client) {
  CURVD_RETURN_IF_ERROR(ValidateDigest(digest));
  if (size_bytes < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("size_bytes must be >= 0, got ", size_bytes));
  }
  if (size_bytes > limits_.max_blob_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("blob of ", size_bytes, " bytes exceeds the limit of ",
                     limits_.max_blob_bytes, " bytes (--max_blob_bytes)"));
  }
  // A stored blob needs no room: answered before the quotas are asked.
  CURVD_ASSIGN_OR_RETURN(BlobState stored, Status(digest));
  if (stored.complete) return nullptr;
  {
    absl::MutexLock lock(&mu_);
    CURVD_RETURN_IF_ERROR(ReserveLocked(
        digest, std::max(kMinPartialReservation, size_bytes), client));
  }
  // Checked again once this upload holds the blob: an upload that committed
  // it just before would otherwise leave this one recreating an empty partial
  // file and writing the whole blob again.
  auto writer = std::make_unique<DiskBlobWriter>(this, digest, size_bytes);
  CURVD_ASSIGN_OR_RETURN(BlobState state, Status(digest));
  if (state.complete) return nullptr;
  CURVD_RETURN_IF_ERROR(writer->Open());
  return std::unique_ptr<BlobWriter>(std::move(writer));
}

absl::Status DiskBlobStore::ReserveLocked(const std::string& digest,
                                          int64_t reserved,
                                          const std::string& client) {
  auto it = partials_.find(digest);
  if (it != partials_.end() && it->second.open) {
    return absl::AbortedError(
        absl::StrCat("another upload of ", digest, " is in progress"));
  }
  // What this blob's earlier upload reserved is handed over to this one.
  const int64_t held = it == partials_.end() ? 0 : it->second.reserved;
  const int64_t client_held =
      it != partials_.end() && it->second.client == client ? held : 0;
  const int64_t total = partial_bytes_ - held + reserved;
  if (total > limits_.max_partial_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "partial uploads would reserve ", total, " bytes, more than the ",
        limits_.max_partial_bytes,
        " of --max_partial_upload_bytes; finish or resume the uploads in "
        "progress, or wait until stale ones expire"));
  }
  auto client_it = client_bytes_.find(client);
  const int64_t of_client =
      (client_it == client_bytes_.end() ? 0 : client_it->second) -
      client_held + reserved;
  if (of_client > limits_.max_partial_bytes_per_client) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the partial uploads of client ", client, " would reserve ", of_client,
        " bytes, more than the ", limits_.max_partial_bytes_per_client,
        " of --max_partial_upload_bytes_per_client; finish or resume its "
        "uploads in progress first"));
  }
  CURVD_RETURN_IF_ERROR(CheckSpaceLocked(reserved - held));
  SetPartialLocked(digest, Partial{reserved, client, true});
  return absl::OkStatus();
}

absl::Status DiskBlobStore::CheckSpace(int64_t more_bytes) const {
  absl::MutexLock lock(&mu_);
  return CheckSpaceLocked(more_bytes);
}

absl::Status DiskBlobStore::CheckSpaceLocked(int64_t more_bytes) const {
  if (limits_.max_state_bytes > 0) {
    int64_t used = committed_bytes_ + partial_bytes_;
    std::error_code error;
    if (!database_dir_.empty()) {
      for (const fs::directory_entry& entry :
           fs::directory_iterator(database_dir_, error)) {
        std::error_code size_error;
        if (entry.is_regular_file(size_error)) {
          used += static_cast<int64_t>(entry.file_size(size_error));
        }
      }
    }
    if (used + more_bytes > limits_.max_state_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the state directory holds ", used, " bytes; ", more_bytes,
          " more would pass its quota of ", limits_.max_state_bytes,
          " bytes (--max_state_bytes); delete runs (curvctl delete) to free "
          "space"));
    }
  }
  if (limits_.min_free_disk_bytes > 0) {
    struct statvfs disk;
    if (statvfs(root_.c_str(), &disk) != 0) return IoError("cannot stat", root_);
    const int64_t free_bytes = static_cast<int64_t>(disk.f_bavail) *
                               static_cast<int64_t>(disk.f_frsize);
    if (free_bytes - more_bytes < limits_.min_free_disk_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the state directory's disk has ", free_bytes, " bytes free; ",
          more_bytes, " more would leave less than the ",
          limits_.min_free_disk_bytes,
          " kept in reserve (--min_free_disk_bytes)"));
    }
  }
  return absl::OkStatus();
}

void DiskBlobStore::SetPartialLocked(const std::string& digest,
                                     std::optional<Partial> partial) {
  if (auto it = partials_.find(digest); it != partials_.end()) {
    partial_bytes_ -= it->second.reserved;
    auto client = client_bytes_.find(it->second.client);
    client->second -= it->second.reserved;
    if (client->second == 0) client_bytes_.erase(client);
    partials_.erase(it);
  }
  if (!partial.has_value()) return;
  partial_bytes_ += partial->reserved;
  client_bytes_[partial->client] += partial->reserved;
  partials_[digest] = *std::move(partial);
}

void DiskBlobStore::Release(const std::string& digest,
                            std::optional<int64_t> bytes_kept) {
  absl::MutexLock lock(&mu_);
  auto it = partials_.find(digest);
  if (it == partials_.end()) return;
  if (!bytes_kept.has_value()) {
    SetPartialLocked(digest, std::nullopt);
    return;
  }
  SetPartialLocked(digest,
                   Partial{std::max(kMinPartialReservation, *bytes_kept),
                           it->second.client, false});
}

void DiskBlobStore::AddCommitted(int64_t bytes) {
  absl::MutexLock lock(&mu_);
  committed_bytes_ += bytes;
}

absl::StatusOr<int64_t> DiskBlobStore::Remove(const std::string& digest) {
  CURVD_RETURN_IF_ERROR(ValidateDigest(digest));
  const std::string path = CommittedPath(digest);
  absl::MutexLock lock(&mu_);
  std::error_code error;
  const uintmax_t size = fs::file_size(path, error);
  if (error) return 0;
  if (std::remove(path.c_str()) != 0) return IoError("cannot remove", path);
  committed_bytes_ -= static_cast<int64_t>(size);
  return static_cast<int64_t>(size);
}

std::vector<std::string> DiskBlobStore::CommittedBefore(
    absl::Time before) const {
  std::vector<std::string> old;
  for (auto& [digest, size] : BlobFiles(committed_dir())) {
    std::optional<absl::Time> modified = ModifiedTime(CommittedPath(digest));
    if (modified.has_value() && *modified < before) {
      old.push_back(std::move(digest));
    }
  }
  return old;
}

int DiskBlobStore::RemovePartialsBefore(absl::Time before) {
  int removed = 0;
  const std::string dir = (fs::path(root_) / "partial").string();
  std::error_code error;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, error)) {
    const std::string name = entry.path().filename().string();
    // A state record without its data file is left over from a crash.
    absl::string_view hex = name;
    const bool record = absl::ConsumeSuffix(&hex, ".sha256");
    const std::string digest = absl::StrCat(kSha256Prefix, hex);
    if (!ValidateDigest(digest).ok()) continue;
    const std::optional<absl::Time> modified =
        ModifiedTime(PartialPath(digest));
    if (record && modified.has_value()) continue;  // judged with its data file
    std::optional<absl::Time> age = record ? ModifiedTime(StatePath(digest))
                                           : modified;
    if (!age.has_value() || *age >= before) continue;
    absl::MutexLock lock(&mu_);
    auto it = partials_.find(digest);
    if (it != partials_.end() && it->second.open) continue;
    std::remove(PartialPath(digest).c_str());
    std::remove(StatePath(digest).c_str());
    SetPartialLocked(digest, std::nullopt);
    ++removed;
  }
  return removed;
}

}  // namespace curvd::server
