// OpenSSL 3 deprecates the SHA256_* functions in favour of EVP, whose state
// cannot be saved; SHA256_CTX is a plain struct that can. Defined before any
// OpenSSL header is read.
#define OPENSSL_SUPPRESS_DEPRECATED
#include "server/sha256_stream.h"

#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace curvd::server {

std::array<unsigned char, SHA256_DIGEST_LENGTH> Sha256Bytes(
    absl::string_view data) {
  std::array<unsigned char, SHA256_DIGEST_LENGTH> digest;
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(),
         digest.data());
  return digest;
}
namespace {

// Versions the record: the raw context of this OpenSSL build follows it.
constexpr absl::string_view kMagic = "curvd-sha256-state-1:";

}  // namespace

Sha256Stream::Sha256Stream() { SHA256_Init(&ctx_); }

void Sha256Stream::Update(absl::string_view data) {
  SHA256_Update(&ctx_, data.data(), data.size());
}

int64_t Sha256Stream::bytes() const {
  const uint64_t bits = (static_cast<uint64_t>(ctx_.Nh) << 32) | ctx_.Nl;
  return static_cast<int64_t>(bits / 8);
}

std::string Sha256Stream::Digest() const {
  SHA256_CTX copy = ctx_;
  unsigned char hash[SHA256_DIGEST_LENGTH];
  SHA256_Final(hash, &copy);
  return absl::StrCat("sha256:",
                      absl::BytesToHexString(absl::string_view(
                          reinterpret_cast<const char*>(hash), sizeof(hash))));
}

std::string Sha256Stream::Serialize() const {
  return absl::StrCat(
      kMagic,
      absl::string_view(reinterpret_cast<const char*>(&ctx_), sizeof(ctx_)));
}

std::optional<Sha256Stream> Sha256Stream::Parse(absl::string_view bytes) {
  if (bytes.size() != kMagic.size() + sizeof(SHA256_CTX) ||
      !absl::StartsWith(bytes, kMagic)) {
    return std::nullopt;
  }
  Sha256Stream stream;
  std::memcpy(&stream.ctx_, bytes.data() + kMagic.size(), sizeof(SHA256_CTX));
  // A context SHA256_Update left: a partial block shorter than one block, and
  // the full digest length.
  if (stream.ctx_.num >= SHA256_CBLOCK ||
      stream.ctx_.md_len != SHA256_DIGEST_LENGTH ||
      static_cast<uint64_t>(stream.bytes()) % SHA256_CBLOCK !=
          stream.ctx_.num) {
    return std::nullopt;
  }
  return stream;
}

}  // namespace curvd::server
