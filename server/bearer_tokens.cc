#include "server/bearer_tokens.h"

#include <openssl/crypto.h>

#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/file_contents.h"
#include "common/status_macros.h"
#include "server/sha256_stream.h"

namespace curvd::server {

absl::StatusOr<BearerTokens> BearerTokens::Parse(absl::string_view text,
                                                 absl::string_view source) {
  BearerTokens tokens;
  absl::flat_hash_set<std::string> names;
  absl::flat_hash_set<std::string> digests;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || absl::StartsWith(line, "#")) continue;
    const auto where = [&] { return absl::StrCat(source, ":", line_number); };
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (fields.size() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat(where(), ": expected \"NAME TOKEN\", found ",
                       fields.size(), " fields"));
    }
    const absl::string_view name = fields[0];
    const absl::string_view token = fields[1];
    if (name.size() > kMaxTokenNameBytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          where(), ": the name is longer than ", kMaxTokenNameBytes, " bytes"));
    }
    if (token.size() < kMinTokenBytes) {
      return absl::InvalidArgumentError(absl::StrCat(where(), ": the token of ",
                                                     name, " is shorter than ",
                                                     kMinTokenBytes, " bytes"));
    }
    if (!names.insert(std::string(name)).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(where(), ": the name ", name, " is listed twice"));
    }
    Entry entry{std::string(name), Sha256Bytes(token)};
    if (!digests.insert(std::string(entry.digest.begin(), entry.digest.end()))
             .second) {
      return absl::InvalidArgumentError(absl::StrCat(
          where(), ": the token of ", name, " is another name's token too"));
    }
    tokens.entries_.push_back(std::move(entry));
  }
  if (tokens.entries_.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, " lists no \"NAME TOKEN\" line"));
  }
  return tokens;
}

absl::StatusOr<BearerTokens> BearerTokens::Load(const std::string& path) {
  CURVD_ASSIGN_OR_RETURN(std::string text, common::ReadFileContents(path));
  return Parse(text, path);
}

// Comparing fixed-size digests with CRYPTO_memcmp, over every entry without
// stopping at a match, keeps the time independent of the token's length, of
// the bytes it shares with a real one and of which entry matched.
std::optional<std::string> BearerTokens::Find(absl::string_view token) const {
  const std::array<unsigned char, 32> digest = Sha256Bytes(token);
  const Entry* found = nullptr;
  for (const Entry& entry : entries_) {
    const bool equal =
        CRYPTO_memcmp(entry.digest.data(), digest.data(), digest.size()) == 0;
    if (equal) found = &entry;
  }
  if (found == nullptr) return std::nullopt;
  return found->name;
}

}  // namespace curvd::server
