// SHA-256 over a stream of bytes whose state can be saved and restored, so that
// an interrupted upload resumes without reading its bytes again.
#ifndef CURVD_SERVER_SHA256_STREAM_H_
#define CURVD_SERVER_SHA256_STREAM_H_

#include <openssl/sha.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace curvd::server {

// The 32 bytes of SHA-256 of `data`, hashed at once.
std::array<unsigned char, SHA256_DIGEST_LENGTH> Sha256Bytes(
    absl::string_view data);

// Thread-compatible; copyable.
class Sha256Stream {
 public:
  // The state of no bytes hashed.
  Sha256Stream();

  // Hashes `data` after what was hashed before.
  void Update(absl::string_view data);

  // Bytes hashed so far.
  int64_t bytes() const;

  // "sha256:<64 lowercase hex>" of the bytes hashed so far; the state is kept.
  std::string Digest() const;

  // The state as bytes, for Parse in a later process on the same machine.
  std::string Serialize() const;
  // The state that Serialize wrote; nullopt for anything else (a torn or
  // foreign record).
  static std::optional<Sha256Stream> Parse(absl::string_view bytes);

 private:
  SHA256_CTX ctx_;
};

}  // namespace curvd::server

#endif  // CURVD_SERVER_SHA256_STREAM_H_
