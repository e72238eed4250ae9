// curvctl: the command-line client of curvd. See `curvctl --help`.
#include <iostream>
#include <string>
#include <vector>

#include "client/curvctl_commands.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return curvd::client::RunCurvctl(args, std::cout, std::cerr);
}
