#include "core/measurements/llc_diagnostics.h"

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace curvd::core {
namespace {

double Mean(const double* x, size_t n) {
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += x[i];
  return sum / static_cast<double>(n);
}

// The sample variance (n - 1) about `mean`.
double Variance(const double* x, size_t n, double mean) {
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += (x[i] - mean) * (x[i] - mean);
  return sum / static_cast<double>(n - 1);
}

// Every chain's first and last floor(n/2) draws as separate sequences, n the
// shortest chain's length; empty when a value is non-finite.
struct Halves {
  std::vector<const double*> starts;
  size_t length = 0;
};

Halves SplitChains(const ChainTraces& traces) {
  Halves halves;
  if (traces.empty()) return halves;
  size_t n = traces.front().size();
  for (const auto& trace : traces) n = std::min(n, trace.size());
  for (const auto& trace : traces) {
    for (size_t i = 0; i < n; ++i) {
      if (!std::isfinite(trace[i])) return halves;
    }
  }
  halves.length = n / 2;
  for (const auto& trace : traces) {
    halves.starts.push_back(trace.data());
    halves.starts.push_back(trace.data() + (n - halves.length));
  }
  return halves;
}

// The biased autocovariance at `lag` of the sequence x[0..n) about `mean`
// (divided by n, as Geyer 1992 recommends and Stan uses).
double Autocovariance(const double* x, size_t n, double mean, size_t lag) {
  double sum = 0;
  for (size_t i = 0; i + lag < n; ++i) {
    sum += (x[i] - mean) * (x[i + lag] - mean);
  }
  return sum / static_cast<double>(n);
}

// Stan's ess over sequences of equal length h >= 6 (already split), each
// autocovariance computed when the sequence first needs it.
std::optional<double> EssOfSequences(const std::vector<const double*>& seqs,
                                     size_t h) {
  const size_t m = seqs.size();
  std::vector<double> means(m);
  double mean_var = 0;  // W, the mean of the variances (h - 1)
  for (size_t j = 0; j < m; ++j) {
    means[j] = Mean(seqs[j], h);
    mean_var += Variance(seqs[j], h, means[j]) / static_cast<double>(m);
  }
  // m >= 2: every chain gave two halves.
  const double var_plus = mean_var * static_cast<double>(h - 1) / h +
                          Variance(means.data(), m, Mean(means.data(), m));
  if (!(var_plus > 0)) return std::nullopt;
  auto rho = [&](size_t lag) {
    double acov = 0;
    for (size_t j = 0; j < m; ++j) {
      acov += Autocovariance(seqs[j], h, means[j], lag) / m;
    }
    return 1 - (mean_var - acov) / var_plus;
  };

  // Geyer's initial positive sequence: pairs (rho_t, rho_t+1), t even, kept
  // while their sum is positive.
  std::vector<double> rho_hat(h, 0.0);
  rho_hat[0] = 1;
  rho_hat[1] = rho(1);
  double rho_even = 1;
  double rho_odd = rho_hat[1];
  size_t t = 0;
  while (t + 5 < h && rho_even + rho_odd > 0) {
    t += 2;
    rho_even = rho(t);
    rho_odd = rho(t + 1);
    if (rho_even + rho_odd >= 0) {
      rho_hat[t] = rho_even;
      rho_hat[t + 1] = rho_odd;
    }
  }
  const size_t max_t = t;
  // Stan's improvement for antithetic chains: the last even lag counts too.
  if (rho_even > 0) rho_hat[max_t] = rho_even;
  // Geyer's initial monotone sequence: no pair sum above the previous one.
  for (t = 2; t + 2 <= max_t; t += 2) {
    if (rho_hat[t] + rho_hat[t + 1] > rho_hat[t - 2] + rho_hat[t - 1]) {
      rho_hat[t] = rho_hat[t + 1] = (rho_hat[t - 2] + rho_hat[t - 1]) / 2;
    }
  }
  double tau = -1 + rho_hat[max_t];
  for (t = 0; t < max_t; ++t) tau += 2 * rho_hat[t];
  const double total = static_cast<double>(m * h);
  tau = std::max(tau, 1 / std::log10(total));
  return total / tau;
}

}  // namespace

std::optional<double> SplitRHat(const ChainTraces& traces) {
  if (traces.size() < 2) return std::nullopt;
  const Halves halves = SplitChains(traces);
  if (halves.starts.empty() || halves.length < 2) return std::nullopt;
  const size_t h = halves.length;
  const size_t m = halves.starts.size();
  std::vector<double> means(m);
  double within = 0;
  for (size_t j = 0; j < m; ++j) {
    means[j] = Mean(halves.starts[j], h);
    within += Variance(halves.starts[j], h, means[j]) / static_cast<double>(m);
  }
  if (!(within > 0)) return std::nullopt;
  const double between_over_h =
      Variance(means.data(), m, Mean(means.data(), m));
  const double var_plus =
      within * static_cast<double>(h - 1) / h + between_over_h;
  return std::sqrt(var_plus / within);
}

std::optional<double> EffectiveSampleSize(const ChainTraces& traces) {
  const Halves halves = SplitChains(traces);
  if (halves.starts.empty() || 2 * halves.length < kLlcMinEssDraws) {
    return std::nullopt;
  }
  return EssOfSequences(halves.starts, halves.length);
}

std::optional<RiseTest> StillRising(const std::vector<double>& trace) {
  const size_t half = trace.size() / 2;
  const size_t part = half / 2;
  if (part < static_cast<size_t>(kLlcMinEssDraws)) return std::nullopt;
  const std::vector<double> early(trace.end() - half,
                                  trace.end() - half + part);
  const std::vector<double> late(trace.end() - part, trace.end());
  double mean[2], se_squared[2];
  int index = 0;
  for (const auto* values : {&early, &late}) {
    for (double v : *values) {
      if (!std::isfinite(v)) return std::nullopt;
    }
    mean[index] = Mean(values->data(), part);
    const double variance = Variance(values->data(), part, mean[index]);
    const std::optional<double> ess = EffectiveSampleSize({*values});
    se_squared[index] = ess ? variance / *ess : 0;
    ++index;
  }
  const double se = std::sqrt(se_squared[0] + se_squared[1]);
  if (!(se > 0)) return std::nullopt;
  RiseTest test;
  test.z = (mean[1] - mean[0]) / se;
  test.rising = test.z > kLlcRiseZThreshold;
  return test;
}

DownsampledTrace Downsample(const std::vector<double>& trace, int cap) {
  const size_t n = trace.size();
  const size_t limit = static_cast<size_t>(std::max(cap, 1));
  DownsampledTrace out;
  out.stride = static_cast<int>(std::max<size_t>(1, (n + limit - 1) / limit));
  for (size_t i = 0; i < n; i += out.stride) out.values.push_back(trace[i]);
  return out;
}

std::vector<double> RunningMeans(const std::vector<double>& values) {
  std::vector<double> means;
  means.reserve(values.size());
  double sum = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    sum += values[i];
    means.push_back(sum / static_cast<double>(i + 1));
  }
  return means;
}

std::vector<double> LlcRunningMeans(const std::vector<double>& losses,
                                    double n_beta, double initial_loss) {
  std::vector<double> llcs = RunningMeans(losses);
  for (double& v : llcs) v = n_beta * (v - initial_loss);
  return llcs;
}

LlcChainSummary SummarizeChains(const std::vector<double>& chain_llcs) {
  LlcChainSummary summary;
  const size_t n = chain_llcs.size();
  if (n == 0) return summary;
  summary.mean = Mean(chain_llcs.data(), n);
  if (n < 2) return summary;
  summary.std = std::sqrt(Variance(chain_llcs.data(), n, summary.mean));
  summary.standard_error = summary.std / std::sqrt(static_cast<double>(n));
  return summary;
}

std::optional<double> EssStandardError(const ChainTraces& loss_traces,
                                       double n_beta) {
  const std::optional<double> ess = EffectiveSampleSize(loss_traces);
  if (!ess) return std::nullopt;
  size_t n = loss_traces.front().size();
  for (const auto& trace : loss_traces) n = std::min(n, trace.size());
  std::vector<double> pooled;
  for (const auto& trace : loss_traces) {
    pooled.insert(pooled.end(), trace.begin(), trace.begin() + n);
  }
  const double variance = Variance(pooled.data(), pooled.size(),
                                   Mean(pooled.data(), pooled.size()));
  return n_beta * std::sqrt(variance / *ess);
}

double LlcStandardError(const LlcChainSummary& summary,
                        std::optional<double> ess_standard_error) {
  return std::max(summary.standard_error, ess_standard_error.value_or(0));
}

std::vector<std::string> LlcWarnings(const LlcResult& result) {
  std::vector<std::string> warnings;
  if (result.llc_mean < 0) {
    warnings.push_back(absl::StrFormat(
        "lambda_hat is negative (%.4g): the chains' mean loss is below "
        "L(w*) = %.6g, so w* is not a local minimum of the loss (train "
        "further, or raise the localization to keep the chains near w*).",
        result.llc_mean, result.initial_loss));
  }
  std::vector<std::string> diverged;
  std::vector<int> rising;
  std::vector<std::string> rise_z;
  for (size_t i = 0; i < result.chains.size(); ++i) {
    const LlcChain& chain = result.chains[i];
    if (chain.diverged) {
      diverged.push_back(
          absl::StrFormat("chain %d at step %d", i, chain.divergence_step));
    }
    if (chain.still_rising) {
      rising.push_back(static_cast<int>(i));
      rise_z.push_back(absl::StrFormat("%.2f", chain.rise_z_score));
    }
  }
  if (!diverged.empty()) {
    warnings.push_back(absl::StrFormat(
        "%d of %d chains diverged (%s; threshold loss %.6g); lambda_hat is "
        "over the other %d: lower the step size.",
        diverged.size(), result.chains.size(), absl::StrJoin(diverged, ", "),
        result.divergence_threshold, result.chains.size() - diverged.size()));
  }
  if (result.r_hat && *result.r_hat > kLlcMaxRHat) {
    warnings.push_back(absl::StrFormat(
        "split-R-hat of the loss traces is %.3f > %.2f: the chains have not "
        "mixed (run more draws, or calibrate the step size).",
        *result.r_hat, kLlcMaxRHat));
  }
  if (!rising.empty()) {
    warnings.push_back(absl::StrFormat(
        "chain%s %s still rise%s over the last half of the trace (z = %s > "
        "%g): lambda_hat is not at equilibrium yet (lengthen the burn-in).",
        rising.size() > 1 ? "s" : "", absl::StrJoin(rising, ", "),
        rising.size() > 1 ? "" : "s", absl::StrJoin(rise_z, ", "),
        kLlcRiseZThreshold));
  }
  if (result.acceptance_rate &&
      *result.acceptance_rate < kLlcMinMalaAcceptance) {
    warnings.push_back(absl::StrFormat(
        "MALA accepted %.1f%% of its proposals, below %.0f%%: the chains "
        "stick; lower the step size.",
        100 * *result.acceptance_rate, 100 * kLlcMinMalaAcceptance));
  }
  return warnings;
}

}  // namespace curvd::core
