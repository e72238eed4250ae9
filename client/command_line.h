// A small parser for subcommand flags. absl flags are process-global, which
// suits one binary with one flag set but not curvctl, whose subcommands each
// take their own flags and each document them in --help.
#ifndef CURVD_CLIENT_COMMAND_LINE_H_
#define CURVD_CLIENT_COMMAND_LINE_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace curvd::client {

struct FlagDef {
  enum class Type { kString, kInt, kDouble, kBool };
  std::string name;  // without the leading "--"
  Type type = Type::kString;
  std::string default_value;  // as it would be written on the command line
  std::string help;
};

struct CommandDef {
  std::string name;
  std::string usage;    // after "curvctl NAME", e.g. "FILE [flags]"
  std::string summary;  // a paragraph shown by --help
  std::vector<FlagDef> flags;
  int min_positional = 0;
  int max_positional = 0;
};

// The flags of one invocation, with defaults filled in.
class ParsedFlags {
 public:
  // Whether --help (or -h) was given; nothing else was checked then.
  bool help() const { return help_; }
  // Whether `name` was given on the command line (not just defaulted).
  bool IsSet(const std::string& name) const;
  // The value of a flag the command defines (its default when not given). The
  // value was checked against the flag's type while parsing.
  const std::string& String(const std::string& name) const;
  int64_t Int(const std::string& name) const;
  double Double(const std::string& name) const;
  bool Bool(const std::string& name) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  friend absl::StatusOr<ParsedFlags> ParseFlags(
      const CommandDef& command, const std::vector<std::string>& args);
  bool help_ = false;
  std::map<std::string, std::string> values_;
  std::map<std::string, bool> set_;
  std::vector<std::string> positional_;
};

// Parses `args` (what follows the subcommand) against `command`'s flags:
// "--name=value", "--name value", "--flag" / "--noflag" / "--flag=false" for
// booleans, "--" ends the flags. InvalidArgument, naming the offender, for an
// unknown flag, a missing or ill-typed value, or a positional count outside
// [min_positional, max_positional].
absl::StatusOr<ParsedFlags> ParseFlags(const CommandDef& command,
                                       const std::vector<std::string>& args);

// The --help text: usage, summary, and every flag with its type, default and
// help.
std::string HelpText(const CommandDef& command);

}  // namespace curvd::client

#endif  // CURVD_CLIENT_COMMAND_LINE_H_
