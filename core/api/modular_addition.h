// The builtin://modular_addition shard of the grokking studies, torch-free: its
// parameters and which (a, b) pairs each split holds, so that the URI parser
// refuses bad parameters and the generator (core/data/shard.cc) makes tensors
// from the same pairs. A trainer that wants the server's data exactly can
// compute the split itself from the rule below.
//
// The p² pairs are numbered i = a·p + b (a, b in [0, p)). They are shuffled by
// Fisher–Yates driven by the splitmix64 stream of `seed`: for i = p²−1 down to
// 1, with k = p²−i (the k-th draw, k = 1, 2, ...), the k-th word
// Mix(seed + k·0x9E3779B97F4A7C15) (splitmix64's output function, the stream of
// core/objective/linear_operator.h) gives j = word mod (i + 1), and positions i
// and j swap. The train split is the first floor(train_fraction·p²) entries of
// the shuffled order, the test split the rest, each in shuffled order (so a
// limit=N slice is a random subset). The modulo's bias is below p²/2^64.
// The same parameters give the same pairs on every machine; train and test are
// disjoint and together hold all p² pairs.
#ifndef CURVD_CORE_API_MODULAR_ADDITION_H_
#define CURVD_CORE_API_MODULAR_ADDITION_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace curvd::core {

inline constexpr char kModularAdditionGenerator[] = "modular_addition";

struct ModularAdditionSpec {
  int64_t p = 0;                // the modulus; '=' is token id p
  double train_fraction = 0.3;  // in (0, 1]
  uint64_t seed = 0;
  bool train = true;  // split=train (the default) or split=test
};

// The largest modulus: p² pairs must stay within the generated-shard bound of
// ten million samples.
inline constexpr int64_t kMaxModularAdditionP = 3162;

// Parses the generator's parameters, removing each one it takes from `query`
// (the rest are left for the caller: limit, offset, or unknown keys): p
// (required, an integer in [2, kMaxModularAdditionP]), train_fraction (a number
// in (0, 1], default 0.3), seed (an unsigned 64-bit integer, default 0) and
// split (train or test, default train). InvalidArgument naming the parameter
// when one is malformed or out of range, when p is missing, and when the
// requested split is empty (train_fraction·p² < 1 for train, train_fraction = 1
// for test).
absl::StatusOr<ModularAdditionSpec> TakeModularAdditionParams(
    std::map<std::string, std::string>& query);

// The parameters in canonical form (p, seed, split, train_fraction printed so
// that they parse back to the same values), for cache keys and
// ShardSpec.params; TakeModularAdditionParams reads them back.
std::map<std::string, std::string> ModularAdditionParams(
    const ModularAdditionSpec& spec);

// Samples in the split: floor(train_fraction·p²) for train, the rest for test.
int64_t ModularAdditionSplitSize(const ModularAdditionSpec& spec);

// The pair numbers i = a·p + b of the split, in the order the shard holds them
// (see the rule above). Its inputs are rows (a, b, p) and its targets
// (a + b) mod p.
std::vector<int64_t> ModularAdditionPairs(const ModularAdditionSpec& spec);

}  // namespace curvd::core

#endif  // CURVD_CORE_API_MODULAR_ADDITION_H_
