// RecommendCalibrationCell (llc_calibration.h): the pass criteria per cell,
// the plateau per (localization, n_beta) line, the choice among plateaus.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/measurements/llc_calibration.h"

namespace curvd::core {
namespace {

// Two cells agree when their lambda_hat differ by at most this many combined
// standard errors.
constexpr double kPlateauStandardErrors = 2;

// A cell fails when more than 1 / this of its chains are still rising.
constexpr size_t kRisingShareDenominator = 4;

// Why `cell` fails the pass criteria, "; "-joined; empty when it passes.
std::string PassFailures(const LlcCalibrationCell& cell) {
  const LlcResult& r = cell.result;
  std::vector<std::string> why;
  if (r.chains_diverged > 0) {
    why.push_back(absl::StrFormat("%d chains diverged", r.chains_diverged));
  }
  // With every chain diverged (or none recorded) lambda_hat and the
  // diagnostics mean nothing.
  if (static_cast<size_t>(r.chains_diverged) < r.chains.size()) {
    if (!(r.llc_mean > 0)) {
      why.push_back(absl::StrFormat("lambda_hat %.4g <= 0", r.llc_mean));
    }
    if (r.r_hat && *r.r_hat > kLlcMaxRHat) {
      why.push_back(
          absl::StrFormat("R-hat %.3g > %.3g", *r.r_hat, kLlcMaxRHat));
    }
    std::vector<size_t> rising;
    for (size_t c = 0; c < r.chains.size(); ++c) {
      if (r.chains[c].still_rising) rising.push_back(c);
    }
    // One chain in a few rises by chance (z > 2 is about 2-5 % per chain on
    // flat traces, llc_diagnostics.h); a transient that the burn-in did not
    // cover shows in many, as every chain starts at w*.
    if (rising.size() * kRisingShareDenominator > r.chains.size()) {
      why.push_back(absl::StrFormat("chain%s %s still rising",
                                    rising.size() > 1 ? "s" : "",
                                    absl::StrJoin(rising, ", ")));
    }
  }
  return absl::StrJoin(why, "; ");
}

double CombinedStandardError(const LlcResult& a, const LlcResult& b) {
  return std::hypot(a.llc_standard_error, b.llc_standard_error);
}

bool Agree(const LlcResult& a, const LlcResult& b) {
  return std::abs(a.llc_mean - b.llc_mean) <=
         kPlateauStandardErrors * CombinedStandardError(a, b);
}

// Why a passing cell `i` is not on a plateau, compared with its neighbour `j`
// on the line (the next smaller step size, or the next larger one for the
// smallest).
std::string NoAgreement(const std::vector<LlcCalibrationCell>& cells,
                        const std::vector<bool>& passes, int i, int j) {
  if (!passes[j]) {
    return absl::StrFormat("passed, but the cell at step size %g was rejected",
                           cells[j].step_size);
  }
  const LlcResult& a = cells[i].result;
  const LlcResult& b = cells[j].result;
  return absl::StrFormat(
      "passed, but lambda_hat %.4g differs from %.4g at step size %g by %.3g "
      "> %g combined standard errors (%.3g)",
      a.llc_mean, b.llc_mean, cells[j].step_size,
      std::abs(a.llc_mean - b.llc_mean), kPlateauStandardErrors,
      kPlateauStandardErrors * CombinedStandardError(a, b));
}

// The runs of one line (cell indices in step size order): maximal stretches
// of two or more consecutive cells, each passing and agreeing with the one
// before it, as [first, last] positions in the line.
std::vector<std::pair<size_t, size_t>> AgreeingRuns(
    const std::vector<LlcCalibrationCell>& cells,
    const std::vector<bool>& passes, const std::vector<int>& line) {
  std::vector<std::pair<size_t, size_t>> runs;
  for (size_t k = 1; k < line.size(); ++k) {
    const int i = line[k];
    const int prev = line[k - 1];
    if (!passes[i] || !passes[prev] ||
        !Agree(cells[i].result, cells[prev].result)) {
      continue;
    }
    if (!runs.empty() && runs.back().second == k - 1) {
      runs.back().second = k;
    } else {
      runs.emplace_back(k - 1, k);
    }
  }
  return runs;
}

// The better of two plateau cells: the larger step size, then the smaller
// localization, then the smaller n_beta.
bool Better(const LlcCalibrationCell& a, const LlcCalibrationCell& b) {
  return std::make_tuple(-a.step_size, a.localization, a.n_beta) <
         std::make_tuple(-b.step_size, b.localization, b.n_beta);
}

std::string LostTo(const LlcCalibrationCell& cell,
                   const LlcCalibrationCell& best) {
  if (cell.step_size < best.step_size) {
    return absl::StrFormat(
        "on its line's plateau, but the recommended cell's step size %g is "
        "larger",
        best.step_size);
  }
  if (cell.localization > best.localization) {
    return absl::StrFormat(
        "on its line's plateau at the same step size, but the recommended "
        "cell's localization %g is smaller",
        best.localization);
  }
  return absl::StrFormat(
      "on its line's plateau at the same step size and localization, but the "
      "recommended cell's n_beta %g is smaller",
      best.n_beta);
}

constexpr char kRule[] =
    "a cell passes with no diverged chain, lambda_hat > 0, R-hat <= %.3g (when "
    "known) and no chain still rising; on each (localization, n_beta) line the "
    "plateau is the first run of passing cells at consecutive step sizes, each "
    "lambda_hat within %g sqrt(se_a^2 + se_b^2) of the one before; the "
    "largest step size on a plateau wins, ties to the smallest localization, "
    "then the smallest n_beta";

}  // namespace

void RecommendCalibrationCell(LlcCalibrationResult& result) {
  std::vector<LlcCalibrationCell>& cells = result.cells;
  const int n = static_cast<int>(cells.size());
  result.recommended = -1;
  std::vector<bool> passes(n);
  int passed = 0;
  for (int i = 0; i < n; ++i) {
    cells[i].rejection = PassFailures(cells[i]);
    passes[i] = cells[i].rejection.empty();
    passed += passes[i];
  }

  std::map<std::pair<double, double>, std::vector<int>> lines;
  for (int i = 0; i < n; ++i) {
    lines[{cells[i].localization, cells[i].n_beta}].push_back(i);
  }
  std::vector<bool> on_plateau(n, false);
  for (auto& [key, line] : lines) {
    std::stable_sort(line.begin(), line.end(), [&](int a, int b) {
      return cells[a].step_size < cells[b].step_size;
    });
    const auto runs = AgreeingRuns(cells, passes, line);
    std::vector<int> run_of(line.size(), -1);
    for (size_t r = 0; r < runs.size(); ++r) {
      for (size_t k = runs[r].first; k <= runs[r].second; ++k) {
        run_of[k] = static_cast<int>(r);
      }
    }
    for (size_t k = 0; k < line.size(); ++k) {
      const int i = line[k];
      if (!passes[i]) continue;
      if (run_of[k] == 0) {
        on_plateau[i] = true;
      } else if (run_of[k] > 0) {
        cells[i].rejection = absl::StrFormat(
            "passed and agrees with its neighbours, but on a second run above "
            "a jump past its line's plateau (step sizes %g to %g)",
            cells[line[runs[0].first]].step_size,
            cells[line[runs[0].second]].step_size);
      } else if (line.size() == 1) {
        cells[i].rejection =
            "passed, but its line has a single step size: no plateau";
      } else {
        cells[i].rejection =
            NoAgreement(cells, passes, i, line[k > 0 ? k - 1 : 1]);
      }
    }
  }

  for (int i = 0; i < n; ++i) {
    if (on_plateau[i] && (result.recommended < 0 ||
                          Better(cells[i], cells[result.recommended]))) {
      result.recommended = i;
    }
  }
  const std::string rule =
      absl::StrFormat(kRule, kLlcMaxRHat, kPlateauStandardErrors);
  if (result.recommended < 0) {
    result.reason = absl::StrFormat(
        "no cell is on a plateau (%d of %d cells passed): %s", passed, n, rule);
    return;
  }
  const LlcCalibrationCell& best = cells[result.recommended];
  for (int i = 0; i < n; ++i) {
    if (on_plateau[i] && i != result.recommended) {
      cells[i].rejection = LostTo(cells[i], best);
    }
  }
  const auto& line = lines[{best.localization, best.n_beta}];
  const int below =
      *(std::find(line.begin(), line.end(), result.recommended) - 1);
  const LlcResult& a = best.result;
  const LlcResult& b = cells[below].result;
  result.reason = absl::StrFormat(
      "step size %g, localization %g, n_beta %g: lambda_hat %.4g +- %.3g "
      "agrees with %.4g +- %.3g at step size %g by %.3g <= %.3g (%d of %d "
      "cells passed): %s",
      best.step_size, best.localization, best.n_beta, a.llc_mean,
      a.llc_standard_error, b.llc_mean, b.llc_standard_error,
      cells[below].step_size, std::abs(a.llc_mean - b.llc_mean),
      kPlateauStandardErrors * CombinedStandardError(a, b), passed, n, rule);
}

}  // namespace curvd::core
