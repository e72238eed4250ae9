#include "server/blob_digests.h"

#include "server/blob_store.h"

namespace curvd::server {

void CollectBlobDigests(absl::string_view bytes,
                        absl::flat_hash_set<std::string>* digests) {
  constexpr absl::string_view kPrefix = "sha256:";
  constexpr size_t kDigestSize = kPrefix.size() + 64;
  for (size_t at = bytes.find(kPrefix); at != absl::string_view::npos;
       at = bytes.find(kPrefix, at + 1)) {
    const absl::string_view digest = bytes.substr(at, kDigestSize);
    if (BlobStore::ValidateDigest(digest).ok()) {
      digests->insert(std::string(digest));
    }
  }
}

}  // namespace curvd::server
