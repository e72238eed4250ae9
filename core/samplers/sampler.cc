#include "core/samplers/sampler.h"

#include <torch/torch.h>

#include <cmath>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "core/samplers/localized_potential.h"
#include "core/samplers/mala.h"
#include "core/samplers/rmsprop_sgld.h"
#include "core/samplers/sgld.h"
#include "core/samplers/sgnht.h"

namespace curvd::core {
namespace {

// InvalidArgument naming `name` unless `value` is finite and in the range
// that `low_open` (value > low) or not (value >= low) and `high` (value <
// high, when given) describe.
absl::Status CheckRange(absl::string_view name, double value, double low,
                        bool low_open,
                        std::optional<double> high = std::nullopt) {
  const bool in_range = std::isfinite(value) &&
                        (low_open ? value > low : value >= low) &&
                        (!high.has_value() || value < *high);
  if (in_range) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      name, " must be finite and ", low_open ? "> " : ">= ", low,
      high.has_value() ? absl::StrCat(" and < ", *high) : "", ", got ", value));
}

absl::Status CheckOptions(const LlcOptions& options, double n_beta) {
  CURVD_RETURN_IF_ERROR(CheckRange("step_size", options.step_size, 0, true));
  CURVD_RETURN_IF_ERROR(CheckRange("n_beta", n_beta, 0, true));
  CURVD_RETURN_IF_ERROR(
      CheckRange("localization", options.localization, 0, false));
  CURVD_RETURN_IF_ERROR(
      CheckRange("prior_precision", options.prior_precision, 0, false));
  CURVD_RETURN_IF_ERROR(
      CheckRange("rmsprop_alpha", options.rmsprop_alpha, 0, false, 1.0));
  CURVD_RETURN_IF_ERROR(
      CheckRange("rmsprop_epsilon", options.rmsprop_epsilon, 0, true));
  return CheckRange("sgnht_diffusion", options.sgnht_diffusion, 0, false);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Sampler>> MakeSampler(
    const LlcOptions& options, double n_beta, const torch::Tensor& center,
    ChainStreams streams) {
  CURVD_RETURN_IF_ERROR(CheckOptions(options, n_beta));
  if (!center.defined() || center.dim() != 1 ||
      !c10::isFloatingType(center.scalar_type())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the center must be a floating vector [P], got ",
        center.defined() ? absl::StrCat(c10::str(center.sizes()), " ",
                                        c10::toString(center.scalar_type()))
                         : "an undefined tensor"));
  }
  if (streams.device() != center.device()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the random streams are of ", streams.device().str(),
                     " but the center is on ", center.device().str()));
  }
  LocalizedPotential potential(n_beta, options.localization,
                               options.prior_precision, center);
  switch (options.sampler) {
    case LlcSampler::kSgld:
      return std::make_unique<Sgld>(std::move(potential), options.step_size,
                                    std::move(streams));
    case LlcSampler::kRmspropSgld:
      return std::make_unique<RmspropSgld>(
          std::move(potential), options.step_size, options.rmsprop_alpha,
          options.rmsprop_epsilon, std::move(streams));
    case LlcSampler::kSgnht:
      return std::make_unique<Sgnht>(std::move(potential), options.step_size,
                                     options.sgnht_diffusion,
                                     std::move(streams));
    case LlcSampler::kMala:
      return std::make_unique<Mala>(std::move(potential), options.step_size,
                                    std::move(streams));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "sampler ", static_cast<int>(options.sampler), " is not a sampler"));
}

}  // namespace curvd::core
