#include "server/blob_store.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace curvd::server {
namespace {

namespace fs = std::filesystem;

constexpr absl::string_view kSha256Prefix = "sha256:";
constexpr size_t kReadChunkBytes = 1 << 20;

absl::Status IoError(absl::string_view what, const std::string& path) {
  return absl::InternalError(
      absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

absl::string_view HexOf(absl::string_view digest) {
  return digest.substr(kSha256Prefix.size());
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

absl::StatusOr<std::unique_ptr<BlobStore>> BlobStore::Open(
    const std::string& root, int64_t max_blob_bytes) {
  std::error_code error;
  for (const char* sub : {"sha256", "partial"}) {
    fs::create_directories(fs::path(root) / sub, error);
    if (error) {
      return absl::InternalError(absl::StrCat("cannot create ", root, "/", sub,
                                              ": ", error.message()));
    }
  }
  return std::unique_ptr<BlobStore>(new BlobStore(root, max_blob_bytes));
}

std::string BlobStore::committed_dir() const {
  return (fs::path(root_) / "sha256").string();
}

std::string BlobStore::CommittedPath(absl::string_view digest) const {
  return (fs::path(root_) / "sha256" / std::string(HexOf(digest))).string();
}

std::string BlobStore::PartialPath(absl::string_view digest) const {
  return (fs::path(root_) / "partial" / std::string(HexOf(digest))).string();
}

absl::StatusOr<BlobState> BlobStore::Status(const std::string& digest) const {
  CURVD_RETURN_IF_ERROR(ValidateDigest(digest));
  BlobState state;
  state.digest = digest;
  std::error_code error;
  uintmax_t size = fs::file_size(CommittedPath(digest), error);
  if (!error) {
    state.committed_size_bytes = static_cast<int64_t>(size);
    state.complete = true;
    return state;
  }
  size = fs::file_size(PartialPath(digest), error);
  if (!error) state.committed_size_bytes = static_cast<int64_t>(size);
  return state;
}

absl::StatusOr<std::string> BlobStore::PathOf(const std::string& digest) const {
  CURVD_RETURN_IF_ERROR(ValidateDigest(digest));
  std::string path = CommittedPath(digest);
  std::error_code error;
  if (!fs::is_regular_file(path, error)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "blob ", digest, " is not uploaded (finish it with WriteBlob)"));
  }
  return path;
}

absl::StatusOr<std::unique_ptr<BlobWriter>> BlobStore::OpenWriter(
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
  std::unique_ptr<BlobWriter> writer(new BlobWriter(this, digest, size_bytes));
  CURVD_ASSIGN_OR_RETURN(BlobState state, Status(digest));
  if (state.complete) return nullptr;
  CURVD_RETURN_IF_ERROR(writer->Open());
  return writer;
}

void BlobStore::Release(const std::string& digest) {
  absl::MutexLock lock(&mu_);
  writing_.erase(digest);
}

BlobWriter::BlobWriter(BlobStore* store, std::string digest, int64_t size)
    : store_(store), digest_(std::move(digest)), size_(size) {}

BlobWriter::~BlobWriter() {
  if (file_ != nullptr) std::fclose(file_);
  EVP_MD_CTX_free(sha_);
  store_->Release(digest_);
}

absl::Status BlobWriter::Open() {
  sha_ = EVP_MD_CTX_new();
  if (sha_ == nullptr || EVP_DigestInit_ex(sha_, EVP_sha256(), nullptr) != 1) {
    return absl::InternalError("cannot initialise SHA-256");
  }
  std::string path = store_->PartialPath(digest_);
  file_ = std::fopen(path.c_str(), "a+b");
  if (file_ == nullptr) return IoError("cannot open", path);
  // A resumed upload hashes what earlier streams wrote, so Finish can check the
  // digest without reading the file again.
  std::vector<char> buffer(kReadChunkBytes);
  std::rewind(file_);
  size_t n;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), file_)) > 0) {
    EVP_DigestUpdate(sha_, buffer.data(), n);
    committed_ += static_cast<int64_t>(n);
  }
  if (std::ferror(file_)) return IoError("cannot read", path);
  if (committed_ > size_) {
    // A partial file longer than the declared size cannot be this blob's
    // prefix.
    std::fclose(file_);
    file_ = std::fopen(path.c_str(), "w+b");
    if (file_ == nullptr) return IoError("cannot truncate", path);
    committed_ = 0;
    EVP_DigestInit_ex(sha_, EVP_sha256(), nullptr);
  }
  return absl::OkStatus();
}

absl::Status BlobWriter::Append(int64_t offset, absl::string_view data) {
  if (finished_)
    return absl::FailedPreconditionError("blob upload already finished");
  if (offset != committed_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "write_offset ", offset, " does not equal the committed size ",
        committed_, " of ", digest_));
  }
  if (committed_ + static_cast<int64_t>(data.size()) > size_) {
    return absl::InvalidArgumentError(
        absl::StrCat("chunk at offset ", offset, " of ", data.size(),
                     " bytes runs past the declared size_bytes ", size_));
  }
  if (data.empty()) return absl::OkStatus();
  if (std::fwrite(data.data(), 1, data.size(), file_) != data.size() ||
      std::fflush(file_) != 0) {
    return IoError("cannot write", store_->PartialPath(digest_));
  }
  EVP_DigestUpdate(sha_, data.data(), data.size());
  committed_ += static_cast<int64_t>(data.size());
  return absl::OkStatus();
}

absl::StatusOr<BlobState> BlobWriter::Finish() {
  if (finished_)
    return absl::FailedPreconditionError("blob upload already finished");
  if (committed_ != size_) {
    return absl::InvalidArgumentError(
        absl::StrCat("finish_write with ", committed_, " of ", size_,
                     " bytes committed for ", digest_));
  }
  finished_ = true;
  unsigned char hash[EVP_MAX_MD_SIZE];
  unsigned int hash_size = 0;
  EVP_DigestFinal_ex(sha_, hash, &hash_size);
  std::string actual = absl::StrCat(
      "sha256:", absl::BytesToHexString(absl::string_view(
                     reinterpret_cast<const char*>(hash), hash_size)));
  std::string partial = store_->PartialPath(digest_);
  int fsync_result = fsync(fileno(file_));
  std::fclose(file_);
  file_ = nullptr;
  if (actual != digest_) {
    std::remove(partial.c_str());
    return absl::InvalidArgumentError(
        absl::StrCat("digest mismatch: expected ", digest_, ", got ", actual));
  }
  if (fsync_result != 0) return IoError("cannot sync", partial);
  std::string committed = store_->CommittedPath(digest_);
  if (std::rename(partial.c_str(), committed.c_str()) != 0) {
    return IoError("cannot commit", committed);
  }
  return BlobState{digest_, size_, true};
}

}  // namespace curvd::server
