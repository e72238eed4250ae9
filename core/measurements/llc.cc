#include "core/measurements/llc.h"

#include <c10/core/DeviceGuard.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "core/api/measurement.h"
#include "core/measurements/llc_diagnostics.h"
#include "core/objective/chain_objective.h"
#include "core/samplers/chain_streams.h"
#include "core/samplers/minibatch_schedule.h"
#include "core/samplers/sampler.h"

namespace curvd::core {
namespace {

// Host reads of the step losses (divergence checks, cancellation's partner)
// happen every this many steps: each read is one device synchronisation.
constexpr int64_t kCheckEvery = 25;

// Words of the splitmix64 stream of the request's seed (the derivation the
// forward passes' seeds use, Objective::ForwardSeed) that seed the chains'
// noise and their minibatch order: they must not share a generator.
constexpr int64_t kNoiseStream = 0;
constexpr int64_t kScheduleStream = 1;

absl::StatusOr<double> ResolveNBeta(const LlcOptions& options, int64_t n,
                                    int64_t batch) {
  switch (options.n_beta_convention) {
    case NBetaConvention::kGiven:  // > 0: ValidateLlcOptions
      return options.n_beta;
    case NBetaConvention::kDataset:
      if (n < 2) {
        return absl::InvalidArgumentError(absl::StrCat(
            "llc.n_beta_convention DATASET is n / ln n, which needs a shard "
            "of at least 2 samples, got ",
            n));
      }
      return n / std::log(static_cast<double>(n));
    case NBetaConvention::kBatch:
      if (batch < 2) {
        return absl::InvalidArgumentError(absl::StrCat(
            "llc.n_beta_convention BATCH is B / ln B, which needs a batch of "
            "at least 2 samples, got ",
            batch));
      }
      return batch / std::log(static_cast<double>(batch));
  }
  return absl::InvalidArgumentError("llc.n_beta_convention is unknown");
}

// The block's parameters w* as one flat vector [P].
torch::Tensor FlatCenter(Objective& objective) {
  std::vector<torch::Tensor> flat;
  for (const torch::Tensor& p : objective.block_parameters()) {
    flat.push_back(p.detach().reshape(-1));
  }
  return torch::cat(flat).clone();
}

// Where chain c first diverged in `losses` [steps, C] (host, float64) from
// step `from` on: the step, or -1.
struct Divergence {
  int64_t step = -1;
  double loss = 0;
};
Divergence FirstDivergence(const torch::Tensor& losses, int64_t c,
                           int64_t from, double threshold) {
  const double* data = losses.data_ptr<double>();
  const int64_t chains = losses.size(1);
  for (int64_t s = from; s < losses.size(0); ++s) {
    const double loss = data[s * chains + c];
    if (!std::isfinite(loss) || loss > threshold) return {s, loss};
  }
  return {};
}

// Draws made before sampler step `step`.
int64_t DrawsBefore(int64_t step, const LlcOptions& options) {
  if (step <= options.burn_in) return 0;
  return std::min<int64_t>(
      options.draws, (step - options.burn_in + options.steps_between_draws - 1) /
                         options.steps_between_draws);
}

std::string DivergenceReason(double loss, double threshold) {
  return std::isfinite(loss)
             ? absl::StrFormat("loss %.6g above %.6g", loss, threshold)
             : absl::StrFormat("loss %g", loss);
}

// What a failed measurement advises. A chain's loss may also pass the
// threshold without leaving the basin: the tempered posterior's own loss is
// about L(w*) + lambda / n_beta, above a threshold that a tiny L(w*) set low
// (a memorising network: L(w*) ~ 1e-6, lambda in the hundreds).
std::string DivergenceAdvice(double n_beta) {
  return absl::StrCat(
      "lower step_size or raise localization; if L(w*) + lambda / n_beta "
      "(n_beta = ",
      n_beta, ") may lie above the threshold, raise divergence_factor");
}

// The chains of one device, a contiguous run of the measurement's, with
// their own sampler, schedule and objective.
struct ChainGroup {
  torch::Tensor center;  // w* [P] on the group's device
  torch::Tensor w;       // the chains [count, P]
  std::unique_ptr<Sampler> sampler;
  std::unique_ptr<ChainObjective> objective;
  std::unique_ptr<MinibatchSchedule> schedule;
  torch::Tensor step_losses;               // [steps, count], float64
  std::vector<torch::Tensor> distances;    // [count] at every stride-th draw
  std::vector<torch::Tensor> full_losses;  // [count] at every k-th draw
};

// The columns that `part` gives of each group ([rows, count] on its
// device), side by side in chain order on the host: [rows, C], contiguous.
template <typename Part>
torch::Tensor HostColumns(const std::vector<ChainGroup>& groups, Part part) {
  std::vector<torch::Tensor> columns;
  for (const ChainGroup& group : groups) columns.push_back(part(group).cpu());
  return torch::cat(columns, 1).contiguous();
}

// A per-chain value of every group's sampler (`values`), in chain order;
// nullopt where the sampler has none.
std::optional<std::vector<double>> JoinChainValues(
    const std::vector<ChainGroup>& groups,
    std::optional<std::vector<double>> (Sampler::*values)() const) {
  std::vector<double> joined;
  for (const ChainGroup& group : groups) {
    std::optional<std::vector<double>> part = ((*group.sampler).*values)();
    if (!part) return std::nullopt;
    joined.insert(joined.end(), part->begin(), part->end());
  }
  return joined;
}

}  // namespace

std::vector<int64_t> ChainGroupSizes(int64_t chains, int64_t devices) {
  const int64_t groups = std::max<int64_t>(1, std::min(chains, devices));
  std::vector<int64_t> sizes(groups, chains / groups);
  for (int64_t g = 0; g < chains % groups; ++g) ++sizes[g];
  return sizes;
}

absl::StatusOr<LlcResult> MeasureLlc(Objective& objective,
                                     const LlcOptions& options,
                                     const Progress& progress) {
  return MeasureLlc(std::vector<Objective*>{&objective}, options, progress);
}

absl::StatusOr<LlcResult> MeasureLlc(const std::vector<Objective*>& objectives,
                                     const LlcOptions& options,
                                     const Progress& progress) {
  CURVD_RETURN_IF_ERROR(ValidateLlcOptions(options, "llc"));
  if (objectives.empty()) {
    return absl::InvalidArgumentError("llc needs at least one objective");
  }
  Objective& objective = *objectives[0];
  for (const Objective* other : objectives) {
    if (other->num_samples() != objective.num_samples() ||
        other->num_parameters() != objective.num_parameters()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "llc's objectives must share their shard and block: ",
          objective.num_samples(), " samples x ", objective.num_parameters(),
          " parameters against ", other->num_samples(), " x ",
          other->num_parameters()));
    }
  }
  LlcResult result;
  const int64_t n = objective.num_samples();
  result.num_samples = n;
  result.batch_size = options.sampler == LlcSampler::kMala
                          ? n
                          : std::min<int64_t>(options.batch_size, n);
  CURVD_ASSIGN_OR_RETURN(result.n_beta,
                         ResolveNBeta(options, n, result.batch_size));
  CURVD_ASSIGN_OR_RETURN(result.initial_loss, objective.Loss());
  result.divergence_threshold =
      options.divergence_factor *
      std::max(result.initial_loss, kLlcDivergenceFloor);

  const int64_t chains = options.chains;
  // Chain c's noise and minibatch order: generators seeded by word c of the
  // splitmix64 streams of these two seeds (ChainStreams).
  const uint64_t noise_seed = Objective::ForwardSeed(options.seed, kNoiseStream);
  const uint64_t schedule_seed =
      Objective::ForwardSeed(options.seed, kScheduleStream);
  std::vector<ChainGroup> groups;
  int64_t first = 0;
  const std::vector<int64_t> sizes =
      ChainGroupSizes(chains, static_cast<int64_t>(objectives.size()));
  for (size_t g = 0; g < sizes.size(); ++g) {
    const torch::Device device = objectives[g]->vector_options().device();
    const c10::DeviceGuard on(device);
    ChainGroup group;
    group.center = FlatCenter(*objectives[g]);
    if (g > 0 && !torch::equal(group.center.to(groups[0].center.device()),
                               groups[0].center)) {
      return absl::InvalidArgumentError(
          "llc's objectives must start at the same parameters w*");
    }
    // A whole-shard loss seeds the device's default generator, as
    // objective.Loss() above did the first's: the forward randomness of the
    // chains (dropout in train mode) then repeats with the request's seed.
    if (g > 0) CURVD_RETURN_IF_ERROR(objectives[g]->Loss().status());
    group.w = group.center.unsqueeze(0).repeat({sizes[g], 1});
    CURVD_ASSIGN_OR_RETURN(
        group.sampler,
        MakeSampler(options, result.n_beta, group.center,
                    ChainStreams(device, noise_seed, first)));
    group.objective = std::make_unique<ChainObjective>(*objectives[g]);
    group.schedule = std::make_unique<MinibatchSchedule>(
        sizes[g], n, result.batch_size,
        ChainStreams(device, schedule_seed, first));
    first += sizes[g];
    groups.push_back(std::move(group));
    result.groups.push_back({sizes[g], device.str()});
  }

  const int64_t steps =
      options.burn_in +
      static_cast<int64_t>(options.draws) * options.steps_between_draws;
  result.steps = steps;
  result.trace_stride = static_cast<int>(
      (options.draws + options.trace_cap - 1) / options.trace_cap);
  for (ChainGroup& group : groups) {
    group.step_losses =
        torch::empty({steps, group.w.size(0)},
                     group.center.options().dtype(torch::kFloat64));
  }
  std::vector<int64_t> divergence_step(chains, -1);
  std::vector<std::string> divergence_reason(chains);
  torch::Tensor host_losses;
  int64_t checked = 0;  // steps whose losses were read
  auto check = [&](int64_t through) -> absl::Status {
    host_losses = HostColumns(groups, [through](const ChainGroup& group) {
      return group.step_losses.narrow(0, 0, through);
    });
    for (int64_t c = 0; c < chains; ++c) {
      if (divergence_step[c] >= 0) continue;
      const Divergence d = FirstDivergence(host_losses, c, checked,
                                           result.divergence_threshold);
      if (d.step < 0) continue;
      divergence_step[c] = d.step;
      divergence_reason[c] =
          DivergenceReason(d.loss, result.divergence_threshold);
      if (options.on_divergence == DivergencePolicy::kFail) {
        return absl::FailedPreconditionError(absl::StrCat(
            "llc chain ", c, " diverged at step ", d.step, " (",
            divergence_reason[c], "); ", DivergenceAdvice(result.n_beta),
            "; or set on_divergence to DROP_CHAIN"));
      }
    }
    checked = through;
    if (std::all_of(divergence_step.begin(), divergence_step.end(),
                    [](int64_t s) { return s >= 0; })) {
      return absl::FailedPreconditionError(absl::StrCat(
          "every llc chain diverged (chain 0 at step ", divergence_step[0],
          ", ", divergence_reason[0], "); ",
          DivergenceAdvice(result.n_beta)));
    }
    return absl::OkStatus();
  };

  // Each step is launched on every group's device in turn; nothing waits for
  // a device between the checks, so the devices run side by side.
  for (int64_t step = 0; step < steps; ++step) {
    if (progress.cancelled && progress.cancelled()) {
      return absl::CancelledError(
          absl::StrCat("llc cancelled at step ", step, " of ", steps));
    }
    const int64_t since_burn_in = step - options.burn_in;
    const bool is_draw =
        since_burn_in >= 0 && since_burn_in % options.steps_between_draws == 0;
    const int64_t draw = is_draw ? since_burn_in / options.steps_between_draws
                                 : -1;
    for (ChainGroup& group : groups) {
      const c10::DeviceGuard on(group.center.device());
      if (is_draw && draw % result.trace_stride == 0) {
        group.distances.push_back(
            (group.w - group.center).norm(2, {1}).to(torch::kFloat64));
      }
      if (is_draw && options.full_loss_every > 0 &&
          draw % options.full_loss_every == 0) {
        CURVD_ASSIGN_OR_RETURN(ChainEvaluation full,
                               group.objective->FullShard(group.w, false));
        group.full_losses.push_back(full.losses);
      }
      auto minibatch = [&group](const torch::Tensor& at) {
        return group.objective->Minibatch(at, group.schedule->Next());
      };
      auto full_shard = [&group](const torch::Tensor& at) {
        return group.objective->FullShard(at, /*with_gradients=*/true);
      };
      absl::StatusOr<torch::Tensor> losses =
          options.sampler == LlcSampler::kMala
              ? group.sampler->Step(full_shard, group.w)
              : group.sampler->Step(minibatch, group.w);
      if (!losses.ok()) return losses.status();
      group.step_losses[step].copy_(*losses);
    }
    if ((step + 1) % kCheckEvery == 0 || step + 1 == steps) {
      CURVD_RETURN_IF_ERROR(check(step + 1));
      if (progress.report) {
        progress.report(static_cast<double>(step + 1) / steps,
                        absl::StrFormat("llc: step %d of %d, %d chains", step + 1,
                                        steps, chains));
      }
    }
  }

  // The draws of each chain, [draws, C] on the host.
  const torch::Tensor draws =
      host_losses
          .narrow(0, options.burn_in,
                  static_cast<int64_t>(options.draws) *
                      options.steps_between_draws)
          .slice(0, 0, host_losses.size(0), options.steps_between_draws)
          .contiguous();
  const torch::Tensor distance_trace =  // [kept, C]
      HostColumns(groups, [](const ChainGroup& group) {
        return torch::stack(group.distances);
      });
  const torch::Tensor full_trace =
      groups[0].full_losses.empty()
          ? torch::Tensor()
          : HostColumns(groups, [](const ChainGroup& group) {
              return torch::stack(group.full_losses);
            });
  std::optional<std::vector<double>> acceptance =
      JoinChainValues(groups, &Sampler::AcceptanceRates);
  std::optional<std::vector<double>> temperature =
      JoinChainValues(groups, &Sampler::KineticTemperatures);
  // Of the chains that did not diverge.
  std::vector<double> kept_llcs;
  ChainTraces kept_traces;  // capped, for R-hat and the ESS
  double kept_draws_total = 0;
  double kept_loss_sum = 0;
  double accepted = 0;
  int accepting = 0;
  for (int64_t c = 0; c < chains; ++c) {
    LlcChain chain;
    const torch::Tensor column = draws.select(1, c).contiguous();
    chain.diverged = divergence_step[c] >= 0;
    chain.divergence_step = divergence_step[c];
    chain.divergence_reason = divergence_reason[c];
    // A diverged chain stopped: its record ends before the step that
    // diverged (its row was still computed, and is ignored past it).
    const int64_t kept_draws =
        chain.diverged ? DrawsBefore(chain.divergence_step, options)
                       : column.numel();
    std::vector<double> trace(column.data_ptr<double>(),
                              column.data_ptr<double>() + kept_draws);
    if (full_trace.defined()) {
      const torch::Tensor f = full_trace.select(1, c).contiguous();
      const int64_t kept = std::min<int64_t>(
          f.numel(), (kept_draws + options.full_loss_every - 1) /
                         options.full_loss_every);
      chain.full_loss_trace.assign(f.data_ptr<double>(),
                                   f.data_ptr<double>() + kept);
    }
    const std::vector<double>& source =
        full_trace.defined() ? chain.full_loss_trace : trace;
    const std::vector<double> running =
        LlcRunningMeans(source, result.n_beta, result.initial_loss);
    chain.llc = running.empty() ? 0 : running.back();
    if (const std::optional<RiseTest> rise = StillRising(source)) {
      chain.still_rising = rise->rising;
      chain.rise_z_score = rise->z;
    }
    chain.loss_trace = Downsample(trace, options.trace_cap).values;
    chain.llc_running_mean =
        Downsample(LlcRunningMeans(trace, result.n_beta, result.initial_loss),
                   options.trace_cap)
            .values;
    const torch::Tensor d = distance_trace.select(1, c).contiguous();
    chain.distance_trace.assign(
        d.data_ptr<double>(),
        d.data_ptr<double>() +
            std::min<int64_t>(d.numel(), (kept_draws + result.trace_stride - 1) /
                                             result.trace_stride));
    if (acceptance) chain.acceptance_rate = (*acceptance)[c];
    if (temperature) chain.kinetic_temperature = (*temperature)[c];
    if (!chain.diverged) {
      kept_llcs.push_back(chain.llc);
      kept_traces.push_back(Downsample(source, options.trace_cap).values);
      kept_draws_total += static_cast<double>(source.size());
      kept_loss_sum += (chain.llc / result.n_beta + result.initial_loss) *
                       static_cast<double>(source.size());
      if (chain.acceptance_rate) {
        accepted += *chain.acceptance_rate;
        ++accepting;
      }
    } else {
      ++result.chains_diverged;
    }
    result.chains.push_back(std::move(chain));
  }
  const LlcChainSummary summary = SummarizeChains(kept_llcs);
  result.llc_mean = summary.mean;
  result.llc_std = summary.std;
  result.llc_standard_error =
      LlcStandardError(summary, EssStandardError(kept_traces, result.n_beta));
  result.r_hat = SplitRHat(kept_traces);
  result.effective_sample_size = EffectiveSampleSize(kept_traces);
  if (options.n_beta_convention == NBetaConvention::kDataset &&
      kept_draws_total > 0) {
    result.wbic = static_cast<double>(n) * kept_loss_sum / kept_draws_total;
  }
  if (accepting > 0) result.acceptance_rate = accepted / accepting;
  result.warnings = LlcWarnings(result);
  for (const ChainGroup& group : groups) {
    if (group.objective->graph_failure().empty()) continue;
    result.warnings.push_back(absl::StrCat(
        "the chains ran eagerly, without a device graph (",
        group.objective->graph_failure(),
        "): the estimate is unaffected, its steps were slower"));
    break;
  }
  return result;
}

}  // namespace curvd::core
