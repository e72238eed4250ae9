// The checkpoint files of a directory, as `curvctl backfill` measures them: a
// TorchScript archive (.pt or .zip, what torch.jit.save writes) or a
// safetensors state dict (.safetensors) per file, the training step taken from
// the file name.
//
// The step rule: by default the last run of decimal digits in the file name
// without its extension ("ckpt_000150.pt" is step 150,
// "run3-step20.safetensors" step 20). A pattern, an ECMAScript regular
// expression with exactly one capture group, overrides it: the group's text in
// the first match anywhere in the whole file name (std::regex_search), which
// must be decimal digits
// ("step=(\d+)" takes 20 from "run3_step=20_loss=0.5.pt").
#ifndef CURVD_CLIENT_CHECKPOINT_DIRECTORY_H_
#define CURVD_CLIENT_CHECKPOINT_DIRECTORY_H_

#include <cstdint>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "curvd/v1/resources.pb.h"

namespace curvd::client {

// A compiled step rule (see above); immutable, so it may be shared.
class StepRule {
 public:
  // The default rule when `pattern` is empty; else InvalidArgument naming
  // the pattern when it is not a regular expression or has other than one
  // capture group.
  static absl::StatusOr<StepRule> Create(const std::string& pattern);

  // The step of `file_name` (no directory part); NotFound saying why when the
  // name has no step by this rule, InvalidArgument when the captured text is
  // not decimal digits or does not fit in int64.
  absl::StatusOr<int64_t> StepOf(const std::string& file_name) const;

  // "the last run of digits in the file name" or "pattern 'P'", for messages.
  std::string Describe() const;

 private:
  std::string pattern_;
  std::optional<std::regex> regex_;
};

// The checkpoint format of a file by its extension (.pt and .zip TorchScript,
// .safetensors safetensors); nullopt for any other file.
std::optional<curvd::v1::CheckpointFormat> CheckpointFormatOf(
    const std::string& file_name);

struct CheckpointFile {
  std::string path;       // the directory joined with file_name
  std::string file_name;  // no directory part
  int64_t step = 0;
  curvd::v1::CheckpointFormat format = curvd::v1::CHECKPOINT_FORMAT_UNSPECIFIED;
};

struct CheckpointDirectory {
  // The checkpoint files with a step, by step (then by name).
  std::vector<CheckpointFile> checkpoints;
  // Why each checkpoint file without a step by the rule was left out, one
  // line each.
  std::vector<std::string> skipped_no_step;
  // One line per step that several files give; none of them is measured
  // (which one is meant is the user's call).
  std::vector<std::string> duplicate_steps;
  // Regular files that are not checkpoints by their extension.
  int64_t other_files = 0;
};

// Lists `directory` (not its subdirectories) by `rule`. NotFound when it is
// not a directory or cannot be read.
absl::StatusOr<CheckpointDirectory> ScanCheckpointDirectory(
    const std::string& directory, const StepRule& rule);

}  // namespace curvd::client

#endif  // CURVD_CLIENT_CHECKPOINT_DIRECTORY_H_
