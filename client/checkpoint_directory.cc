#include "client/checkpoint_directory.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <system_error>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace curvd::client {
namespace {

namespace v1 = ::curvd::v1;

// `digits` as a step; InvalidArgument unless it is decimal digits within int64.
absl::StatusOr<int64_t> ParseStep(const std::string& digits,
                                  const std::string& file_name) {
  int64_t step = 0;
  const bool all_digits =
      !digits.empty() && std::all_of(digits.begin(), digits.end(), [](char c) {
        return absl::ascii_isdigit(static_cast<unsigned char>(c));
      });
  if (!all_digits || !absl::SimpleAtoi(digits, &step)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the step of ", file_name, ", '", digits,
                     "', is not a decimal number within int64"));
  }
  return step;
}

}  // namespace

absl::StatusOr<StepRule> StepRule::Create(const std::string& pattern) {
  StepRule rule;
  if (pattern.empty()) return rule;
  rule.pattern_ = pattern;
  try {
    rule.regex_.emplace(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& error) {
    return absl::InvalidArgumentError(
        absl::StrCat("step pattern '", pattern,
                     "' is not a regular expression: ", error.what()));
  }
  if (rule.regex_->mark_count() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "step pattern '", pattern, "' has ", rule.regex_->mark_count(),
        " capture groups; it needs exactly one, around the step's digits"));
  }
  return rule;
}

absl::StatusOr<int64_t> StepRule::StepOf(const std::string& file_name) const {
  if (regex_.has_value()) {
    std::smatch match;
    if (!std::regex_search(file_name, match, *regex_) || !match[1].matched) {
      return absl::NotFoundError(
          absl::StrCat(file_name, " does not match ", Describe()));
    }
    return ParseStep(match[1].str(), file_name);
  }
  const size_t dot = file_name.rfind('.');
  const std::string stem = dot == std::string::npos || dot == 0
                               ? file_name
                               : file_name.substr(0, dot);
  size_t end = stem.size();
  while (end > 0 &&
         !absl::ascii_isdigit(static_cast<unsigned char>(stem[end - 1]))) {
    --end;
  }
  if (end == 0) {
    return absl::NotFoundError(
        absl::StrCat(file_name, " has no digits for ", Describe()));
  }
  size_t begin = end;
  while (begin > 0 &&
         absl::ascii_isdigit(static_cast<unsigned char>(stem[begin - 1]))) {
    --begin;
  }
  return ParseStep(stem.substr(begin, end - begin), file_name);
}

std::string StepRule::Describe() const {
  if (regex_.has_value()) return absl::StrCat("step pattern '", pattern_, "'");
  return "the step rule (the last run of digits in the file name without its "
         "extension)";
}

std::optional<v1::CheckpointFormat> CheckpointFormatOf(
    const std::string& file_name) {
  if (absl::EndsWith(file_name, ".pt") || absl::EndsWith(file_name, ".zip")) {
    return v1::CHECKPOINT_FORMAT_TORCHSCRIPT;
  }
  if (absl::EndsWith(file_name, ".safetensors")) {
    return v1::CHECKPOINT_FORMAT_SAFETENSORS;
  }
  return std::nullopt;
}

absl::StatusOr<CheckpointDirectory> ScanCheckpointDirectory(
    const std::string& directory, const StepRule& rule) {
  namespace fs = std::filesystem;
  std::error_code error;
  fs::directory_iterator it(directory, error);
  if (error) {
    return absl::NotFoundError(absl::StrCat("cannot list directory ", directory,
                                            ": ", error.message()));
  }
  CheckpointDirectory out;
  std::map<int64_t, std::vector<CheckpointFile>> by_step;
  for (const fs::directory_entry& entry : it) {
    if (!entry.is_regular_file(error)) continue;
    CheckpointFile file;
    file.file_name = entry.path().filename().string();
    file.path = entry.path().string();
    std::optional<v1::CheckpointFormat> format =
        CheckpointFormatOf(file.file_name);
    if (!format.has_value()) {
      ++out.other_files;
      continue;
    }
    file.format = *format;
    absl::StatusOr<int64_t> step = rule.StepOf(file.file_name);
    if (!step.ok()) {
      out.skipped_no_step.push_back(std::string(step.status().message()));
      continue;
    }
    file.step = *step;
    by_step[file.step].push_back(std::move(file));
  }
  std::sort(out.skipped_no_step.begin(), out.skipped_no_step.end());
  for (auto& [step, files] : by_step) {
    std::sort(files.begin(), files.end(),
              [](const CheckpointFile& a, const CheckpointFile& b) {
                return a.file_name < b.file_name;
              });
    if (files.size() == 1) {
      out.checkpoints.push_back(std::move(files[0]));
      continue;
    }
    std::vector<std::string> names;
    for (const CheckpointFile& file : files) names.push_back(file.file_name);
    out.duplicate_steps.push_back(absl::StrCat(
        "step ", step, " is given by ", files.size(), " files (",
        absl::StrJoin(names, ", "), "): none of them is measured"));
  }
  return out;
}

}  // namespace curvd::client
