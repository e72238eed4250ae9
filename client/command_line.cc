#include "client/command_line.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace curvd::client {
namespace {

const FlagDef* FindFlag(const CommandDef& command, const std::string& name) {
  for (const FlagDef& flag : command.flags) {
    if (flag.name == name) return &flag;
  }
  return nullptr;
}

absl::StatusOr<bool> ParseBool(const std::string& text) {
  const std::string lower = absl::AsciiStrToLower(text);
  if (lower == "true" || lower == "1" || lower == "yes") return true;
  if (lower == "false" || lower == "0" || lower == "no") return false;
  return absl::InvalidArgumentError(
      absl::StrCat("'", text, "' is not a boolean (true or false)"));
}

absl::Status CheckValue(const FlagDef& flag, const std::string& value) {
  switch (flag.type) {
    case FlagDef::Type::kString:
      return absl::OkStatus();
    case FlagDef::Type::kInt: {
      int64_t parsed;
      if (absl::SimpleAtoi(value, &parsed)) return absl::OkStatus();
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag.name, ": '", value, "' is not an integer"));
    }
    case FlagDef::Type::kDouble: {
      double parsed;
      if (absl::SimpleAtod(value, &parsed)) return absl::OkStatus();
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag.name, ": '", value, "' is not a number"));
    }
    case FlagDef::Type::kBool: {
      absl::StatusOr<bool> parsed = ParseBool(value);
      if (parsed.ok()) return absl::OkStatus();
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag.name, ": ", parsed.status().message()));
    }
  }
  return absl::OkStatus();
}

const char* TypeName(FlagDef::Type type) {
  switch (type) {
    case FlagDef::Type::kString:
      return "string";
    case FlagDef::Type::kInt:
      return "int";
    case FlagDef::Type::kDouble:
      return "number";
    case FlagDef::Type::kBool:
      return "bool";
  }
  return "";
}

}  // namespace

bool ParsedFlags::IsSet(const std::string& name) const {
  auto it = set_.find(name);
  return it != set_.end() && it->second;
}

const std::string& ParsedFlags::String(const std::string& name) const {
  // A lookup of an undefined flag is a bug in curvctl itself, not user input.
  return values_.at(name);
}

int64_t ParsedFlags::Int(const std::string& name) const {
  int64_t value = 0;
  (void)absl::SimpleAtoi(values_.at(name), &value);
  return value;
}

double ParsedFlags::Double(const std::string& name) const {
  double value = 0;
  (void)absl::SimpleAtod(values_.at(name), &value);
  return value;
}

bool ParsedFlags::Bool(const std::string& name) const {
  absl::StatusOr<bool> value = ParseBool(values_.at(name));
  return value.ok() && *value;
}

absl::StatusOr<ParsedFlags> ParseFlags(const CommandDef& command,
                                       const std::vector<std::string>& args) {
  ParsedFlags parsed;
  for (const FlagDef& flag : command.flags) {
    parsed.values_[flag.name] = flag.default_value;
  }
  const std::string help_hint =
      absl::StrCat(" (see: curvctl ", command.name, " --help)");
  bool flags_ended = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (flags_ended || arg.size() < 2 || arg[0] != '-') {
      parsed.positional_.push_back(arg);
      continue;
    }
    if (arg == "--") {
      flags_ended = true;
      continue;
    }
    if (arg == "-h" || arg == "--help" || arg == "-help") {
      parsed.help_ = true;
      return parsed;
    }
    absl::string_view body = arg;
    if (!absl::ConsumePrefix(&body, "--")) absl::ConsumePrefix(&body, "-");
    std::string name;
    std::string value;
    bool has_value = false;
    if (size_t eq = body.find('='); eq != absl::string_view::npos) {
      name = std::string(body.substr(0, eq));
      value = std::string(body.substr(eq + 1));
      has_value = true;
    } else {
      name = std::string(body);
    }
    const FlagDef* flag = FindFlag(command, name);
    if (flag == nullptr && !has_value && absl::StartsWith(name, "no")) {
      const FlagDef* negated = FindFlag(command, name.substr(2));
      if (negated != nullptr && negated->type == FlagDef::Type::kBool) {
        parsed.values_[negated->name] = "false";
        parsed.set_[negated->name] = true;
        continue;
      }
    }
    if (flag == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown flag --", name, " for '", command.name, "'", help_hint));
    }
    if (!has_value) {
      if (flag->type == FlagDef::Type::kBool) {
        value = "true";
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat("flag --", name, " needs a value", help_hint));
      }
    }
    if (absl::Status status = CheckValue(*flag, value); !status.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(status.message(), help_hint));
    }
    parsed.values_[name] = value;
    parsed.set_[name] = true;
  }
  const int count = static_cast<int>(parsed.positional_.size());
  if (count < command.min_positional || count > command.max_positional) {
    std::string expected = command.min_positional == command.max_positional
                               ? absl::StrCat(command.min_positional)
                               : absl::StrCat(command.min_positional, " to ",
                                              command.max_positional);
    return absl::InvalidArgumentError(absl::StrCat(
        "'", command.name, "' takes ", expected, " argument(s), got ", count,
        count > 0
            ? absl::StrCat(" (", absl::StrJoin(parsed.positional_, " "), ")")
            : "",
        help_hint));
  }
  return parsed;
}

std::string HelpText(const CommandDef& command) {
  std::string text =
      absl::StrCat("usage: curvctl ", command.name, " ", command.usage, "\n\n",
                   command.summary, "\n\nflags:\n");
  for (const FlagDef& flag : command.flags) {
    absl::StrAppend(&text, "  --", flag.name, " (", TypeName(flag.type), ")");
    if (!flag.default_value.empty()) {
      absl::StrAppend(&text, " default: ", flag.default_value);
    }
    absl::StrAppend(&text, "\n");
    for (absl::string_view line : absl::StrSplit(flag.help, '\n')) {
      absl::StrAppend(&text, "      ", line, "\n");
    }
  }
  absl::StrAppend(&text, "  --help\n      Show this text.\n");
  return text;
}

}  // namespace curvd::client
