#include "server/bearer_tokens.h"

#include <fstream>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/token_auth_processor.h"
#include "test_dirs.h"

namespace curvd::server {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kTokenA[] = "aaaaaaaaaaaaaaaaaaaaaaaa";
constexpr char kTokenB[] = "bbbbbbbbbbbbbbbbbbbbbbbb";

TEST(BearerTokensTest, FindsTheNameOfEachTokenAndNothingElse) {
  auto tokens =
      BearerTokens::Parse(absl::StrCat("# trainers\n\ntrainer-a ", kTokenA,
                                       "\n  ci\t", kTokenB, "  \n"),
                          "tokens");
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  EXPECT_EQ(tokens->size(), 2u);
  EXPECT_EQ(tokens->Find(kTokenA), "trainer-a");
  EXPECT_EQ(tokens->Find(kTokenB), "ci");
  EXPECT_EQ(tokens->Find(""), std::nullopt);
  EXPECT_EQ(tokens->Find("trainer-a"), std::nullopt);
  EXPECT_EQ(tokens->Find(std::string(kTokenA) + "a"), std::nullopt);
  EXPECT_EQ(tokens->Find(std::string(kTokenA).substr(1)), std::nullopt);
}

TEST(BearerTokensTest, RefusesMalformedFilesNamingTheLineNotTheToken) {
  const struct {
    std::string text;
    std::string message;
  } cases[] = {
      {"lonely\n", "tokens:1: expected \"NAME TOKEN\", found 1 fields"},
      {absl::StrCat("a ", kTokenA, " extra\n"), "found 3 fields"},
      {"a short\n", "tokens:1: the token of a is shorter than 16 bytes"},
      {absl::StrCat(std::string(65, 'n'), " ", kTokenA), "longer than 64"},
      {absl::StrCat("a ", kTokenA, "\n#\na ", kTokenB), "tokens:3: the name a"},
      {absl::StrCat("a ", kTokenA, "\nb ", kTokenA), "another name's token"},
      {"# nothing\n\n", "lists no"},
  };
  for (const auto& c : cases) {
    auto tokens = BearerTokens::Parse(c.text, "tokens");
    ASSERT_EQ(tokens.status().code(), absl::StatusCode::kInvalidArgument)
        << c.text;
    EXPECT_THAT(std::string(tokens.status().message()), HasSubstr(c.message));
    EXPECT_THAT(std::string(tokens.status().message()),
                Not(HasSubstr(kTokenA)));
  }
}

TEST(BearerTokensTest, LoadNamesAMissingFile) {
  auto tokens = BearerTokens::Load("/no/such/tokens");
  EXPECT_EQ(tokens.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(tokens.status().message()),
              HasSubstr("/no/such/tokens"));
}

TEST(TokenAuthProcessorTest, ExemptsHealthAndReflectionOnly) {
  EXPECT_TRUE(IsUnauthenticatedMethod("/grpc.health.v1.Health/Check"));
  EXPECT_TRUE(IsUnauthenticatedMethod("/grpc.health.v1.Health/Watch"));
  EXPECT_TRUE(IsUnauthenticatedMethod(
      "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"));
  EXPECT_TRUE(IsUnauthenticatedMethod(
      "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"));
  EXPECT_FALSE(IsUnauthenticatedMethod("/curvd.v1.Curvd/ListRuns"));
  EXPECT_FALSE(IsUnauthenticatedMethod("/grpc.health.v1.HealthX/Check"));
  EXPECT_FALSE(IsUnauthenticatedMethod(""));
}

TEST(TokenAuthProcessorTest, ReloadKeepsTheOldTokensWhenTheFileIsBroken) {
  const std::string path = testing::MakeTempDir() + "/tokens";
  std::ofstream(path) << "a " << kTokenA << "\n";
  auto processor = TokenAuthProcessor::Load(path);
  ASSERT_TRUE(processor.ok()) << processor.status();
  std::ofstream(path) << "a " << kTokenA << "\nb " << kTokenB << "\n";
  ASSERT_TRUE((*processor)->Reload().ok());
  EXPECT_EQ((*processor)->size(), 2u);
  std::ofstream(path) << "broken\n";
  EXPECT_EQ((*processor)->Reload().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*processor)->size(), 2u);
}

}  // namespace
}  // namespace curvd::server
