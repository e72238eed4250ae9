// Checkpoint contents for the service tests on a fake engine, which never
// reads the weights: a safetensors file with no tensors whose metadata holds
// `note`, so that it passes CreateCheckpoint's format check and differs from
// the checkpoint of another note.
#ifndef CURVD_TESTS_SERVER_CHECKPOINT_BYTES_H_
#define CURVD_TESTS_SERVER_CHECKPOINT_BYTES_H_

#include <cstdint>
#include <string>

namespace curvd::server::testing {

// `note` must need no JSON escaping.
inline std::string SafetensorsNote(const std::string& note) {
  const std::string header = "{\"__metadata__\":{\"note\":\"" + note + "\"}}";
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) {
    bytes[i] = static_cast<char>((uint64_t{header.size()} >> (8 * i)) & 0xff);
  }
  return bytes + header;
}

}  // namespace curvd::server::testing

#endif  // CURVD_TESTS_SERVER_CHECKPOINT_BYTES_H_
