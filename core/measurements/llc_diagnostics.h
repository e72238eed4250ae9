// The LLC's trace statistics (issue 12, docs/adr/0011-llc-plan.md):
// split-R-hat, the effective sample size, the "still rising" test,
// downsampling, running means, the standard errors of lambda_hat and the
// result's warnings. Pure host functions of double vectors, no torch;
// thread-safe.
//
// A set of traces is one vector per chain. Functions over several chains cut
// every chain to the shortest one's length n; a non-finite value anywhere
// makes a statistic unknown (nullopt) rather than NaN.
#ifndef CURVD_CORE_MEASUREMENTS_LLC_DIAGNOSTICS_H_
#define CURVD_CORE_MEASUREMENTS_LLC_DIAGNOSTICS_H_

#include <optional>
#include <string>
#include <vector>

#include "core/api/llc_types.h"

namespace curvd::core {

using ChainTraces = std::vector<std::vector<double>>;

// A trace "still rises" when its last quarter's mean exceeds its third
// quarter's by more than this many standard errors of the difference: for a
// stationary trace with normal means the one-sided false-alarm rate is
// 1 - Phi(2) = 2.3%.
inline constexpr double kLlcRiseZThreshold = 2;

// A MALA acceptance rate below this is a warning: the rate that is optimal
// in high dimension is 0.574 (Roberts and Rosenthal 1998), and below 0.5 a
// chain rejects often enough that it sticks, a sign of too large a step. No
// upper bound: a high rate (a small step) mixes slowly, which R-hat, the ESS
// and the still-rising test already report, but does not bias MALA.
inline constexpr double kLlcMinMalaAcceptance = 0.5;

// Split-R-hat without rank normalisation (Gelman et al., BDA3 section 11.4;
// Stan's rhat_basic, ArviZ's rhat(method="split")): each chain is split into
// its first and last floor(n/2) draws (the middle draw of an odd n is
// dropped), and R-hat = sqrt(((h-1)/h W + B/h) / W) over the 2m halves of h
// draws, W the mean of the halves' variances (h-1), B/h the variance of their
// means (2m-1). Rank normalisation is left out because a loss trace has a
// finite variance and its mean is what lambda_hat uses. nullopt for fewer
// than 2 chains, fewer than 4 draws, a non-finite value, or W = 0 (every
// half constant, even halves constant at different values: a sampler that
// does not move gives no mixing information).
std::optional<double> SplitRHat(const ChainTraces& traces);

// The fewest draws per chain EffectiveSampleSize accepts: its halves need 6
// draws for Geyer's sequence to reach past lag 1 (with fewer, Stan's
// estimate falls to its cap n log10 n whatever the autocorrelation).
inline constexpr int kLlcMinEssDraws = 12;

// The effective sample size of the mean of all draws, summed over chains, as
// Stan's ess_basic / ArviZ's ess(method="mean") (Vehtari et al. 2021, no rank
// normalisation): chains split in halves as SplitRHat does, autocorrelations
// combined across the halves, rho_t = 1 - (W - mean autocovariance_t) / var+,
// summed to Geyer's initial positive sequence made monotone, with Stan's
// last-even-lag improvement and its cap n log10 n on the total. One chain is
// enough (its two halves). nullopt for no chain, fewer than kLlcMinEssDraws
// draws, a non-finite value, or a zero pooled variance var+. Costs
// O(chains x n x the truncation lag): callers pass the capped traces.
std::optional<double> EffectiveSampleSize(const ChainTraces& traces);

struct RiseTest {
  double z = 0;  // (mean_late - mean_early) / sqrt(se_early^2 + se_late^2)
  bool rising = false;  // z > kLlcRiseZThreshold
};

// The "still rising" test on the last half of `trace` (its last floor(n/2)
// draws): that half is split into an early and a late part of equal length
// (dropping the middle draw of an odd length), and each part's standard error
// is sqrt(variance (n-1) / ESS), the ESS its EffectiveSampleSize as one chain
// (0 for a constant part), so that autocorrelation widens it. nullopt when a
// part has fewer than kLlcMinEssDraws draws (a trace of fewer than
// 4 kLlcMinEssDraws), a value is non-finite, or both parts are constant.
std::optional<RiseTest> StillRising(const std::vector<double>& trace);

struct DownsampledTrace {
  int stride = 1;
  std::vector<double> values;
};

// Every stride-th value of `trace` starting at the first, stride =
// ceil(n / cap), so that at most cap values are kept (LlcOptions::trace_cap,
// LlcResult::trace_stride). A cap below 1 counts as 1; an empty trace gives
// stride 1 and no values.
DownsampledTrace Downsample(const std::vector<double>& trace, int cap);

// The prefix means: element i is the mean of values[0..i].
std::vector<double> RunningMeans(const std::vector<double>& values);

// The running mean of lambda_hat over the draws so far: element i is
// n_beta (mean of losses[0..i] - initial_loss), initial_loss L(w*)
// (LlcChain::llc_running_mean before downsampling).
std::vector<double> LlcRunningMeans(const std::vector<double>& losses,
                                    double n_beta, double initial_loss);

// lambda_hat over chains: the mean, the standard deviation (n - 1) and the
// standard error std / sqrt(chains) of the per-chain values. All 0 for no
// chain; std and standard error 0 for one.
struct LlcChainSummary {
  double mean = 0;
  double std = 0;
  double standard_error = 0;
};
LlcChainSummary SummarizeChains(const std::vector<double>& chain_llcs);

// The standard error of lambda_hat from the ESS: the kept chains' loss
// traces pooled, n_beta sqrt(variance (n-1) / EffectiveSampleSize(traces)).
// nullopt where the ESS is.
std::optional<double> EssStandardError(const ChainTraces& loss_traces,
                                       double n_beta);

// LlcResult::llc_standard_error: the larger of the across-chain standard
// error and the ESS-based one (when known), so that neither a few chains
// that agree by chance nor one long correlated chain looks more precise than
// it is.
double LlcStandardError(const LlcChainSummary& summary,
                        std::optional<double> ess_standard_error);

// LlcResult::warnings for a filled result, one sentence each with its
// numbers, in this order: a negative llc_mean, diverged chains (from
// chains[i].diverged, with their steps), r_hat above kLlcMaxRHat, chains
// still rising (chains[i].still_rising, with their z), acceptance_rate below
// kLlcMinMalaAcceptance. Empty when nothing is wrong.
std::vector<std::string> LlcWarnings(const LlcResult& result);

}  // namespace curvd::core

#endif  // CURVD_CORE_MEASUREMENTS_LLC_DIAGNOSTICS_H_
