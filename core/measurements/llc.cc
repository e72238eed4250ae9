#include "core/measurements/llc.h"

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
#include "core/objective/linear_operator.h"
#include "core/samplers/minibatch_schedule.h"
#include "core/samplers/sampler.h"

namespace curvd::core {
namespace {

// Host reads of the step losses (divergence checks, cancellation's partner)
// happen every this many steps: each read is one device synchronisation.
constexpr int64_t kCheckEvery = 25;

// Words of the splitmix64 stream of the request's seed (the derivation the
// forward passes' seeds use, Objective::ForwardSeed) that seed the noise and
// the minibatch order: they must not share a generator.
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

}  // namespace

absl::StatusOr<LlcResult> MeasureLlc(Objective& objective,
                                     const LlcOptions& options,
                                     const Progress& progress) {
  CURVD_RETURN_IF_ERROR(ValidateLlcOptions(options, "llc"));
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

  const torch::Tensor center = FlatCenter(objective);
  const torch::Device device = center.device();
  const int64_t chains = options.chains;
  torch::Tensor w = center.unsqueeze(0).repeat({chains, 1});
  CURVD_ASSIGN_OR_RETURN(
      std::unique_ptr<Sampler> sampler,
      MakeSampler(options, result.n_beta, center,
                  DeviceGenerator(device, Objective::ForwardSeed(options.seed,
                                                              kNoiseStream))));
  ChainObjective chain_objective(objective);
  MinibatchSchedule schedule(
      chains, n, result.batch_size, device,
      DeviceGenerator(device,
                      Objective::ForwardSeed(options.seed, kScheduleStream)));
  auto minibatch = [&](const torch::Tensor& at) {
    return chain_objective.Minibatch(at, schedule.Next());
  };
  auto full_shard = [&](const torch::Tensor& at) {
    return chain_objective.FullShard(at, /*with_gradients=*/true);
  };

  const int64_t steps =
      options.burn_in +
      static_cast<int64_t>(options.draws) * options.steps_between_draws;
  result.steps = steps;
  result.trace_stride = static_cast<int>(
      (options.draws + options.trace_cap - 1) / options.trace_cap);
  const auto on_host = torch::TensorOptions().dtype(torch::kFloat64);
  // Every step's losses [steps, C], on the device until read.
  torch::Tensor step_losses =
      torch::empty({steps, chains}, on_host.device(device));
  std::vector<torch::Tensor> distances;   // [C] at every stride-th draw
  std::vector<torch::Tensor> full_losses;  // [C] at every k-th draw
  std::vector<int64_t> divergence_step(chains, -1);
  std::vector<std::string> divergence_reason(chains);
  torch::Tensor host_losses;
  int64_t checked = 0;  // steps whose losses were read
  auto check = [&](int64_t through) -> absl::Status {
    host_losses = step_losses.narrow(0, 0, through).cpu();
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
    if (is_draw && draw % result.trace_stride == 0) {
      distances.push_back((w - center).norm(2, {1}).to(torch::kFloat64));
    }
    if (is_draw && options.full_loss_every > 0 &&
        draw % options.full_loss_every == 0) {
      CURVD_ASSIGN_OR_RETURN(ChainEvaluation full,
                             chain_objective.FullShard(w, false));
      full_losses.push_back(full.losses);
    }
    absl::StatusOr<torch::Tensor> losses =
        options.sampler == LlcSampler::kMala ? sampler->Step(full_shard, w)
                                             : sampler->Step(minibatch, w);
    if (!losses.ok()) return losses.status();
    step_losses[step].copy_(*losses);
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
  const torch::Tensor distance_trace =
      torch::stack(distances).cpu().contiguous();  // [kept, C]
  const torch::Tensor full_trace =
      full_losses.empty() ? torch::Tensor()
                          : torch::stack(full_losses).cpu().contiguous();
  std::optional<std::vector<double>> acceptance = sampler->AcceptanceRates();
  std::optional<std::vector<double>> temperature =
      sampler->KineticTemperatures();
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
  if (!chain_objective.graph_failure().empty()) {
    result.warnings.push_back(absl::StrCat(
        "the chains ran eagerly, without a device graph (",
        chain_objective.graph_failure(),
        "): the estimate is unaffected, its steps were slower"));
  }
  return result;
}

}  // namespace curvd::core
