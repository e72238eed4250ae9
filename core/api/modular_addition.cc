#include "core/api/modular_addition.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "core/api/uri_query.h"

namespace curvd::core {
namespace {

constexpr uint64_t kGamma = 0x9E3779B97F4A7C15ull;

// splitmix64's output function (Steele, Lea and Flood 2014).
uint64_t Mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The shortest "%.Ng" that reads back as `value`, so that the canonical
// parameters name the same split as the URI did.
std::string RoundTrip(double value) {
  for (int digits = 1; digits < 17; ++digits) {
    std::string text = absl::StrFormat("%.*g", digits, value);
    double back = 0;
    if (absl::SimpleAtod(text, &back) && back == value) return text;
  }
  return absl::StrFormat("%.17g", value);
}

}  // namespace

absl::StatusOr<ModularAdditionSpec> TakeModularAdditionParams(
    std::map<std::string, std::string>& query) {
  ModularAdditionSpec spec;
  CURVD_ASSIGN_OR_RETURN(spec.p,
                         TakeInt(query, "p", 2, kMaxModularAdditionP, -1));
  if (spec.p < 0) {
    return absl::InvalidArgumentError(
        "builtin modular_addition needs the modulus p=, e.g. "
        "builtin://"
        "modular_addition?p=97&train_fraction=0.3&seed=0&split=train");
  }
  CURVD_ASSIGN_OR_RETURN(spec.train_fraction,
                         TakeNumberAbove(query, "train_fraction", 0, 1, 0.3));
  CURVD_ASSIGN_OR_RETURN(spec.seed, TakeUint64(query, "seed", 0));
  CURVD_ASSIGN_OR_RETURN(const std::string split,
                         TakeChoice(query, "split", {"train", "test"}, "train"));
  spec.train = split == "train";
  if (ModularAdditionSplitSize(spec) == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "parameter train_fraction=", RoundTrip(spec.train_fraction),
        " leaves the ", spec.train ? "train" : "test", " split of p=", spec.p,
        " empty"));
  }
  return spec;
}

std::map<std::string, std::string> ModularAdditionParams(
    const ModularAdditionSpec& spec) {
  return {{"p", absl::StrCat(spec.p)},
          {"seed", absl::StrCat(spec.seed)},
          {"split", spec.train ? "train" : "test"},
          {"train_fraction", RoundTrip(spec.train_fraction)}};
}

int64_t ModularAdditionSplitSize(const ModularAdditionSpec& spec) {
  const int64_t pairs = spec.p * spec.p;
  const int64_t train = std::min(
      pairs, static_cast<int64_t>(
                 std::floor(spec.train_fraction * static_cast<double>(pairs))));
  return spec.train ? train : pairs - train;
}

std::vector<int64_t> ModularAdditionPairs(const ModularAdditionSpec& spec) {
  const int64_t pairs = spec.p * spec.p;
  std::vector<int64_t> order(pairs);
  std::iota(order.begin(), order.end(), int64_t{0});
  uint64_t draw = 0;
  for (int64_t i = pairs - 1; i >= 1; --i) {
    const uint64_t word = Mix(spec.seed + (++draw) * kGamma);
    std::swap(order[i], order[word % static_cast<uint64_t>(i + 1)]);
  }
  const int64_t train = ModularAdditionSplitSize(
      {spec.p, spec.train_fraction, spec.seed, /*train=*/true});
  if (spec.train) {
    order.resize(train);
  } else {
    order.erase(order.begin(), order.begin() + train);
  }
  return order;
}

}  // namespace curvd::core
