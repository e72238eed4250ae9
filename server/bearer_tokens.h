// The bearer tokens a server accepts, each with the name recorded on what its
// holder creates. Read from a file of "NAME TOKEN" lines, such as a key of a
// Kubernetes Secret mounted as a volume.
#ifndef CURVD_SERVER_BEARER_TOKENS_H_
#define CURVD_SERVER_BEARER_TOKENS_H_

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace curvd::server {

// Tokens shorter than this are refused: a token is the whole secret.
inline constexpr size_t kMinTokenBytes = 16;
// Names longer than this are refused: a name is stored on every run.
inline constexpr size_t kMaxTokenNameBytes = 64;

// An immutable set of named tokens; thread-safe to share.
class BearerTokens {
 public:
  // Parses `text`: one "NAME TOKEN" per line, separated by spaces or tabs;
  // blank lines and lines starting with '#' are skipped. InvalidArgument
  // naming the line (never quoting a token) for a line without exactly two
  // fields, a name of more than kMaxTokenNameBytes, a token of fewer than
  // kMinTokenBytes, a name or token listed twice, or no token at all. `source`
  // names the text in messages.
  static absl::StatusOr<BearerTokens> Parse(absl::string_view text,
                                            absl::string_view source);
  // Reads and parses the file at `path`; NotFound when it cannot be read.
  static absl::StatusOr<BearerTokens> Load(const std::string& path);

  // The name of the token equal to `token`, or nullopt. Takes the same time
  // whichever entry matches, if any, so timing tells nothing of the tokens.
  std::optional<std::string> Find(absl::string_view token) const;

  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::string name;
    std::array<unsigned char, 32> digest;  // SHA-256 of the token
  };
  std::vector<Entry> entries_;
};

}  // namespace curvd::server

#endif  // CURVD_SERVER_BEARER_TOKENS_H_
