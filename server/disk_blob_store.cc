#include "server/disk_blob_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
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
    store_->Release(digest_);
  }

  // Resumes from the saved state, or starts from 0 without one (or with one
  // longer than the declared size, which cannot be this blob's prefix).
  absl::Status Open() {
    std::optional<Sha256Stream> saved = store_->ResumableState(digest_);
    if (saved.has_value() && saved->bytes() <= size_) sha_ = *saved;
    const std::string partial = store_->PartialPath(digest_);
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
  bool finished_ = false;
};

absl::StatusOr<std::unique_ptr<DiskBlobStore>> DiskBlobStore::Open(
    const std::string& root, int64_t max_blob_bytes, std::string boot_id) {
  std::error_code error;
  for (const char* sub : {"sha256", "partial"}) {
    fs::create_directories(fs::path(root) / sub, error);
    if (error) {
      return absl::InternalError(absl::StrCat("cannot create ", root, "/", sub,
                                              ": ", error.message()));
    }
  }
  return std::unique_ptr<DiskBlobStore>(
      new DiskBlobStore(root, max_blob_bytes, std::move(boot_id)));
}

BlobStoreFactory DiskBlobStore::Factory() {
  return [](const std::string& state_dir, int64_t max_blob_bytes)
             -> absl::StatusOr<std::unique_ptr<BlobStore>> {
    return Open((fs::path(state_dir) / "blobs").string(), max_blob_bytes);
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
  std::error_code error;
  const uintmax_t size = fs::file_size(CommittedPath(digest), error);
  if (!error) {
    state.committed_size_bytes = static_cast<int64_t>(size);
    state.complete = true;
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
    const std::string& digest, int64_t size_bytes) {
  CURVD_RETURN_IF_ERROR(ValidateDigest(digest));
  if (size_bytes < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("size_bytes must be >= 0, got ", size_bytes));
  }
  if (size_bytes > max_blob_bytes_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("blob of ", size_bytes, " bytes exceeds the limit of ",
                     max_blob_bytes_, " bytes"));
  }
  {
    absl::MutexLock lock(&mu_);
    if (!writing_.insert(digest).second) {
      return absl::AbortedError(
          absl::StrCat("another upload of ", digest, " is in progress"));
    }
  }
  // Checked only once this upload holds the blob: an upload that committed it
  // just before would otherwise leave this one recreating an empty partial
  // file and writing the whole blob again.
  auto writer = std::make_unique<DiskBlobWriter>(this, digest, size_bytes);
  CURVD_ASSIGN_OR_RETURN(BlobState state, Status(digest));
  if (state.complete) return nullptr;
  CURVD_RETURN_IF_ERROR(writer->Open());
  return std::unique_ptr<BlobWriter>(std::move(writer));
}

void DiskBlobStore::Release(const std::string& digest) {
  absl::MutexLock lock(&mu_);
  writing_.erase(digest);
}

}  // namespace curvd::server
