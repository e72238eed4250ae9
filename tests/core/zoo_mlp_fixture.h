// The zoo-MLP TorchScript fixture of tests/core/CMakeLists.txt: zoo_mlp.pt, a
// scripted 5 -> 8 -> 3 tanh MLP, and the zoo MLP of those widths loaded with
// the same weights, for tests that a measurement runs the same through
// TorchScript.
#ifndef CURVD_TESTS_CORE_ZOO_MLP_FIXTURE_H_
#define CURVD_TESTS_CORE_ZOO_MLP_FIXTURE_H_

#include <fstream>
#include <optional>
#include <string>

#include "core/api/sources.h"

namespace curvd::core::testing {

struct ZooMlpFixture {
  ModelSource scripted;  // the archive
  ModelSource zoo;       // the zoo MLP with the archive's state dict
};

// Both sources; nullopt when the archive is missing (it is written at build
// time only where a Python with torch was found), for callers to skip.
inline std::optional<ZooMlpFixture> ZooMlpFixtureSources() {
  const std::string dir = CURVD_CORE_FIXTURE_DIR;
  ZooMlpFixture fixture;
  fixture.scripted.kind = ModelSource::Kind::kTorchScript;
  fixture.scripted.archive_path = dir + "/zoo_mlp.pt";
  fixture.zoo.kind = ModelSource::Kind::kZoo;
  fixture.zoo.zoo.layer_widths = {5, 8, 3};
  fixture.zoo.zoo.activation = "tanh";
  fixture.zoo.state_dict_path = dir + "/zoo_mlp_state.safetensors";
  if (!std::ifstream(fixture.scripted.archive_path)) return std::nullopt;
  return fixture;
}

}  // namespace curvd::core::testing

#endif  // CURVD_TESTS_CORE_ZOO_MLP_FIXTURE_H_
