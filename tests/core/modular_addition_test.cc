#include "core/api/modular_addition.h"

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "core/api/sources.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace curvd::core {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

ModularAdditionSpec Split(int64_t p, double fraction, uint64_t seed,
                          bool train) {
  ModularAdditionSpec spec;
  spec.p = p;
  spec.train_fraction = fraction;
  spec.seed = seed;
  spec.train = train;
  return spec;
}

// The rule of the header, computed independently in Python (splitmix64 stream
// of the seed, Fisher-Yates from the last position down).
TEST(ModularAdditionTest, KnownAnswerSplits) {
  EXPECT_THAT(ModularAdditionPairs(Split(3, 0.5, 0, true)),
              ElementsAre(1, 0, 3, 5));
  EXPECT_THAT(ModularAdditionPairs(Split(3, 0.5, 0, false)),
              ElementsAre(6, 8, 2, 4, 7));
  EXPECT_THAT(ModularAdditionPairs(Split(3, 0.5, 7, true)),
              ElementsAre(2, 6, 5, 1));
  const std::vector<int64_t> grokking =
      ModularAdditionPairs(Split(97, 0.3, 0, true));
  ASSERT_EQ(grokking.size(), 2822u);  // floor(0.3 * 97^2), as bench's W3
  EXPECT_THAT(std::vector<int64_t>(grokking.begin(), grokking.begin() + 8),
              ElementsAre(7166, 1649, 1340, 3525, 8079, 2970, 732, 4225));
}

TEST(ModularAdditionTest, SplitsAreDisjointAndCoverEveryPair) {
  for (double fraction : {0.3, 0.5, 0.99}) {
    const ModularAdditionSpec train = Split(97, fraction, 5, true);
    const ModularAdditionSpec test = Split(97, fraction, 5, false);
    const std::vector<int64_t> a = ModularAdditionPairs(train);
    const std::vector<int64_t> b = ModularAdditionPairs(test);
    EXPECT_EQ(static_cast<int64_t>(a.size()), ModularAdditionSplitSize(train));
    EXPECT_EQ(static_cast<int64_t>(b.size()), ModularAdditionSplitSize(test));
    std::set<int64_t> all(a.begin(), a.end());
    all.insert(b.begin(), b.end());
    EXPECT_EQ(all.size(), 97u * 97u) << fraction;  // disjoint, and all of them
    EXPECT_EQ(*all.begin(), 0);
    EXPECT_EQ(*all.rbegin(), 97 * 97 - 1);
  }
  EXPECT_EQ(ModularAdditionPairs(Split(5, 1.0, 0, true)).size(), 25u);
}

TEST(ModularAdditionTest, SameParametersSameSplitOtherSeedAnother) {
  EXPECT_EQ(ModularAdditionPairs(Split(31, 0.3, 2, true)),
            ModularAdditionPairs(Split(31, 0.3, 2, true)));
  EXPECT_NE(ModularAdditionPairs(Split(31, 0.3, 2, true)),
            ModularAdditionPairs(Split(31, 0.3, 3, true)));
}

TEST(ModularAdditionTest, ParamsDefaultAndRoundTrip) {
  std::map<std::string, std::string> query = {{"p", "97"}, {"limit", "4"}};
  absl::StatusOr<ModularAdditionSpec> spec = TakeModularAdditionParams(query);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->p, 97);
  EXPECT_EQ(spec->train_fraction, 0.3);
  EXPECT_EQ(spec->seed, 0u);
  EXPECT_TRUE(spec->train);
  // Parameters it does not know are left for the caller.
  EXPECT_THAT(query, ElementsAre(std::make_pair("limit", "4")));

  std::map<std::string, std::string> canonical =
      ModularAdditionParams(Split(13, 0.1 + 0.2, 9, false));
  EXPECT_EQ(canonical["train_fraction"], "0.30000000000000004");
  absl::StatusOr<ModularAdditionSpec> back =
      TakeModularAdditionParams(canonical);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->train_fraction, 0.1 + 0.2);
  EXPECT_FALSE(back->train);
  EXPECT_EQ(back->seed, 9u);
  EXPECT_TRUE(canonical.empty());
}

void ExpectInvalid(const std::string& uri, const std::string& part) {
  absl::StatusOr<ShardSpec> spec = ParseShardUri(uri, {});
  ASSERT_FALSE(spec.ok()) << uri;
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument) << uri;
  EXPECT_THAT(std::string(spec.status().message()), HasSubstr(part)) << uri;
}

TEST(ModularAdditionTest, BadParametersAreInvalidArgumentNamingTheField) {
  const std::string base = "builtin://modular_addition?";
  ExpectInvalid(base + "p=1", "parameter p='1'");
  ExpectInvalid(base + "p=x", "parameter p='x'");
  ExpectInvalid(base + "p=4000", "parameter p='4000'");
  ExpectInvalid(base + "train_fraction=0.3", "needs the modulus p=");
  ExpectInvalid(base + "p=97&train_fraction=0", "parameter train_fraction='0'");
  ExpectInvalid(base + "p=97&train_fraction=1.5",
                "parameter train_fraction='1.5'");
  ExpectInvalid(base + "p=97&train_fraction=-0.1",
                "parameter train_fraction='-0.1'");
  ExpectInvalid(base + "p=97&train_fraction=nan",
                "parameter train_fraction='nan'");
  ExpectInvalid(base + "p=2&train_fraction=0.1", "train split of p=2 empty");
  ExpectInvalid(base + "p=97&train_fraction=1&split=test",
                "test split of p=97 empty");
  ExpectInvalid(base + "p=97&split=validation", "parameter split='validation'");
  ExpectInvalid(base + "p=97&seed=-1", "parameter seed='-1'");
  ExpectInvalid(base + "p=97&modulus=3", "unknown query parameter 'modulus'");
  // floor(0.3 * 9) = 2 train pairs, so the test split has 7.
  ExpectInvalid(base + "p=3&split=test&offset=7", "parameter offset='7'");
}

TEST(ModularAdditionTest, UriIsCanonicalisedForTheCache) {
  absl::StatusOr<ShardSpec> spec = ParseShardUri(
      "builtin://modular_addition?split=test&seed=3&p=97&limit=10", {});
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->kind, ShardSpec::Kind::kBuiltin);
  EXPECT_EQ(spec->generator, "modular_addition");
  EXPECT_EQ(spec->limit, 10);
  EXPECT_EQ(spec->cache_key,
            "builtin://"
            "modular_addition?limit=10&p=97&seed=3&split=test&train_fraction="
            "0.3");
}

}  // namespace
}  // namespace curvd::core
