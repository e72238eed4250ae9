// Which blobs a stored record references, found without knowing its fields:
// every "sha256:<64 lowercase hex>" in its serialized bytes. Protobuf writes
// strings verbatim, so this finds the digests of any field that holds one
// (archive_digest, a checkpoint's digest, a blob:// shard URI, a result's
// eigenvectors_blob_digest, and fields added later). It may also find one in
// bytes that happen to spell a digest; that only keeps a blob alive.
#ifndef CURVD_SERVER_BLOB_DIGESTS_H_
#define CURVD_SERVER_BLOB_DIGESTS_H_

#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"

namespace curvd::server {

// Adds to `digests` every "sha256:<64 lowercase hex>" that `bytes` contain.
void CollectBlobDigests(absl::string_view bytes,
                        absl::flat_hash_set<std::string>* digests);

}  // namespace curvd::server

#endif  // CURVD_SERVER_BLOB_DIGESTS_H_
