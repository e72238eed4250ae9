// Options and results of the local learning coefficient (issue 12,
// docs/adr/0011-llc-plan.md):
//   lambda_hat = n_beta * (E_w[L(w)] - L(w*)),
// the expectation under the tempered posterior localised at the checkpoint w*,
//   p(w) ~ exp(-n_beta L(w) - (gamma / 2) ||w - w*||^2 - (precision / 2) ||w||^2),
// L the mean loss over the shard, L(w*) computed on the whole shard in the same
// mode (eval by default) as the chains. Plain structs, no torch.
#ifndef CURVD_CORE_API_LLC_TYPES_H_
#define CURVD_CORE_API_LLC_TYPES_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace curvd::core {

enum class LlcSampler {
  // w <- w - (eps/2)(n_beta g_B + gamma (w - w*) + precision w) + N(0, eps I),
  // g_B a minibatch gradient: devinterp's update, so that numbers compare.
  kSgld,
  // SGLD preconditioned by RMSProp's running second moment of the drift
  // (Hitchcock and Hoogland 2025): v <- alpha v + (1 - alpha) d^2,
  // G = 1 / (sqrt(v) + rmsprop_epsilon), w <- w - (eps/2) G d
  // + N(0, eps G), d the drift above.
  kRmspropSgld,
  // Stochastic gradient Nose-Hoover thermostat (Ding et al. 2014): momentum p
  // and a thermostat xi per chain, p <- p - xi p eps - eps d
  // + N(0, 2 A eps I), w <- w + eps p, xi <- xi + eps (p^T p / P - 1), A the
  // sgnht_diffusion; xi settles where the kinetic temperature p^T p / P is 1.
  kSgnht,
  // Metropolis-adjusted Langevin on the full-shard potential: the proposal
  // is SGLD's with the full gradient, accepted with the Metropolis-Hastings
  // probability, so the chain samples the tempered posterior exactly (no eps
  // bias). Every step is a full-shard loss and gradient: for small models.
  kMala,
};

// How n_beta is chosen when it is not given.
enum class NBetaConvention {
  kDataset,  // n / ln n, n the shard's size (the papers'); WBIC is reported
  kBatch,    // B / ln B, B the sampler's batch size (devinterp's)
  kGiven,    // LlcOptions::n_beta as given (> 0)
};

// What happens to a chain that diverges (a NaN loss, or a loss above
// divergence_factor * max(L(w*), kLlcDivergenceFloor)).
enum class DivergencePolicy {
  kDropChain,  // the chain stops; lambda_hat is computed without it
  kFail,       // the measurement fails naming the chain and the step
};

// A loss below this counts as this in the divergence threshold, so that a
// checkpoint at L(w*) ~ 0 (a grokked model) does not call every draw a
// divergence.
inline constexpr double kLlcDivergenceFloor = 1e-2;

struct LlcOptions {
  LlcSampler sampler = LlcSampler::kSgld;
  double step_size = 1e-4;     // epsilon
  double localization = 100;   // gamma; devinterp's default of 0 is unsafe
  double prior_precision = 0;  // a Gaussian prior N(0, I / precision); 0: none
  NBetaConvention n_beta_convention = NBetaConvention::kDataset;
  // Used with kGiven (> 0); otherwise the server resolves the convention and
  // writes the value here and the convention as kGiven-equivalent facts in
  // the result (LlcResult::n_beta).
  double n_beta = 0;
  int chains = 4;
  int draws = 200;                // draws kept per chain
  int burn_in = 100;              // steps discarded before the first draw
  int steps_between_draws = 1;    // thinning: 1 keeps every step
  int64_t batch_size = 512;       // min(batch_size, n) samples a step; MALA: n
  uint64_t seed = 0;              // noise and minibatch order of every chain
  // Every k-th draw the loss is also evaluated on the whole shard (0: never;
  // the minibatch losses are the trace then).
  int full_loss_every = 0;
  double divergence_factor = 100;
  DivergencePolicy on_divergence = DivergencePolicy::kDropChain;
  // RMSProp-SGLD's second-moment decay and the stabiliser in its
  // preconditioner.
  double rmsprop_alpha = 0.99;
  // 0.1, not an optimiser's 1e-8: at a checkpoint that is an exact minimum
  // the first drift is 0, and 1e-8 would make the first step's noise 1e4
  // times SGLD's.
  double rmsprop_epsilon = 0.1;
  // SGNHT's diffusion A (the noise injected with the momentum) and the
  // thermostat's start value.
  double sgnht_diffusion = 0.01;
  // Loss traces are stored at most this long per chain: past it, every k-th
  // draw is kept (k = ceil(draws / trace_cap), LlcResult::trace_stride).
  int trace_cap = 1000;
  // The llc_calibration measurement whose recommended cell gave step_size,
  // localization and n_beta (the request's use_latest_calibration); empty
  // when the request gave them. A record of provenance: MeasureLlc does not
  // read it.
  std::string calibration;
};

// One chain's record.
struct LlcChain {
  double llc = 0;  // n_beta (mean of its draws' losses - L(w*))
  // The draws' losses (every trace_stride-th draw) and the running mean of
  // lambda_hat over the draws so far at the same points.
  std::vector<double> loss_trace;
  std::vector<double> llc_running_mean;
  // ||w - w*|| at the same points.
  std::vector<double> distance_trace;
  // Full-shard losses every full_loss_every-th draw; empty when 0.
  std::vector<double> full_loss_trace;
  bool diverged = false;
  int64_t divergence_step = -1;  // the sampler step, counted from 0
  std::string divergence_reason;
  // The trace still rises (llc_diagnostics.h StillRising): the mean of its
  // last quarter exceeds the third quarter's by more than 2 standard errors
  // of the difference, each from its part's ESS.
  bool still_rising = false;
  double rise_z_score = 0;
  // MALA: accepted proposals over proposals made (steps the chain ran).
  std::optional<double> acceptance_rate;
  // SGNHT: p^T p / P after the last step (near 1 where the thermostat works).
  std::optional<double> kinetic_temperature;
};

struct LlcResult {
  double llc_mean = 0;  // over the chains that did not diverge
  double llc_std = 0;   // across those chains (n - 1)
  // llc_std / sqrt(chains); also reported with the ESS-based one, the larger
  // of the two is llc_standard_error.
  double llc_standard_error = 0;
  double initial_loss = 0;  // L(w*) on the whole shard
  double n_beta = 0;        // the value used
  int64_t batch_size = 0;   // the value used
  int64_t num_samples = 0;  // n
  std::vector<LlcChain> chains;
  int trace_stride = 1;
  // Split-R-hat and the effective sample size (summed over chains) of the
  // kept chains' loss traces (capped at trace_cap): R-hat unset with fewer
  // than two chains or four draws, the ESS below 12 draws
  // (llc_diagnostics.h).
  std::optional<double> r_hat;
  std::optional<double> effective_sample_size;
  // n * E[L] with n_beta = n / ln n (the dataset convention only).
  std::optional<double> wbic;
  std::optional<double> acceptance_rate;  // MALA, over all kept chains
  double divergence_threshold = 0;        // the loss that counts as diverged
  int chains_diverged = 0;
  // One sentence each: a negative lambda_hat, diverged chains, R-hat above
  // kLlcMaxRHat, still-rising traces, a low MALA acceptance.
  std::vector<std::string> warnings;
  int64_t steps = 0;  // sampler steps per chain
  // The chains' groups in chain order, each on the device named (one group
  // unless the chains were divided among devices, docs/adr/0029).
  struct ChainGroup {
    int64_t chains = 0;
    std::string device;
  };
  std::vector<ChainGroup> groups;
};

// R-hat above this is a warning.
inline constexpr double kLlcMaxRHat = 1.1;

// A grid of short LLC runs over step size x localization (x n_beta), and the
// cell the stated rule (llc_calibration.h) recommends.
struct LlcCalibrationOptions {
  // Sampler, chains, draws, burn-in, batch, seed, ... of every cell; its
  // step_size, localization and (when n_betas is set) n_beta are the grid's.
  LlcOptions base = ShortRuns();
  std::vector<double> step_sizes = {1e-6, 1e-5, 1e-4, 1e-3};
  std::vector<double> localizations = {1, 10, 100};
  // Empty: base's n_beta convention in every cell.
  std::vector<double> n_betas;

  static LlcOptions ShortRuns() {
    LlcOptions options;
    options.draws = 100;
    options.burn_in = 50;
    return options;
  }
};

struct LlcCalibrationCell {
  double step_size = 0;
  double localization = 0;
  // The value used; 0 for a cell whose chains all diverged before the
  // convention's value was recorded (a grid without n_betas, a convention).
  double n_beta = 0;
  LlcResult result;  // traces trimmed to the diagnostics' numbers
  // Why the rule excluded it ("2 chains diverged", "R-hat 1.3 > 1.1", ...);
  // empty only for the recommended cell.
  std::string rejection;
};

struct LlcCalibrationResult {
  std::vector<LlcCalibrationCell> cells;  // step size fastest, then gamma
  int recommended = -1;                   // index into cells; -1: none passed
  std::string reason;                     // the rule, applied to this grid
};

}  // namespace curvd::core

#endif  // CURVD_CORE_API_LLC_TYPES_H_
