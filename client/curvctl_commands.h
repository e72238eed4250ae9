// The curvctl subcommands: their flag definitions (which --help prints and the
// tests check) and the dispatcher that main() calls.
#ifndef CURVD_CLIENT_CURVCTL_COMMANDS_H_
#define CURVD_CLIENT_CURVCTL_COMMANDS_H_

#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/command_line.h"
#include "curvd/v1/resources.pb.h"

namespace curvd::client {

// Exit codes, stable for scripts.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;  // an RPC, file or server error
inline constexpr int kExitUsage = 2;  // bad command line
inline constexpr int kExitMeasurementFailed = 3;  // FAILED or CANCELLED

// Every subcommand, in the order `curvctl --help` lists them.
const std::vector<CommandDef>& CurvctlCommands();

// The MeasurementSpecs `curvctl measure` asks for, one per kind in --measure
// ("plan" is one spec running the kinds of --plan together), from its parsed
// flags. InvalidArgument for an unknown kind, one repeated in --plan, a plan without
// --plan or --plan without a plan, or an unknown loss, precision, operator,
// distribution or direction. Ranges are left to the server.
absl::StatusOr<std::vector<curvd::v1::MeasurementSpec>>
MeasurementSpecsFromFlags(const ParsedFlags& flags);

// Runs curvctl on `args` (argv without the program name), writing results to
// `out` and progress and errors to `err`; returns the exit code.
int RunCurvctl(const std::vector<std::string>& args, std::ostream& out,
               std::ostream& err);

}  // namespace curvd::client

#endif  // CURVD_CLIENT_CURVCTL_COMMANDS_H_
