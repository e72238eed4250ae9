#include "client/curvctl_commands.h"

#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace curvd::client {
namespace {

using ::testing::HasSubstr;
namespace v1 = ::curvd::v1;

const CommandDef& Command(const std::string& name) {
  for (const CommandDef& command : CurvctlCommands()) {
    if (command.name == name) return command;
  }
  ADD_FAILURE() << "no command " << name;
  static const CommandDef* none = new CommandDef;
  return *none;
}

struct Outcome {
  int code;
  std::string out;
  std::string err;
};

Outcome RunCli(const std::vector<std::string>& args) {
  std::ostringstream out, err;
  int code = RunCurvctl(args, out, err);
  return {code, out.str(), err.str()};
}

TEST(CurvctlCommandsTest, HasTheDocumentedSubcommands) {
  std::vector<std::string> names;
  for (const CommandDef& command : CurvctlCommands()) {
    names.push_back(command.name);
  }
  EXPECT_THAT(names, ::testing::UnorderedElementsAre("create-run", "upload",
                                                     "measure", "watch", "runs",
                                                     "results", "get"));
}

TEST(CurvctlCommandsTest, HelpDocumentsEveryFlag) {
  for (const CommandDef& command : CurvctlCommands()) {
    Outcome help = RunCli({command.name, "--help"});
    EXPECT_EQ(help.code, kExitOk) << command.name;
    for (const FlagDef& flag : command.flags) {
      EXPECT_FALSE(flag.help.empty()) << command.name << " --" << flag.name;
      EXPECT_THAT(help.out, HasSubstr("--" + flag.name + " (")) << command.name;
    }
  }
}

TEST(CurvctlCommandsTest, MeasureHasTheScriptingFlags) {
  const CommandDef& measure = Command("measure");
  for (const char* name :
       {"server", "run", "step", "model", "zoo", "weights", "shard", "loss",
        "measure", "top_k", "probes", "precision", "json"}) {
    bool found = false;
    for (const FlagDef& flag : measure.flags) found |= flag.name == name;
    EXPECT_TRUE(found) << "--" << name;
  }
}

TEST(CurvctlCommandsTest, UnknownCommandAndFlagAreUsageErrors) {
  Outcome command = RunCli({"mesure"});
  EXPECT_EQ(command.code, kExitUsage);
  EXPECT_THAT(command.err, HasSubstr("unknown command 'mesure'"));
  Outcome flag = RunCli({"runs", "--jsn"});
  EXPECT_EQ(flag.code, kExitUsage);
  EXPECT_THAT(flag.err, HasSubstr("unknown flag --jsn"));
  EXPECT_EQ(RunCli({}).code, kExitUsage);
}

TEST(CurvctlCommandsTest, MeasureRequiresRunAndShard) {
  Outcome outcome = RunCli({"measure", "--zoo=mlp:4,2"});
  EXPECT_EQ(outcome.code, kExitUsage);
  EXPECT_THAT(outcome.err, HasSubstr("--run and --shard are required"));
}

TEST(CurvctlCommandsTest, BadKindIsAUsageErrorBeforeAnyConnection) {
  Outcome outcome = RunCli({"measure", "--server=127.0.0.1:1", "--run=r",
                            "--shard=builtin://gaussian_regression",
                            "--measure=sharpness,curvature"});
  EXPECT_EQ(outcome.code, kExitUsage);
  EXPECT_THAT(outcome.err, HasSubstr("'curvature' is unknown"));
}

TEST(CurvctlCommandsTest, UnreachableServerIsAnError) {
  // Port 1 on loopback refuses at once: the first call fails UNAVAILABLE.
  Outcome outcome =
      RunCli({"measure", "--server=127.0.0.1:1", "--run=r", "--zoo=mlp:4,2",
              "--shard=builtin://gaussian_regression", "--loss=mse"});
  EXPECT_EQ(outcome.code, kExitError);
  EXPECT_THAT(outcome.err, HasSubstr("UNAVAILABLE"));
}

TEST(MeasurementSpecsFromFlagsTest, OneSpecPerKindWithSharedSettings) {
  auto flags = ParseFlags(
      Command("measure"),
      {"--run=r", "--shard=builtin://gaussian_regression?n=64", "--loss=mse",
       "--measure=sharpness, hessian_trace", "--top_k=5", "--probes=20",
       "--precision=float64", "--seed=9", "--micro_batch=16"});
  ASSERT_TRUE(flags.ok()) << flags.status();
  auto specs = MeasurementSpecsFromFlags(*flags);
  ASSERT_TRUE(specs.ok()) << specs.status();
  ASSERT_EQ(specs->size(), 2u);
  for (const v1::MeasurementSpec& spec : *specs) {
    EXPECT_EQ(spec.shard_uri(), "builtin://gaussian_regression?n=64");
    EXPECT_EQ(spec.loss(), v1::LOSS_FUNCTION_MSE);
    EXPECT_EQ(spec.precision(), v1::PRECISION_FLOAT64);
    EXPECT_EQ(spec.micro_batch_size(), 16);
  }
  ASSERT_TRUE((*specs)[0].has_sharpness());
  EXPECT_EQ((*specs)[0].sharpness().top_k(), 5);
  EXPECT_EQ((*specs)[0].sharpness().seed(), 9u);
  ASSERT_TRUE((*specs)[1].has_hessian_trace());
  EXPECT_EQ((*specs)[1].hessian_trace().min_probes(), 20);
  EXPECT_EQ((*specs)[1].hessian_trace().max_probes(), 20);
  ASSERT_TRUE((*specs)[1].hessian_trace().has_target_relative_error());
  EXPECT_EQ((*specs)[1].hessian_trace().target_relative_error(), 0);
  EXPECT_EQ((*specs)[1].hessian_trace().distribution(),
            v1::PROBE_DISTRIBUTION_RADEMACHER);
}

TEST(MeasurementSpecsFromFlagsTest, AdaptiveTraceLeavesServerDefaults) {
  auto flags = ParseFlags(Command("measure"), {"--measure=hessian_trace",
                                               "--distribution=gaussian"});
  ASSERT_TRUE(flags.ok());
  auto specs = MeasurementSpecsFromFlags(*flags);
  ASSERT_TRUE(specs.ok()) << specs.status();
  EXPECT_EQ((*specs)[0].loss(), v1::LOSS_FUNCTION_CROSS_ENTROPY);
  // Unset, not zero: an explicit 0 is out of range on the server.
  EXPECT_FALSE((*specs)[0].hessian_trace().has_min_probes());
  EXPECT_FALSE((*specs)[0].hessian_trace().has_max_probes());
  EXPECT_FALSE((*specs)[0].hessian_trace().has_target_relative_error());
  EXPECT_EQ((*specs)[0].hessian_trace().distribution(),
            v1::PROBE_DISTRIBUTION_GAUSSIAN);
}

TEST(MeasurementSpecsFromFlagsTest, RejectsUnknownEnums) {
  for (const char* bad :
       {"--loss=hinge", "--precision=float16", "--distribution=cauchy",
        "--measure=", "--measure=llc"}) {
    auto flags =
        ParseFlags(Command("measure"), {"--measure=hessian_trace", bad});
    ASSERT_TRUE(flags.ok()) << bad;
    EXPECT_TRUE(
        absl::IsInvalidArgument(MeasurementSpecsFromFlags(*flags).status()))
        << bad;
  }
}

}  // namespace
}  // namespace curvd::client
