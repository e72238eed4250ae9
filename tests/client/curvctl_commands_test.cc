#include "client/curvctl_commands.h"

#include <algorithm>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace curvd::client {
namespace {

using ::testing::Contains;
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
  EXPECT_THAT(names, ::testing::UnorderedElementsAre(
                         "create-run", "upload", "measure", "backfill", "watch",
                         "runs", "results", "get", "export", "delete"));
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

TEST(CurvctlCommandsTest, EveryConnectingCommandTakesTheCredentialFlags) {
  for (const CommandDef& command : CurvctlCommands()) {
    std::vector<std::string> names;
    for (const FlagDef& flag : command.flags) names.push_back(flag.name);
    ASSERT_THAT(names, Contains("server")) << command.name;
    for (const char* name : {"token_file", "tls", "tls_ca", "tls_cert",
                             "tls_key", "tls_server_name"}) {
      EXPECT_EQ(std::count(names.begin(), names.end(), name), 1)
          << command.name << " --" << name;
    }
  }
}

TEST(CurvctlCommandsTest, UnreadableCredentialsFailBeforeAnyCall) {
  Outcome token =
      RunCli({"runs", "--server=127.0.0.1:1", "--token_file=/no/such/token"});
  EXPECT_EQ(token.code, kExitError);
  EXPECT_THAT(token.err, HasSubstr("cannot open /no/such/token"));
  Outcome half = RunCli({"runs", "--server=127.0.0.1:1", "--tls_cert=c.pem"});
  EXPECT_EQ(half.code, kExitError);
  EXPECT_THAT(half.err, HasSubstr("go together"));
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

// --traces is a form of --csv, on measure and results; measure takes one of
// --json and --csv.
TEST(CurvctlCommandsTest, TracesNeedCsv) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"measure", "--server=127.0.0.1:1", "--run=r",
                                 "--shard=builtin://gaussian_regression",
                                 "--measure=llc", "--traces"},
        std::vector<std::string>{"results", "--run=r", "--traces"}}) {
    Outcome alone = RunCli(args);
    EXPECT_EQ(alone.code, kExitUsage) << args[0];
    EXPECT_THAT(alone.err, HasSubstr("--traces is a form of --csv"));
  }
  Outcome both = RunCli({"measure", "--server=127.0.0.1:1", "--run=r",
                         "--shard=builtin://gaussian_regression",
                         "--measure=llc", "--csv", "--json"});
  EXPECT_EQ(both.code, kExitUsage);
  EXPECT_THAT(both.err, HasSubstr("give one of --json, --csv\n"));
}

// --wide is the per-checkpoint CSV: one output form at a time, and its help
// says which measurement fills a row when a kind ran several times.
TEST(CurvctlCommandsTest, ResultsTakesOneOfJsonCsvAndWide) {
  for (const char* other : {"--csv", "--json"}) {
    Outcome both = RunCli({"results", "--run=r", "--wide", other});
    EXPECT_EQ(both.code, kExitUsage) << other;
    EXPECT_THAT(both.err, HasSubstr("give one of --json, --csv and --wide"));
  }
  Outcome help = RunCli({"results", "--help"});
  EXPECT_THAT(help.out, HasSubstr("--wide ("));
  EXPECT_THAT(help.out, HasSubstr("the latest created gives that kind's"));
  EXPECT_THAT(help.out, HasSubstr("train_loss"));
}

// --page_size and --view are checked before any call (the server is
// unreachable here), and documented in the help.
TEST(CurvctlCommandsTest, ListFlagsAreCheckedAndDocumented) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"results", "--server=127.0.0.1:1", "--run=r",
                                 "--page_size=0"},
        std::vector<std::string>{"results", "--server=127.0.0.1:1", "--run=r",
                                 "--page_size=1001"},
        std::vector<std::string>{"runs", "--server=127.0.0.1:1",
                                 "--page_size=-1"}}) {
    Outcome outcome = RunCli(args);
    EXPECT_EQ(outcome.code, kExitUsage) << args.back();
    EXPECT_THAT(outcome.err, HasSubstr("--page_size must be 1 to 1000"));
  }
  Outcome view = RunCli(
      {"results", "--server=127.0.0.1:1", "--run=r", "--view=everything"});
  EXPECT_EQ(view.code, kExitUsage);
  EXPECT_THAT(view.err, HasSubstr("--view must be basic or full"));
  // Valid flags reach the server.
  Outcome valid = RunCli({"results", "--server=127.0.0.1:1", "--run=r",
                          "--view=full", "--page_size=1000"});
  EXPECT_EQ(valid.code, kExitError);
  EXPECT_THAT(valid.err, HasSubstr("UNAVAILABLE"));
  Outcome help = RunCli({"results", "--help"});
  EXPECT_THAT(help.out, HasSubstr("--page_size"));
  EXPECT_THAT(help.out, HasSubstr("--view"));
  EXPECT_THAT(RunCli({"runs", "--help"}).out, HasSubstr("--page_size"));
}

TEST(CurvctlCommandsTest, UnreachableServerIsAnError) {
  // Port 1 on loopback refuses at once: the first call fails UNAVAILABLE.
  Outcome outcome =
      RunCli({"measure", "--server=127.0.0.1:1", "--run=r", "--zoo=mlp:4,2",
              "--shard=builtin://gaussian_regression", "--loss=mse"});
  EXPECT_EQ(outcome.code, kExitError);
  EXPECT_THAT(outcome.err, HasSubstr("UNAVAILABLE"));
}

// backfill takes measure's flags but those of one checkpoint, and checks its
// command line (the step pattern, the directory) before any connection.
TEST(CurvctlCommandsTest, BackfillFlagsAndCommandLine) {
  const CommandDef& backfill = Command("backfill");
  std::vector<std::string> names;
  for (const FlagDef& flag : backfill.flags) names.push_back(flag.name);
  EXPECT_THAT(names, ::testing::IsSupersetOf(
                         {"run", "shard", "measure", "plan", "top_k",
                          "llc_chains", "step_pattern", "json", "csv"}));
  for (const char* absent : {"step", "weights", "train_loss"}) {
    EXPECT_THAT(names, ::testing::Not(::testing::Contains(absent))) << absent;
  }
  Outcome no_shard = RunCli({"backfill", "/nonexistent", "--run=r"});
  EXPECT_EQ(no_shard.code, kExitUsage);
  EXPECT_THAT(no_shard.err, HasSubstr("backfill: --run and --shard"));
  Outcome pattern = RunCli({"backfill", "/nonexistent", "--server=127.0.0.1:1",
                            "--run=r", "--shard=builtin://x",
                            "--step_pattern=[0-9]+"});
  EXPECT_EQ(pattern.code, kExitUsage);
  EXPECT_THAT(pattern.err, HasSubstr("needs exactly one"));
  Outcome directory =
      RunCli({"backfill", "/nonexistent/checkpoints", "--server=127.0.0.1:1",
              "--run=r", "--shard=builtin://x"});
  EXPECT_EQ(directory.code, kExitError);
  EXPECT_THAT(directory.err,
              HasSubstr("cannot list directory /nonexistent/checkpoints"));
  EXPECT_EQ(RunCli({"backfill", "--run=r", "--shard=builtin://x"}).code,
            kExitUsage);  // no DIR
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
        "--measure=", "--measure=lcc"}) {
    auto flags =
        ParseFlags(Command("measure"), {"--measure=hessian_trace", bad});
    ASSERT_TRUE(flags.ok()) << bad;
    EXPECT_TRUE(
        absl::IsInvalidArgument(MeasurementSpecsFromFlags(*flags).status()))
        << bad;
  }
}

TEST(MeasurementSpecsFromFlagsTest, RejectsUnknownLlcEnums) {
  for (const char* bad :
       {"--llc_sampler=hmc", "--llc_n_beta_convention=given",
        "--llc_on_divergence=retry"}) {
    for (const char* kind : {"--measure=llc", "--measure=llc_calibration"}) {
      auto flags = ParseFlags(Command("measure"), {kind, bad});
      ASSERT_TRUE(flags.ok()) << bad;
      const absl::Status status = MeasurementSpecsFromFlags(*flags).status();
      EXPECT_TRUE(absl::IsInvalidArgument(status)) << kind << " " << bad;
      EXPECT_THAT(std::string(status.message()),
                  ::testing::HasSubstr(std::string(bad).substr(
                      0, std::string(bad).find('='))))
          << status;
    }
  }
  auto axis = ParseFlags(Command("measure"), {"--measure=llc_calibration",
                                              "--llc_step_sizes=1e-5,big"});
  ASSERT_TRUE(axis.ok());
  EXPECT_TRUE(
      absl::IsInvalidArgument(MeasurementSpecsFromFlags(*axis).status()));
}

// Every llc flag reaches its field; unset numbers stay unset (the server's
// defaults); a calibration takes the chains' flags into its base and its
// axes as lists.
TEST(MeasurementSpecsFromFlagsTest, LlcFlagsFillTheLlcSpecs) {
  auto flags = ParseFlags(
      Command("measure"),
      {"--measure=llc,llc_calibration", "--llc_sampler=rmsprop_sgld",
       "--llc_step_size=1e-5", "--llc_localization=30", "--llc_n_beta=12",
       "--llc_chains=8", "--llc_draws=50", "--llc_burn_in=5",
       "--llc_steps_between_draws=2", "--llc_batch_size=64",
       "--llc_full_loss_every=10", "--llc_divergence_factor=50",
       "--llc_on_divergence=fail", "--llc_rmsprop_alpha=0.9",
       "--llc_rmsprop_epsilon=1e-6", "--llc_sgnht_diffusion=0.1",
       "--llc_trace_cap=20", "--llc_prior_precision=0.5", "--seed=7",
       "--llc_step_sizes=1e-6, 1e-5", "--llc_localizations=10,100",
       "--llc_n_betas=3"});
  ASSERT_TRUE(flags.ok()) << flags.status();
  auto specs = MeasurementSpecsFromFlags(*flags);
  ASSERT_TRUE(specs.ok()) << specs.status();
  ASSERT_EQ(specs->size(), 2u);
  const v1::LlcSpec& l = (*specs)[0].llc();
  EXPECT_EQ(l.sampler(), v1::LlcSpec::RMSPROP_SGLD);
  EXPECT_EQ(l.step_size(), 1e-5);
  EXPECT_EQ(l.localization(), 30);
  EXPECT_EQ(l.n_beta(), 12);
  EXPECT_EQ(l.chains(), 8);
  EXPECT_EQ(l.draws(), 50);
  EXPECT_EQ(l.burn_in(), 5);
  EXPECT_EQ(l.steps_between_draws(), 2);
  EXPECT_EQ(l.batch_size(), 64);
  EXPECT_EQ(l.full_loss_every(), 10);
  EXPECT_EQ(l.divergence_factor(), 50);
  EXPECT_EQ(l.on_divergence(), v1::LlcSpec::FAIL);
  EXPECT_EQ(l.rmsprop_alpha(), 0.9);
  EXPECT_EQ(l.rmsprop_epsilon(), 1e-6);
  EXPECT_EQ(l.sgnht_diffusion(), 0.1);
  EXPECT_EQ(l.trace_cap(), 20);
  EXPECT_EQ(l.prior_precision(), 0.5);
  EXPECT_EQ(l.seed(), 7u);
  EXPECT_FALSE(l.use_latest_calibration());
  const v1::LlcCalibrationSpec& c = (*specs)[1].llc_calibration();
  EXPECT_THAT(c.step_sizes(), ::testing::ElementsAre(1e-6, 1e-5));
  EXPECT_THAT(c.localizations(), ::testing::ElementsAre(10, 100));
  EXPECT_THAT(c.n_betas(), ::testing::ElementsAre(3));
  EXPECT_EQ(c.base().chains(), 8);
  EXPECT_EQ(c.base().sampler(), v1::LlcSpec::RMSPROP_SGLD);
  // The grid's values are not the base's.
  EXPECT_FALSE(c.base().has_step_size());
  EXPECT_FALSE(c.base().has_n_beta());

  auto defaults = ParseFlags(Command("measure"),
                             {"--measure=llc", "--llc_use_latest_calibration"});
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  auto unset = MeasurementSpecsFromFlags(*defaults);
  ASSERT_TRUE(unset.ok()) << unset.status();
  const v1::LlcSpec& u = (*unset)[0].llc();
  EXPECT_TRUE(u.use_latest_calibration());
  EXPECT_FALSE(u.has_step_size());
  EXPECT_FALSE(u.has_localization());
  EXPECT_FALSE(u.has_n_beta());
  EXPECT_FALSE(u.has_chains());
  EXPECT_FALSE(u.has_draws());
  EXPECT_FALSE(u.has_trace_cap());
  EXPECT_EQ(u.n_beta_convention(), v1::LlcSpec::DATASET);
}

TEST(MeasurementSpecsFromFlagsTest, PrecisionNamesEachProtoPrecision) {
  for (const auto& [flag, precision] :
       std::vector<std::pair<std::string, v1::Precision>>{
           {"float32", v1::PRECISION_FLOAT32},
           {"float64", v1::PRECISION_FLOAT64},
           {"tf32", v1::PRECISION_TF32}}) {
    auto flags = ParseFlags(Command("measure"),
                            {"--measure=sharpness", "--precision=" + flag});
    ASSERT_TRUE(flags.ok()) << flag;
    auto specs = MeasurementSpecsFromFlags(*flags);
    ASSERT_TRUE(specs.ok()) << flag << ": " << specs.status();
    EXPECT_EQ((*specs)[0].precision(), precision) << flag;
  }
  EXPECT_THAT(RunCli({"measure", "--help"}).out,
              HasSubstr("float32, float64 or tf32"));
}

// The specs of `args` (after "measure"), which must parse.
std::vector<v1::MeasurementSpec> Specs(const std::vector<std::string>& args) {
  auto flags = ParseFlags(Command("measure"), args);
  EXPECT_TRUE(flags.ok()) << flags.status();
  if (!flags.ok()) return {};
  auto specs = MeasurementSpecsFromFlags(*flags);
  EXPECT_TRUE(specs.ok()) << specs.status();
  return specs.ok() ? *specs : std::vector<v1::MeasurementSpec>{};
}

TEST(MeasurementSpecsFromFlagsTest, NewKindsTakeTheirFlags) {
  const std::vector<v1::MeasurementSpec> specs =
      Specs({"--measure=spectral_density,hutchpp,trace_h3,loss_expansion,"
             "exact_hessian,power_iteration,loss_slice",
             "--operator=ggn",
             "--block_names=fc0.weight, fc0.bias",
             "--block_prefixes=fc1.",
             "--runs=4",
             "--steps=30",
             "--grid_points=500",
             "--sigma=0.5",
             "--max_hvps=60",
             "--sketch_size=10",
             "--rho=0.1",
             "--h0=2",
             "--ess=64",
             "--num_steps=1000",
             "--return_matrix",
             "--points=11",
             "--t_min=-0.5",
             "--t_max=0.5",
             "--direction=random",
             "--top_k=3",
             "--probes=12",
             "--distribution=gaussian",
             "--seed=5"});
  ASSERT_EQ(specs.size(), 7u);
  for (const v1::MeasurementSpec& spec : specs) {
    EXPECT_EQ(spec.operator_(), v1::OPERATOR_GGN);
    EXPECT_THAT(spec.block().names(),
                ::testing::ElementsAre("fc0.weight", "fc0.bias"));
    EXPECT_THAT(spec.block().prefixes(), ::testing::ElementsAre("fc1."));
  }
  const v1::SpectralDensitySpec& d = specs[0].spectral_density();
  EXPECT_EQ(d.runs(), 4);
  EXPECT_EQ(d.steps(), 30);
  EXPECT_EQ(d.grid_points(), 500);
  EXPECT_EQ(d.sigma(), 0.5);
  EXPECT_EQ(d.distribution(), v1::PROBE_DISTRIBUTION_GAUSSIAN);
  EXPECT_EQ(d.seed(), 5u);
  EXPECT_EQ(specs[1].hutchpp().max_hvps(), 60);
  EXPECT_EQ(specs[1].hutchpp().sketch_size(), 10);
  EXPECT_EQ(specs[2].trace_h3().min_probes(), 12);
  EXPECT_EQ(specs[2].trace_h3().max_probes(), 12);
  const v1::LossExpansionSpec& e = specs[3].loss_expansion();
  EXPECT_EQ(e.rho(), 0.1);
  EXPECT_EQ(e.h0(), 2);
  EXPECT_EQ(e.ess(), 64);
  EXPECT_EQ(e.num_steps(), 1000);
  EXPECT_EQ(e.trace_h3().max_probes(), 12);
  EXPECT_TRUE(specs[4].exact_hessian().return_matrix());
  EXPECT_EQ(specs[5].power_iteration().top_k(), 3);
  EXPECT_FALSE(specs[5].power_iteration().has_max_iterations());
  const v1::LossSliceSpec& l = specs[6].loss_slice();
  EXPECT_EQ(l.direction(), v1::LossSliceSpec::RANDOM);
  EXPECT_EQ(l.points(), 11);
  EXPECT_EQ(l.t_min(), -0.5);
  EXPECT_EQ(l.t_max(), 0.5);
  EXPECT_EQ(l.seed(), 5u);
}

TEST(MeasurementSpecsFromFlagsTest, AdaptiveTraceTakesItsFlags) {
  const std::vector<v1::MeasurementSpec> specs =
      Specs({"--measure=adaptive_trace,hutchpp", "--target_standard_error=0.25",
             "--target_relative_error=0.05", "--max_hvps=400",
             "--initial_sketch_size=4", "--min_probes=6",
             "--distribution=gaussian", "--seed=8"});
  ASSERT_EQ(specs.size(), 2u);
  const v1::AdaptiveTraceSpec& a = specs[0].adaptive_trace();
  EXPECT_DOUBLE_EQ(a.target_standard_error(), 0.25);
  ASSERT_TRUE(a.has_target_relative_error());
  EXPECT_DOUBLE_EQ(a.target_relative_error(), 0.05);
  EXPECT_EQ(a.max_hvps(), 400);
  EXPECT_EQ(a.initial_sketch_size(), 4);
  EXPECT_EQ(a.min_probes(), 6);
  EXPECT_EQ(a.distribution(), v1::PROBE_DISTRIBUTION_GAUSSIAN);
  EXPECT_EQ(a.seed(), 8u);
  // --max_hvps is shared with hutchpp.
  EXPECT_EQ(specs[1].hutchpp().max_hvps(), 400);

  // An absolute target alone sends no relative one: the server turns its
  // default off. Unset numbers take the server's defaults.
  const std::vector<v1::MeasurementSpec> absolute =
      Specs({"--measure=adaptive_trace", "--target_standard_error=0.5"});
  ASSERT_EQ(absolute.size(), 1u);
  EXPECT_DOUBLE_EQ(absolute[0].adaptive_trace().target_standard_error(), 0.5);
  EXPECT_FALSE(absolute[0].adaptive_trace().has_target_relative_error());
  EXPECT_FALSE(absolute[0].adaptive_trace().has_max_hvps());
  EXPECT_FALSE(absolute[0].adaptive_trace().has_initial_sketch_size());
  EXPECT_FALSE(absolute[0].adaptive_trace().has_min_probes());
  // An explicit 0 is sent, for the server to judge.
  EXPECT_TRUE(
      Specs({"--measure=adaptive_trace", "--target_relative_error=0"})[0]
          .adaptive_trace()
          .has_target_relative_error());
  // In a plan too.
  const std::vector<v1::MeasurementSpec> plan =
      Specs({"--measure=plan", "--plan=adaptive_trace,hessian_trace",
             "--target_standard_error=2"});
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_DOUBLE_EQ(plan[0].plan().adaptive_trace().target_standard_error(), 2);
}

TEST(MeasurementSpecsFromFlagsTest, UnsetOptionalNumbersLeaveServerDefaults) {
  const std::vector<v1::MeasurementSpec> specs =
      Specs({"--measure=spectral_density,hutchpp,loss_slice"});
  ASSERT_EQ(specs.size(), 3u);
  EXPECT_EQ(specs[0].operator_(), v1::OPERATOR_HESSIAN);
  EXPECT_FALSE(specs[0].has_block());
  EXPECT_FALSE(specs[0].spectral_density().has_runs());
  EXPECT_FALSE(specs[0].spectral_density().has_grid_points());
  EXPECT_FALSE(specs[1].hutchpp().has_max_hvps());
  EXPECT_FALSE(specs[2].loss_slice().has_points());
  EXPECT_EQ(specs[2].loss_slice().direction(),
            v1::LossSliceSpec::TOP_EIGENVECTOR);
  // An explicit 0 is sent, for the server to refuse.
  EXPECT_EQ(Specs({"--measure=spectral_density", "--grid_points=0"})[0]
                .spectral_density()
                .has_grid_points(),
            true);
}

TEST(MeasurementSpecsFromFlagsTest, PlanRunsTheKindsOfPlanInOneSpec) {
  const std::vector<v1::MeasurementSpec> specs =
      Specs({"--measure=sharpness,plan",
             "--plan=spectral_density, hessian_trace,trace_h3", "--runs=3",
             "--probes=8", "--block_prefixes=fc1."});
  ASSERT_EQ(specs.size(), 2u);
  EXPECT_TRUE(specs[0].has_sharpness());
  ASSERT_TRUE(specs[1].has_plan());
  const v1::MeasurementPlanSpec& plan = specs[1].plan();
  EXPECT_EQ(plan.spectral_density().runs(), 3);
  EXPECT_EQ(plan.hessian_trace().max_probes(), 8);
  EXPECT_EQ(plan.trace_h3().max_probes(), 8);
  EXPECT_FALSE(plan.has_sharpness());
  EXPECT_FALSE(plan.has_exact_hessian());
  EXPECT_EQ(specs[1].block().prefixes(0), "fc1.");
}

TEST(MeasurementSpecsFromFlagsTest, RejectsBadPlansAndNewEnums) {
  for (const std::vector<std::string>& bad :
       std::vector<std::vector<std::string>>{
           {"--measure=plan"},
           {"--measure=plan", "--plan=hessian_trace,hessian_trace"},
           {"--measure=plan", "--plan=plan"},
           {"--measure=plan", "--plan=curvature"},
           {"--measure=sharpness", "--plan=hessian_trace"},
           {"--measure=hessian_trace", "--operator=fisher"},
           {"--measure=loss_slice", "--direction=sideways"},
           {"--measure=spectral_density", "--distribution=cauchy"}}) {
    auto flags = ParseFlags(Command("measure"), bad);
    ASSERT_TRUE(flags.ok()) << bad.back();
    EXPECT_TRUE(
        absl::IsInvalidArgument(MeasurementSpecsFromFlags(*flags).status()))
        << bad.back();
  }
}

TEST(CurvctlCommandsTest, MeasureHelpListsEveryKindAndNewFlag) {
  Outcome help = RunCli({"measure", "--help"});
  for (const char* text : {"spectral_density",
                           "hutchpp",
                           "adaptive_trace",
                           "--target_standard_error (",
                           "--target_relative_error (",
                           "--initial_sketch_size (",
                           "--min_probes (",
                           "trace_h3",
                           "loss_expansion",
                           "exact_hessian",
                           "power_iteration",
                           "loss_slice",
                           "--plan (",
                           "--operator (",
                           "--block_names (",
                           "--block_prefixes (",
                           "--runs (",
                           "--steps (",
                           "--grid_points (",
                           "--sigma (",
                           "--max_hvps (",
                           "--sketch_size (",
                           "--rho (",
                           "--h0 (",
                           "--ess (",
                           "--num_steps (",
                           "--return_matrix (",
                           "--points (",
                           "--t_min (",
                           "--t_max (",
                           "--direction ("}) {
    EXPECT_THAT(help.out, HasSubstr(text));
  }
}

}  // namespace
}  // namespace curvd::client
