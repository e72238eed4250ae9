// curvd_archive_check: loads the TorchScript archive on its standard input
// with LibTorch's loader, as curvd's engine does, and says whether it loads.
// Exits 0 when it does, 3 with the loader's message on standard output when
// the loader refuses it; a crash of the loader ends it by a signal. curvd runs
// it on every archive before loading the archive itself
// (core/data/archive_check.h); it is not meant to be run by hand, though
// `curvd_archive_check < model.pt` works.
#include <unistd.h>

#include <cstdio>
#include <ext/stdio_filebuf.h>
#include <istream>
#include <string>

#include <torch/script.h>

#include "absl/status/status.h"
#include "core/data/archive_check.h"
#include "core/engine/torch_status.h"

int main(int argc, char** argv) {
  if (argc != 1) {
    std::fprintf(stderr, "usage: %s < ARCHIVE\n", argv[0]);
    return 2;
  }
  __gnu_cxx::stdio_filebuf<char> buffer(STDIN_FILENO, std::ios::in);
  std::istream in(&buffer);
  const absl::Status loaded = curvd::core::CatchTorchExceptions([&] {
    torch::jit::load(in, torch::Device("cpu"));
    return absl::OkStatus();
  });
  if (loaded.ok()) return 0;
  const std::string message(loaded.message());
  std::fwrite(message.data(), 1, message.size(), stdout);
  return curvd::core::kArchiveRefusedExitCode;
}
