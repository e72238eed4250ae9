#include "client/command_line.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace curvd::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Type = FlagDef::Type;

CommandDef TestCommand() {
  return {"demo",
          "FILE [flags]",
          "A command for tests.",
          {{"name", Type::kString, "default-name", "A string."},
           {"count", Type::kInt, "3", "An integer."},
           {"ratio", Type::kDouble, "0.5", "A number."},
           {"json", Type::kBool, "false", "A switch."}},
          1,
          2};
}

TEST(ParseFlagsTest, DefaultsWhenNotGiven) {
  auto flags = ParseFlags(TestCommand(), {"file"});
  ASSERT_TRUE(flags.ok()) << flags.status();
  EXPECT_EQ(flags->String("name"), "default-name");
  EXPECT_EQ(flags->Int("count"), 3);
  EXPECT_DOUBLE_EQ(flags->Double("ratio"), 0.5);
  EXPECT_FALSE(flags->Bool("json"));
  EXPECT_FALSE(flags->IsSet("count"));
  EXPECT_THAT(flags->positional(), ElementsAre("file"));
}

TEST(ParseFlagsTest, EqualsAndSpaceFormsAndBooleans) {
  auto flags = ParseFlags(TestCommand(), {"--name=x", "--count", "-7", "a",
                                          "--ratio=1e-3", "--json", "b"});
  ASSERT_TRUE(flags.ok()) << flags.status();
  EXPECT_EQ(flags->String("name"), "x");
  EXPECT_EQ(flags->Int("count"), -7);
  EXPECT_DOUBLE_EQ(flags->Double("ratio"), 1e-3);
  EXPECT_TRUE(flags->Bool("json"));
  EXPECT_TRUE(flags->IsSet("count"));
  EXPECT_THAT(flags->positional(), ElementsAre("a", "b"));
}

TEST(ParseFlagsTest, NegatedAndExplicitBooleans) {
  auto negated = ParseFlags(TestCommand(), {"f", "--json", "--nojson"});
  ASSERT_TRUE(negated.ok());
  EXPECT_FALSE(negated->Bool("json"));
  auto explicit_true = ParseFlags(TestCommand(), {"f", "--json=true"});
  ASSERT_TRUE(explicit_true.ok());
  EXPECT_TRUE(explicit_true->Bool("json"));
  EXPECT_FALSE(ParseFlags(TestCommand(), {"f", "--json=maybe"}).ok());
}

TEST(ParseFlagsTest, DoubleDashEndsFlags) {
  auto flags = ParseFlags(TestCommand(), {"--", "--name"});
  ASSERT_TRUE(flags.ok()) << flags.status();
  EXPECT_THAT(flags->positional(), ElementsAre("--name"));
  EXPECT_EQ(flags->String("name"), "default-name");
}

TEST(ParseFlagsTest, UnknownFlagIsNamedWithAHint) {
  auto flags = ParseFlags(TestCommand(), {"f", "--colour=red"});
  ASSERT_FALSE(flags.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(flags.status()));
  EXPECT_THAT(flags.status().message(), HasSubstr("unknown flag --colour"));
  EXPECT_THAT(flags.status().message(), HasSubstr("curvctl demo --help"));
}

TEST(ParseFlagsTest, BadValuesAreRejected) {
  EXPECT_THAT(
      ParseFlags(TestCommand(), {"f", "--count=many"}).status().message(),
      HasSubstr("not an integer"));
  EXPECT_THAT(
      ParseFlags(TestCommand(), {"f", "--ratio=half"}).status().message(),
      HasSubstr("not a number"));
  EXPECT_THAT(ParseFlags(TestCommand(), {"f", "--name"}).status().message(),
              HasSubstr("needs a value"));
}

TEST(ParseFlagsTest, PositionalCountIsChecked) {
  EXPECT_THAT(ParseFlags(TestCommand(), {}).status().message(),
              HasSubstr("takes 1 to 2 argument(s), got 0"));
  EXPECT_THAT(ParseFlags(TestCommand(), {"a", "b", "c"}).status().message(),
              HasSubstr("got 3"));
}

TEST(ParseFlagsTest, HelpStopsParsing) {
  auto flags = ParseFlags(TestCommand(), {"--help", "--unknown"});
  ASSERT_TRUE(flags.ok());
  EXPECT_TRUE(flags->help());
}

TEST(HelpTextTest, DocumentsEveryFlagWithTypeAndDefault) {
  const std::string help = HelpText(TestCommand());
  EXPECT_THAT(help, HasSubstr("usage: curvctl demo FILE [flags]"));
  EXPECT_THAT(help, HasSubstr("--name (string) default: default-name"));
  EXPECT_THAT(help, HasSubstr("--count (int) default: 3"));
  EXPECT_THAT(help, HasSubstr("--ratio (number) default: 0.5"));
  EXPECT_THAT(help, HasSubstr("A switch."));
}

}  // namespace
}  // namespace curvd::client
