#include "client/curvctl_commands.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "client/checkpoint_directory.h"
#include "client/connection_credentials.h"
#include "client/curvd_client.h"
#include "client/gop_export.h"
#include "client/kind_table.h"
#include "client/measurement_format.h"
#include "client/zoo_weights.h"
#include "common/file_contents.h"
#include "common/resource_names.h"
#include "common/status_macros.h"
#include "google/protobuf/util/message_differencer.h"

namespace curvd::client {
namespace {

namespace v1 = ::curvd::v1;
using ::curvd::common::ReadFileContents;
using Type = FlagDef::Type;

std::string DefaultServer() {
  const char* env = std::getenv("CURVD_SERVER");
  return env != nullptr && *env != '\0' ? env : "localhost:50051";
}

FlagDef ServerFlag() {
  return {"server", Type::kString, DefaultServer(),
          "curvd address, host:port or any gRPC target (default from "
          "$CURVD_SERVER when set)."};
}

// How curvctl reaches a server that asks for credentials; each empty flag
// falls back to the environment variable it names (ApplyCredentials).
std::vector<FlagDef> CredentialFlags() {
  return {
      {"token_file", Type::kString, "",
       "File holding the bearer token sent as \"authorization: Bearer\" "
       "(default: the token in $CURVD_TOKEN, else the file "
       "$CURVD_TOKEN_FILE). A token implies TLS."},
      {"tls", Type::kBool, "false",
       "Speak TLS, checking the server's certificate against the system's "
       "roots when --tls_ca is not given ($CURVD_TLS=1 too). Implied by the "
       "flags below and by a token."},
      {"tls_ca", Type::kString, "",
       "PEM file of the CAs that sign the server's certificate (default "
       "$CURVD_TLS_CA)."},
      {"tls_cert", Type::kString, "",
       "PEM client certificate chain for mutual TLS, with --tls_key (default "
       "$CURVD_TLS_CERT)."},
      {"tls_key", Type::kString, "",
       "PEM private key of --tls_cert (default $CURVD_TLS_KEY)."},
      {"tls_server_name", Type::kString, "",
       "Name to check the server's certificate against instead of --server's "
       "host (default $CURVD_TLS_SERVER_NAME)."},
  };
}

FlagDef TimeoutFlag() {
  return {"timeout", Type::kDouble, "1800",
          "Seconds to wait for measurements to finish before giving up."};
}

FlagDef JsonFlag() {
  return {"json", Type::kBool, "false",
          "Print the proto JSON mapping instead of a table."};
}

FlagDef CsvFlag() {
  return {"csv", Type::kBool, "false",
          "Print CSV (one row per measurement) instead of a table; the last "
          "column, train_loss, is the trainer's Checkpoint.train_loss (0 when "
          "it sent none)."};
}

FlagDef TracesFlag() {
  return {"traces", Type::kBool, "false",
          "With --csv: the per-chain traces of llc and llc_calibration "
          "results instead, one row per measurement, chain and stored draw "
          "(name, step, kind, cell, chain, draw, loss, llc_running_mean, "
          "distance, chain_diverged); --json carries them in full."};
}

FlagDef PageSizeFlag() {
  return {"page_size", Type::kInt, "100",
          "Items per List response, 1 to 1000 (the server also ends a page "
          "at 4 MiB)."};
}

// The page size of --page_size; nullopt (after a message) when out of range.
std::optional<int> PageSizeOf(const ParsedFlags& flags,
                              const std::string& command, std::ostream& err) {
  const int64_t page_size = flags.Int("page_size");
  if (page_size < 1 || page_size > 1000) {
    err << "curvctl " << command << ": --page_size must be 1 to 1000, got "
        << page_size << "\n";
    return std::nullopt;
  }
  return static_cast<int>(page_size);
}

FlagDef RunFlag(const std::string& help) {
  return {"run", Type::kString, "", help};
}

// The flags of `measure`: what every kind shares, each kind's own in the kind
// table's order, then the settings of the measurement and the command.
std::vector<FlagDef> MeasureFlags(const FlagDef& model, const FlagDef& zoo) {
  std::vector<FlagDef> flags = {
      ServerFlag(),
      RunFlag("Run id (required)."),
      {"step", Type::kInt, "0", "Training step of the checkpoint."},
      model,
      zoo,
      {"weights", Type::kString, "",
       "Path of a safetensors state dict for the run's model at --step."},
      {"shard", Type::kString, "",
       "Data to measure on (required): file://PATH under the server's data "
       "roots (safetensors with inputs/targets, or idx images with "
       "?labels=FILE), blob://sha256:<hex>, "
       "builtin://gaussian_regression?n=..&d=..&outputs=..&seed=.., or "
       "builtin://modular_addition?p=97&train_fraction=0.3&seed=0&split=train "
       "(or split=test; inputs float32 token ids a, b, p; targets (a+b) mod "
       "p); limit=N and offset=N slice any shard."},
      {"loss", Type::kString, "cross_entropy", "cross_entropy or mse."},
      {"measure", Type::kString, "sharpness",
       absl::StrCat("Comma-separated kinds, one measurement each: ",
                    KindNameList(), ", plan.")},
      {"plan", Type::kString, "",
       "plan: the kinds one measurement runs together on one objective, "
       "comma-separated, e.g. spectral_density,hessian_trace,trace_h3 "
       "(with --measure=plan)."},
      {"operator", Type::kString, "hessian",
       "Curvature operator of every kind: hessian or ggn (Gauss-Newton)."},
      {"block_names", Type::kString, "",
       "Restrict the operator to these parameters (comma-separated names, "
       "e.g. fc0.weight,fc0.bias); with --block_prefixes, either matches."},
      {"block_prefixes", Type::kString, "",
       "Restrict the operator to parameters whose names start with one of "
       "these (comma-separated, e.g. fc1.)."}};
  for (const KindRow& kind : CurvctlKinds()) {
    flags.insert(flags.end(), kind.new_flags.begin(), kind.new_flags.end());
  }
  const std::vector<FlagDef> settings = {
      {"precision", Type::kString, "float32",
       "float32, float64 or tf32 (float32 storage; on CUDA, matmuls and "
       "convolutions may round their inputs to TF32, to about 1e-3 relative; "
       "a CPU worker measures in float32 and its diagnostics say so)."},
      {"micro_batch", Type::kInt, "0",
       "Samples per micro-batch; 0 = the whole shard at once."},
      {"device", Type::kString, "", "cuda, cpu, or empty for any worker."},
      {"device_split", Type::kString, "auto",
       "auto (split across the other idle devices of the class when no queued "
       "measurement needs them and samples x parameters >= 2^30), one (one "
       "device) or all_idle (every idle device of the class, whatever the "
       "size); llc alone divides its chains among the devices instead (auto: "
       "when chains x batch x parameters >= 2^30, not in train mode); GOP, "
       "llc_calibration and plans with llc beside other kinds are never "
       "split."},
      {"train_mode", Type::kBool, "false",
       "Measure in train mode (dropout on, BatchNorm batch statistics)."},
      {"forward_seed", Type::kInt, "0",
       "Seed of the randomness in the model's forward passes (dropout in "
       "train mode): one set of masks per micro-batch for the whole "
       "measurement; the same seed gives the same masks."},
      {"seed", Type::kInt, "0",
       "Seed of the Lanczos start vectors, the probes, the random slice "
       "direction, the LLC chains and zoo initial weights."},
      {"train_loss", Type::kDouble, "0",
       "Training loss recorded with a new checkpoint."},
      TimeoutFlag(),
      JsonFlag(),
      CsvFlag(),
      TracesFlag()};
  flags.insert(flags.end(), settings.begin(), settings.end());
  return flags;
}

// The flags of `backfill`: measure's, less those of one checkpoint (--step,
// --weights, --train_loss), plus the step rule.
std::vector<FlagDef> BackfillFlags(const FlagDef& model, const FlagDef& zoo) {
  std::vector<FlagDef> flags;
  for (FlagDef& flag : MeasureFlags(model, zoo)) {
    if (flag.name == "step" || flag.name == "weights" ||
        flag.name == "train_loss") {
      continue;
    }
    if (flag.name == "timeout") {
      flag.help = "Seconds to wait for each checkpoint's measurements.";
    }
    flags.push_back(std::move(flag));
    if (flags.back().name == "run") {
      flags.push_back(
          {"step_pattern", Type::kString, "",
           "How a file name gives its step: an ECMAScript regular expression "
           "with one capture group around the step's digits, searched in the "
           "whole file name, e.g. 'step=(\\d+)'. Empty: the last run of digits "
           "in the file name without its extension (ckpt_000150.pt is step "
           "150)."});
    }
  }
  return flags;
}

std::vector<CommandDef> BuildCommands() {
  const FlagDef model{
      "model", Type::kString, "",
      "Path of a TorchScript archive (torch.jit.save); uploaded "
      "unless the server holds it."};
  const FlagDef zoo{"zoo", Type::kString, "",
                    "A built-in model instead of --model: "
                    "ARCH:WIDTHS[:ACTIVATION], e.g. mlp:784,128,10:tanh "
                    "(activations tanh, relu, gelu)."};
  std::vector<CommandDef> commands = {
      {"create-run",
       "--run ID (--model FILE | --zoo SPEC) [flags]",
       "Registers a run with its model. Idempotent for the same model; prints "
       "the run's name.",
       {ServerFlag(),
        RunFlag("Run id: [a-z0-9][a-z0-9-_.]{0,62}; empty lets the server "
                "choose."),
        model,
        zoo,
        {"display_name", Type::kString, "", "A human-readable name."},
        JsonFlag()},
       0,
       0},
      {"upload",
       "FILE [flags]",
       "Uploads FILE as a content-addressed blob (1 MiB chunks, resumable) and "
       "prints its digest, sha256:<hex>.",
       {ServerFlag(),
        RunFlag("The run the blob is for: it is stored on that run's "
                "replica. Empty: on the replica reached.")},
       1,
       1},
      {"measure", "--run ID --shard URI [flags]",
       "Measures one checkpoint, creating what is missing: the run (from "
       "--model or --zoo) and the checkpoint at --step (from --weights; else "
       "an existing checkpoint; else the archive's own weights, or for a zoo "
       "model the torch.nn.Linear initialisation drawn with --seed). Waits for "
       "the results, showing progress on stderr, and prints them. Each flag "
       "names the kinds it applies to; optional numbers left unset take the "
       "server's defaults.\n"
       "Exit status: 0 when every measurement SUCCEEDED, 3 when one FAILED or "
       "was CANCELLED, 1 on other errors, 2 on a bad command line.",
       MeasureFlags(model, zoo), 0, 0},
      {"backfill", "DIR --run ID --shard URI [flags]",
       "Measures every checkpoint file in DIR (not its subdirectories): "
       "TorchScript archives (.pt, .zip) and safetensors state dicts "
       "(.safetensors) for the run's model, the step taken from each file "
       "name by --step_pattern. The run is created from --model or --zoo "
       "when given, else it must exist. Files are taken in step order; a "
       "checkpoint is skipped when each kind asked for already has a "
       "SUCCEEDED measurement there with the same spec (kind, shard and "
       "settings), and only the missing kinds are measured otherwise, so "
       "running the command again measures nothing new. A checkpoint file "
       "whose name has no step is skipped with a warning; several files of "
       "one step are all left out, with an error; other files are ignored. "
       "A file the server refuses (not the format its extension says, or a "
       "step already recorded with other content) is an error for that file "
       "alone. Progress (one line per file) and a summary go to stderr; the "
       "measurements made are printed on stdout as measure prints them. "
       "Every flag of measure applies except --step, --weights and "
       "--train_loss.\n"
       "Exit status: 0 when every file was measured or skipped, 1 when a file "
       "failed (an error is printed for it; the other files are still "
       "measured), 3 when a measurement FAILED or was CANCELLED, 2 on a bad "
       "command line.",
       BackfillFlags(model, zoo), 1, 1},
      {"watch",
       "NAME [flags]",
       "Follows measurement NAME (runs/R/checkpoints/S/measurements/ID) until "
       "it ends, reattaching if the stream breaks; progress on stderr, result "
       "on stdout. Exit status 3 when it FAILED or was CANCELLED.",
       {ServerFlag(), TimeoutFlag(), JsonFlag()},
       1,
       1},
      {"runs",
       "[flags]",
       "Lists every run of the replica reached (a lone server's: every run).",
       {ServerFlag(),
        JsonFlag(),
        PageSizeFlag(),
        {"all_replicas", Type::kBool, "false",
         "List the runs of every replica of the server's set, each asked "
         "at the address the server names (docs/adr/0019)."}},
       0,
       0},
      {"results",
       "--run ID [--step N] [flags]",
       "Lists the measurements of a run, or of one of its checkpoints.",
       {ServerFlag(),
        RunFlag("Run id (required)."),
        {"step", Type::kInt, "-1",
         "Only this checkpoint's measurements; -1 = every checkpoint."},
        JsonFlag(),
        CsvFlag(),
        TracesFlag(),
        PageSizeFlag(),
        {"view", Type::kString, "",
         "basic: leave out the large arrays (an exact Hessian's matrix, LLC "
         "traces); full: list everything. Empty: full with --json or "
         "--traces, basic otherwise."},
        {"wide", Type::kBool, "false",
         "Print wide CSV: one row per checkpoint (and per shard, operator and "
         "parameter block measured there), columns step, shard, operator, "
         "block, train_loss, loss and one per scalar measured (sharpness, "
         "trace, trace_standard_error, ...). Only SUCCEEDED measurements "
         "count; of several of one kind at a checkpoint, the latest created "
         "gives that kind's columns. A checkpoint without one has its step "
         "and train_loss alone."}},
       0,
       0},
      {"get",
       "NAME [flags]",
       "Prints one resource as proto JSON: runs/R, runs/R/checkpoints/S or "
       "runs/R/checkpoints/S/measurements/ID.",
       {ServerFlag()},
       1,
       1},
      {"export",
       "NAME --out FILE.safetensors [flags]",
       "Writes the arrays of gop measurement NAME "
       "(runs/R/checkpoints/S/measurements/ID, SUCCEEDED; a plan's gop too) "
       "as a safetensors file of float64 tensors: \"eigenvalues\" (the "
       "non-zero spectrum, descending), \"top_eigenvalues\", "
       "\"eigenvectors\" [k, M] (row j for top_eigenvalues[j]; with "
       "--gop_eigenvectors, fetched from the server's blob with ReadBlob and "
       "checked against its digest) and \"layers.<name>.eigenvalues\" per "
       "layer (with --gop_per_layer).",
       {ServerFlag(),
        {"out", Type::kString, "",
         "The safetensors file to write (required; replaced if it exists)."}},
       1,
       1},
      {"delete",
       "RUN [flags]",
       "Deletes run RUN (an id, or runs/ID) with its checkpoints and "
       "measurements, and the uploaded blobs no other run uses. Refused while "
       "a measurement of the run is queued or running.",
       {ServerFlag(), JsonFlag()},
       1,
       1},
  };
  // Every command that connects takes the credential flags after --server.
  for (CommandDef& command : commands) {
    auto server =
        std::find_if(command.flags.begin(), command.flags.end(),
                     [](const FlagDef& flag) { return flag.name == "server"; });
    if (server == command.flags.end()) continue;
    std::vector<FlagDef> credentials = CredentialFlags();
    command.flags.insert(server + 1, credentials.begin(), credentials.end());
  }
  return commands;
}

std::string OverallHelp() {
  std::string text =
      "curvctl: the command-line client of curvd, the loss-landscape "
      "curvature service.\n\nusage: curvctl COMMAND [flags]\n\ncommands:\n";
  for (const CommandDef& command : CurvctlCommands()) {
    absl::StrAppend(&text, "  ", absl::StrFormat("%-11s", command.name), " ",
                    command.usage, "\n");
  }
  absl::StrAppend(
      &text, "\n'curvctl COMMAND --help' documents each command's flags.\n");
  return text;
}

std::string RandomId() {
  std::random_device device;
  return absl::StrFormat("%08x%08x", device(), device());
}

// The client of --server with the credentials of the flags and environment
// (ApplyCredentials); their errors.
absl::StatusOr<std::unique_ptr<Client>> Connect(const ParsedFlags& flags) {
  ConnectionOptions options;
  options.target = flags.String("server");
  CredentialSources sources;
  sources.token_file = flags.String("token_file");
  sources.tls_ca_file = flags.String("tls_ca");
  sources.tls_cert_file = flags.String("tls_cert");
  sources.tls_key_file = flags.String("tls_key");
  sources.tls_server_name = flags.String("tls_server_name");
  sources.tls = flags.Bool("tls");
  CURVD_RETURN_IF_ERROR(ApplyCredentials(sources, &options));
  return std::make_unique<Client>(options);
}

absl::Duration WaitTimeout(const ParsedFlags& flags) {
  return absl::Seconds(flags.Double("timeout"));
}

// Prints measurement updates on stderr: rewriting one line on a terminal, one
// line per change of state or progress quarter otherwise (logs stay short).
class ProgressPrinter {
 public:
  ProgressPrinter(std::ostream& err, bool interactive)
      : err_(err), interactive_(interactive) {}
  ~ProgressPrinter() {
    if (interactive_ && dirty_) err_ << "\n";
  }

  void Update(const v1::Measurement& m) {
    const int quarter = static_cast<int>(m.progress() * 4);
    std::string line = absl::StrFormat(
        "%s step %d: %s %3.0f%% %s", KindName(m.spec()), StepFromName(m.name()),
        v1::Measurement::State_Name(m.state()), m.progress() * 100,
        m.progress_message());
    if (interactive_) {
      err_ << "\r\033[K" << line << std::flush;
      dirty_ = true;
      if (IsTerminal(m.state())) {
        err_ << "\n";
        dirty_ = false;
      }
      return;
    }
    auto& last = last_[m.name()];
    if (last.first != m.state() || last.second != quarter) {
      err_ << line << "\n" << std::flush;
      last = {m.state(), quarter};
    }
  }

 private:
  std::ostream& err_;
  const bool interactive_;
  bool dirty_ = false;
  std::map<std::string, std::pair<int, int>> last_;
};

bool IsStderrTerminal(const std::ostream& err) {
  return &err == &std::cerr && isatty(STDERR_FILENO);
}

int ExitFor(const absl::Status& status, std::ostream& err) {
  err << "curvctl: " << status.ToString() << "\n";
  return kExitError;
}

// The run's model from --model (uploading the archive) or --zoo; NotFound when
// neither flag is set.
absl::StatusOr<v1::ModelSpec> ModelFromFlags(const ParsedFlags& flags,
                                             Client& client) {
  v1::ModelSpec model;
  if (flags.IsSet("model") && flags.IsSet("zoo")) {
    return absl::InvalidArgumentError("give --model or --zoo, not both");
  }
  if (flags.IsSet("model")) {
    absl::StatusOr<std::string> archive =
        ReadFileContents(flags.String("model"));
    if (!archive.ok()) return archive.status();
    // To the run's replica; a server-chosen id is the receiving replica's.
    absl::StatusOr<std::string> digest =
        client.UploadBlob(*archive, flags.String("run"));
    if (!digest.ok()) return digest.status();
    model.set_archive_digest(*digest);
    return model;
  }
  if (flags.IsSet("zoo")) {
    absl::StatusOr<v1::ZooModel> zoo = ParseZooSpec(flags.String("zoo"));
    if (!zoo.ok()) return zoo.status();
    *model.mutable_zoo() = *zoo;
    return model;
  }
  return absl::NotFoundError("no --model or --zoo");
}

// The run of --run: created from --model or --zoo (idempotent for the same
// model), else the stored one; FailedPrecondition saying what to give when
// neither flag is set and the run does not exist.
absl::StatusOr<v1::Run> RunFromFlags(const ParsedFlags& flags, Client& client) {
  const std::string run_id = flags.String("run");
  absl::StatusOr<v1::ModelSpec> model = ModelFromFlags(flags, client);
  if (model.ok()) return client.CreateRun(run_id, *model);
  if (!absl::IsNotFound(model.status()) || flags.IsSet("model")) {
    return model.status();
  }
  absl::StatusOr<v1::Run> run = client.GetRun(common::RunName(run_id));
  if (absl::IsNotFound(run.status())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "run ", run_id, " does not exist; give --model or --zoo to create it"));
  }
  return run;
}

// `results` on `out` as the output flags of measure ask: --json, --csv (or
// --csv --traces), else a table.
absl::Status PrintMeasurements(const ParsedFlags& flags,
                               const std::vector<v1::Measurement>& results,
                               std::ostream& out) {
  if (flags.Bool("json")) {
    absl::StatusOr<std::string> json = MeasurementsToJson(results);
    if (!json.ok()) return json.status();
    out << *json << "\n";
  } else if (flags.Bool("csv")) {
    out << (flags.Bool("traces") ? LlcTracesToCsv(results)
                                 : MeasurementsToCsv(results));
  } else {
    out << MeasurementsToTable(results);
  }
  return absl::OkStatus();
}

int CreateRunCommand(const ParsedFlags& flags, std::ostream& out,
                     std::ostream& err) {
  absl::StatusOr<std::unique_ptr<Client>> connected = Connect(flags);
  if (!connected.ok()) return ExitFor(connected.status(), err);
  std::unique_ptr<Client> client = *std::move(connected);
  absl::StatusOr<v1::ModelSpec> model = ModelFromFlags(flags, *client);
  if (absl::IsNotFound(model.status()) && !flags.IsSet("model")) {
    err << "curvctl create-run: give --model FILE or --zoo SPEC\n";
    return kExitUsage;
  }
  if (!model.ok()) return ExitFor(model.status(), err);
  absl::StatusOr<v1::Run> run = client->CreateRun(flags.String("run"), *model,
                                                  flags.String("display_name"));
  if (!run.ok()) return ExitFor(run.status(), err);
  if (flags.Bool("json")) {
    absl::StatusOr<std::string> json = ToJson(*run, /*pretty=*/true);
    if (!json.ok()) return ExitFor(json.status(), err);
    out << *json << "\n";
  } else {
    out << run->name() << "\n";
  }
  return kExitOk;
}

int UploadCommand(const ParsedFlags& flags, std::ostream& out,
                  std::ostream& err) {
  absl::StatusOr<std::string> bytes = ReadFileContents(flags.positional()[0]);
  if (!bytes.ok()) return ExitFor(bytes.status(), err);
  absl::StatusOr<std::unique_ptr<Client>> connected = Connect(flags);
  if (!connected.ok()) return ExitFor(connected.status(), err);
  std::unique_ptr<Client> client = *std::move(connected);
  absl::StatusOr<std::string> digest =
      client->UploadBlob(*bytes, flags.String("run"));
  if (!digest.ok()) return ExitFor(digest.status(), err);
  out << *digest << "\n";
  return kExitOk;
}

// The checkpoint to measure: --weights when given; else the stored checkpoint
// at
// --step; else one made from the run's model (archive weights or zoo init).
absl::StatusOr<v1::Checkpoint> EnsureCheckpoint(const ParsedFlags& flags,
                                                Client& client,
                                                const v1::Run& run) {
  const std::string run_id(absl::StripPrefix(run.name(), "runs/"));
  v1::Checkpoint checkpoint;
  checkpoint.set_step(flags.Int("step"));
  checkpoint.set_train_loss(flags.Double("train_loss"));
  if (flags.IsSet("weights")) {
    absl::StatusOr<std::string> bytes =
        ReadFileContents(flags.String("weights"));
    if (!bytes.ok()) return bytes.status();
    absl::StatusOr<std::string> digest = client.UploadBlob(*bytes, run_id);
    if (!digest.ok()) return digest.status();
    checkpoint.set_format(v1::CHECKPOINT_FORMAT_SAFETENSORS);
    checkpoint.set_digest(*digest);
    return client.CreateCheckpoint(run_id, checkpoint);
  }
  absl::StatusOr<v1::Checkpoint> existing =
      client.GetCheckpoint(common::CheckpointNameOf(run_id, flags.Int("step")));
  if (existing.ok() || !absl::IsNotFound(existing.status())) return existing;
  switch (run.model().source_case()) {
    case v1::ModelSpec::kArchiveDigest:
      checkpoint.set_format(v1::CHECKPOINT_FORMAT_TORCHSCRIPT);
      checkpoint.set_digest(run.model().archive_digest());
      break;
    case v1::ModelSpec::kArchiveUri:
      checkpoint.set_format(v1::CHECKPOINT_FORMAT_TORCHSCRIPT);
      checkpoint.set_uri(run.model().archive_uri());
      break;
    case v1::ModelSpec::kZoo: {
      absl::StatusOr<std::string> weights = InitialZooWeights(
          run.model().zoo(), static_cast<uint64_t>(flags.Int("seed")));
      if (!weights.ok()) return weights.status();
      absl::StatusOr<std::string> digest = client.UploadBlob(*weights, run_id);
      if (!digest.ok()) return digest.status();
      checkpoint.set_format(v1::CHECKPOINT_FORMAT_SAFETENSORS);
      checkpoint.set_digest(*digest);
      break;
    }
    case v1::ModelSpec::SOURCE_NOT_SET:
      return absl::FailedPreconditionError(
          absl::StrCat(run.name(), " has no model"));
  }
  return client.CreateCheckpoint(run_id, checkpoint);
}

// At most one of --json, --csv and --wide (where `command` has it), and
// --traces only with --csv; says why not on `err`.
bool OutputFlagsAgree(const ParsedFlags& flags, const std::string& command,
                      std::ostream& err) {
  const bool wide = command == "results" && flags.Bool("wide");
  if (int{flags.Bool("json")} + int{flags.Bool("csv")} + int{wide} > 1) {
    err << "curvctl " << command << ": give one of --json, --csv"
        << (command == "results" ? " and --wide" : "") << "\n";
    return false;
  }
  if (flags.Bool("traces") && !flags.Bool("csv")) {
    err << "curvctl " << command
        << ": --traces is a form of --csv (--json carries the traces)\n";
    return false;
  }
  return true;
}

// The specs of measure's flags (for `command`, measure or backfill), after
// checking --run, --shard and the output flags; nullopt after saying why on
// `err`, a usage error.
std::optional<std::vector<v1::MeasurementSpec>> SpecsOrUsage(
    const ParsedFlags& flags, const std::string& command, std::ostream& err) {
  if (flags.String("run").empty() || flags.String("shard").empty()) {
    err << "curvctl " << command
        << ": --run and --shard are required (see: curvctl " << command
        << " --help)\n";
    return std::nullopt;
  }
  if (!OutputFlagsAgree(flags, command, err)) return std::nullopt;
  absl::StatusOr<std::vector<v1::MeasurementSpec>> specs =
      MeasurementSpecsFromFlags(flags);
  if (!specs.ok()) {
    err << "curvctl " << command << ": " << specs.status().message() << "\n";
    return std::nullopt;
  }
  return *std::move(specs);
}

// The run of --run (RunFromFlags); nullopt after saying why on `err` and
// setting `exit_code`: a usage error when the run is missing and no model is
// given, else an error.
std::optional<v1::Run> RunOrExit(const ParsedFlags& flags, Client& client,
                                 const std::string& command, std::ostream& err,
                                 int& exit_code) {
  absl::StatusOr<v1::Run> run = RunFromFlags(flags, client);
  if (absl::IsFailedPrecondition(run.status())) {
    err << "curvctl " << command << ": " << run.status().message() << "\n";
    exit_code = kExitUsage;
    return std::nullopt;
  }
  if (!run.ok()) {
    exit_code = ExitFor(run.status(), err);
    return std::nullopt;
  }
  return *std::move(run);
}

int MeasureCommand(const ParsedFlags& flags, std::ostream& out,
                   std::ostream& err) {
  const std::optional<std::vector<v1::MeasurementSpec>> specs =
      SpecsOrUsage(flags, "measure", err);
  if (!specs.has_value()) return kExitUsage;
  absl::StatusOr<std::unique_ptr<Client>> connected = Connect(flags);
  if (!connected.ok()) return ExitFor(connected.status(), err);
  std::unique_ptr<Client> client = *std::move(connected);
  int exit_code = kExitOk;
  const std::optional<v1::Run> run =
      RunOrExit(flags, *client, "measure", err, exit_code);
  if (!run.has_value()) return exit_code;

  absl::StatusOr<v1::Checkpoint> checkpoint =
      EnsureCheckpoint(flags, *client, *run);
  if (!checkpoint.ok()) return ExitFor(checkpoint.status(), err);

  // One request id per invocation and kind: a retried create inside this call
  // is idempotent, while running the command again measures again.
  const std::string invocation = RandomId();
  std::vector<std::string> names;
  for (const v1::MeasurementSpec& spec : *specs) {
    absl::StatusOr<v1::Measurement> created = client->CreateMeasurement(
        checkpoint->name(), spec,
        absl::StrCat("curvctl-", invocation, "-", KindName(spec)));
    if (!created.ok()) return ExitFor(created.status(), err);
    names.push_back(created->name());
  }

  std::vector<v1::Measurement> results;
  {
    ProgressPrinter progress(err, IsStderrTerminal(err));
    const absl::Time deadline = absl::Now() + WaitTimeout(flags);
    for (const std::string& name : names) {
      absl::StatusOr<v1::Measurement> done = client->WaitMeasurement(
          name, [&](const v1::Measurement& m) { progress.Update(m); },
          deadline - absl::Now());
      if (!done.ok()) return ExitFor(done.status(), err);
      results.push_back(*done);
    }
  }
  if (absl::Status printed = PrintMeasurements(flags, results, out);
      !printed.ok()) {
    return ExitFor(printed, err);
  }
  for (const v1::Measurement& m : results) {
    if (m.state() != v1::Measurement::SUCCEEDED) {
      err << "curvctl measure: " << m.name() << " "
          << v1::Measurement::State_Name(m.state()) << ": " << m.error_message()
          << "\n";
      return kExitMeasurementFailed;
    }
  }
  return kExitOk;
}

// The kinds of `specs`, comma-separated, for progress lines.
std::string KindList(const std::vector<v1::MeasurementSpec>& specs) {
  std::vector<std::string> kinds;
  for (const v1::MeasurementSpec& spec : specs) kinds.push_back(KindName(spec));
  return absl::StrJoin(kinds, ", ");
}

// The specs of `wanted` that no SUCCEEDED measurement of `existing` (one
// checkpoint's) was asked for with exactly.
std::vector<v1::MeasurementSpec> UnmeasuredSpecs(
    const std::vector<v1::MeasurementSpec>& wanted,
    const std::vector<v1::Measurement>& existing) {
  std::vector<v1::MeasurementSpec> missing;
  for (const v1::MeasurementSpec& spec : wanted) {
    const bool done = std::any_of(
        existing.begin(), existing.end(), [&](const v1::Measurement& m) {
          return m.state() == v1::Measurement::SUCCEEDED &&
                 google::protobuf::util::MessageDifferencer::Equals(m.spec(),
                                                                    spec);
        });
    if (!done) missing.push_back(spec);
  }
  return missing;
}

// Uploads `file` and records it as the checkpoint of its step.
absl::StatusOr<v1::Checkpoint> RecordCheckpointFile(
    Client& client, const std::string& run_id, const CheckpointFile& file) {
  absl::StatusOr<std::string> bytes = ReadFileContents(file.path);
  if (!bytes.ok()) return bytes.status();
  absl::StatusOr<std::string> digest = client.UploadBlob(*bytes, run_id);
  if (!digest.ok()) return digest.status();
  v1::Checkpoint checkpoint;
  checkpoint.set_step(file.step);
  checkpoint.set_format(file.format);
  checkpoint.set_digest(*digest);
  return client.CreateCheckpoint(run_id, checkpoint);
}

int BackfillCommand(const ParsedFlags& flags, std::ostream& out,
                    std::ostream& err) {
  const std::optional<std::vector<v1::MeasurementSpec>> specs =
      SpecsOrUsage(flags, "backfill", err);
  if (!specs.has_value()) return kExitUsage;
  absl::StatusOr<StepRule> rule =
      StepRule::Create(flags.String("step_pattern"));
  if (!rule.ok()) {
    err << "curvctl backfill: " << rule.status().message() << "\n";
    return kExitUsage;
  }
  const std::string& directory = flags.positional()[0];
  absl::StatusOr<CheckpointDirectory> found =
      ScanCheckpointDirectory(directory, *rule);
  if (!found.ok()) return ExitFor(found.status(), err);
  absl::StatusOr<std::unique_ptr<Client>> connected = Connect(flags);
  if (!connected.ok()) return ExitFor(connected.status(), err);
  std::unique_ptr<Client> client = *std::move(connected);
  int exit_code = kExitOk;
  const std::optional<v1::Run> run =
      RunOrExit(flags, *client, "backfill", err, exit_code);
  if (!run.has_value()) return exit_code;
  const std::string run_id(absl::StripPrefix(run->name(), "runs/"));
  absl::StatusOr<std::vector<v1::Measurement>> stored =
      client->ListMeasurements(absl::StrCat(run->name(), "/checkpoints/-"));
  if (!stored.ok()) return ExitFor(stored.status(), err);
  std::map<int64_t, std::vector<v1::Measurement>> stored_by_step;
  for (v1::Measurement& m : *stored) {
    stored_by_step[StepFromName(m.name())].push_back(std::move(m));
  }

  for (const std::string& line : found->skipped_no_step) {
    err << "curvctl backfill: warning: " << line << "; skipped\n";
  }
  for (const std::string& line : found->duplicate_steps) {
    err << "curvctl backfill: error: " << line << "\n";
  }
  const int total = static_cast<int>(found->checkpoints.size());
  err << "curvctl backfill: " << total << " checkpoint files in " << directory
      << " for " << run->name() << ", measuring " << KindList(*specs) << "\n";

  // One request id per invocation, step and kind, as measure does.
  const std::string invocation = RandomId();
  std::vector<v1::Measurement> results;
  int measured = 0, skipped = 0,
      failed = static_cast<int>(found->duplicate_steps.size());
  bool measurement_failed = false;
  ProgressPrinter progress(err, IsStderrTerminal(err));
  for (int i = 0; i < total; ++i) {
    const CheckpointFile& file = found->checkpoints[i];
    const std::string prefix =
        absl::StrFormat("curvctl backfill: [%d/%d] %s (step %d)", i + 1, total,
                        file.file_name, file.step);
    const std::vector<v1::MeasurementSpec> missing =
        UnmeasuredSpecs(*specs, stored_by_step[file.step]);
    if (missing.empty()) {
      err << prefix << ": skipped, already measured (" << KindList(*specs)
          << " SUCCEEDED)\n";
      ++skipped;
      continue;
    }
    absl::StatusOr<v1::Checkpoint> checkpoint =
        RecordCheckpointFile(*client, run_id, file);
    absl::Status status = checkpoint.status();
    std::vector<std::string> names;
    for (size_t k = 0; status.ok() && k < missing.size(); ++k) {
      absl::StatusOr<v1::Measurement> created = client->CreateMeasurement(
          checkpoint->name(), missing[k],
          absl::StrCat("curvctl-", invocation, "-", file.step, "-",
                       KindName(missing[k])));
      status = created.status();
      if (created.ok()) names.push_back(created->name());
    }
    if (!status.ok()) {
      err << prefix << ": error: " << status.ToString() << "\n";
      ++failed;
      continue;
    }
    err << prefix << ": measuring " << KindList(missing)
        << (missing.size() < specs->size()
                ? " (the other kinds asked for already SUCCEEDED)"
                : "")
        << "\n";
    const absl::Time deadline = absl::Now() + WaitTimeout(flags);
    for (const std::string& name : names) {
      absl::StatusOr<v1::Measurement> done = client->WaitMeasurement(
          name, [&](const v1::Measurement& m) { progress.Update(m); },
          deadline - absl::Now());
      if (!done.ok()) {
        status = done.status();
        break;
      }
      if (done->state() != v1::Measurement::SUCCEEDED) {
        measurement_failed = true;
        err << prefix << ": " << KindName(done->spec()) << " "
            << v1::Measurement::State_Name(done->state()) << ": "
            << done->error_message() << "\n";
      }
      results.push_back(*done);
    }
    if (!status.ok()) {
      err << prefix << ": error: " << status.ToString() << "\n";
      ++failed;
      continue;
    }
    ++measured;
  }
  if (absl::Status printed = PrintMeasurements(flags, results, out);
      !printed.ok()) {
    return ExitFor(printed, err);
  }
  err << absl::StrFormat(
      "curvctl backfill: %d checkpoints measured (%d measurements), %d "
      "skipped as already measured, %d failed; files skipped without a "
      "step: %d; other files ignored: %d\n",
      measured, results.size(), skipped, failed, found->skipped_no_step.size(),
      found->other_files);
  if (failed > 0) return kExitError;
  return measurement_failed ? kExitMeasurementFailed : kExitOk;
}

int WatchCommand(const ParsedFlags& flags, std::ostream& out,
                 std::ostream& err) {
  absl::StatusOr<std::unique_ptr<Client>> connected = Connect(flags);
  if (!connected.ok()) return ExitFor(connected.status(), err);
  std::unique_ptr<Client> client = *std::move(connected);
  absl::StatusOr<v1::Measurement> done;
  {
    ProgressPrinter progress(err, IsStderrTerminal(err));
    done = client->WaitMeasurement(
        flags.positional()[0],
        [&](const v1::Measurement& m) { progress.Update(m); },
        WaitTimeout(flags));
  }
  if (!done.ok()) return ExitFor(done.status(), err);
  if (flags.Bool("json")) {
    absl::StatusOr<std::string> json = ToJson(*done, /*pretty=*/true);
    if (!json.ok()) return ExitFor(json.status(), err);
    out << *json << "\n";
  } else {
    out << MeasurementsToTable({*done});
  }
  return done->state() == v1::Measurement::SUCCEEDED ? kExitOk
                                                     : kExitMeasurementFailed;
}

int RunsCommand(const ParsedFlags& flags, std::ostream& out,
                std::ostream& err) {
  const std::optional<int> page_size = PageSizeOf(flags, "runs", err);
  if (!page_size.has_value()) return kExitUsage;
  absl::StatusOr<std::unique_ptr<Client>> connected = Connect(flags);
  if (!connected.ok()) return ExitFor(connected.status(), err);
  std::unique_ptr<Client> client = *std::move(connected);
  absl::StatusOr<std::vector<v1::Run>> runs =
      flags.Bool("all_replicas") ? client->ListRunsOfEveryReplica(*page_size)
                                 : client->ListRuns(*page_size);
  if (!runs.ok()) return ExitFor(runs.status(), err);
  if (flags.Bool("json")) {
    v1::ListRunsResponse response;
    for (const v1::Run& run : *runs) *response.add_runs() = run;
    absl::StatusOr<std::string> json = ToJson(response, /*pretty=*/true);
    if (!json.ok()) return ExitFor(json.status(), err);
    out << *json << "\n";
  } else {
    out << RunsToTable(*runs);
  }
  return kExitOk;
}

int ResultsCommand(const ParsedFlags& flags, std::ostream& out,
                   std::ostream& err) {
  if (flags.String("run").empty()) {
    err << "curvctl results: --run is required (see: curvctl results "
           "--help)\n";
    return kExitUsage;
  }
  if (!OutputFlagsAgree(flags, "results", err)) return kExitUsage;
  const std::optional<int> page_size = PageSizeOf(flags, "results", err);
  if (!page_size.has_value()) return kExitUsage;
  const std::string& view_flag = flags.String("view");
  if (view_flag != "" && view_flag != "basic" && view_flag != "full") {
    err << "curvctl results: --view must be basic or full, got " << view_flag
        << "\n";
    return kExitUsage;
  }
  const bool full = view_flag.empty()
                        ? flags.Bool("json") || flags.Bool("traces")
                        : view_flag == "full";
  const int64_t step = flags.Int("step");
  const std::string parent =
      absl::StrCat("runs/", flags.String("run"), "/checkpoints/",
                   step < 0 ? "-" : absl::StrCat(step));
  absl::StatusOr<std::unique_ptr<Client>> connected = Connect(flags);
  if (!connected.ok()) return ExitFor(connected.status(), err);
  std::unique_ptr<Client> client = *std::move(connected);
  absl::StatusOr<std::vector<v1::Measurement>> measurements =
      client->ListMeasurements(parent, *page_size,
                               full ? v1::VIEW_FULL : v1::VIEW_BASIC);
  if (!measurements.ok()) return ExitFor(measurements.status(), err);
  // Steps in order whatever order the server pages in.
  std::stable_sort(measurements->begin(), measurements->end(),
                   [](const v1::Measurement& a, const v1::Measurement& b) {
                     return StepFromName(a.name()) < StepFromName(b.name());
                   });
  if (flags.Bool("json")) {
    absl::StatusOr<std::string> json = MeasurementsToJson(*measurements);
    if (!json.ok()) return ExitFor(json.status(), err);
    out << *json << "\n";
  } else if (flags.Bool("csv") && flags.Bool("traces")) {
    out << LlcTracesToCsv(*measurements);
  } else if (flags.Bool("csv") || flags.Bool("wide")) {
    absl::StatusOr<std::vector<v1::Checkpoint>> checkpoints =
        client->ListCheckpoints(absl::StrCat("runs/", flags.String("run")));
    if (!checkpoints.ok()) return ExitFor(checkpoints.status(), err);
    if (step >= 0) {
      checkpoints->erase(
          std::remove_if(
              checkpoints->begin(), checkpoints->end(),
              [step](const v1::Checkpoint& c) { return c.step() != step; }),
          checkpoints->end());
    }
    out << (flags.Bool("wide")
                ? MeasurementsToWideCsv(*measurements, *checkpoints)
                : MeasurementsToCsv(*measurements, *checkpoints));
  } else {
    out << MeasurementsToTable(*measurements);
  }
  return kExitOk;
}

int GetCommand(const ParsedFlags& flags, std::ostream& out, std::ostream& err) {
  const std::string& name = flags.positional()[0];
  const std::vector<std::string> parts = absl::StrSplit(name, '/');
  absl::StatusOr<std::unique_ptr<Client>> connected = Connect(flags);
  if (!connected.ok()) return ExitFor(connected.status(), err);
  std::unique_ptr<Client> client = *std::move(connected);
  absl::StatusOr<std::string> json;
  if (parts.size() == 2 && parts[0] == "runs") {
    absl::StatusOr<v1::Run> run = client->GetRun(name);
    json = run.ok() ? ToJson(*run, true) : run.status();
  } else if (parts.size() == 4 && parts[2] == "checkpoints") {
    absl::StatusOr<v1::Checkpoint> checkpoint = client->GetCheckpoint(name);
    json = checkpoint.ok() ? ToJson(*checkpoint, true) : checkpoint.status();
  } else if (parts.size() == 6 && parts[4] == "measurements") {
    absl::StatusOr<v1::Measurement> measurement = client->GetMeasurement(name);
    json = measurement.ok() ? ToJson(*measurement, true) : measurement.status();
  } else {
    err << "curvctl get: '" << name
        << "' is not runs/R, runs/R/checkpoints/S or "
           "runs/R/checkpoints/S/measurements/ID\n";
    return kExitUsage;
  }
  if (!json.ok()) return ExitFor(json.status(), err);
  out << *json << "\n";
  return kExitOk;
}

int DeleteCommand(const ParsedFlags& flags, std::ostream& out,
                  std::ostream& err) {
  std::string name = flags.positional()[0];
  if (!absl::StartsWith(name, "runs/")) name = absl::StrCat("runs/", name);
  absl::StatusOr<std::unique_ptr<Client>> connected = Connect(flags);
  if (!connected.ok()) return ExitFor(connected.status(), err);
  std::unique_ptr<Client> client = *std::move(connected);
  absl::StatusOr<v1::DeleteRunResponse> deleted = client->DeleteRun(name);
  if (!deleted.ok()) return ExitFor(deleted.status(), err);
  if (flags.Bool("json")) {
    absl::StatusOr<std::string> json = ToJson(*deleted, /*pretty=*/true);
    if (!json.ok()) return ExitFor(json.status(), err);
    out << *json << "\n";
  } else {
    out << absl::StrFormat(
        "deleted %s: %d checkpoints, %d measurements, %d blobs (%d bytes)\n",
        name, deleted->checkpoint_count(), deleted->measurement_count(),
        deleted->blob_count(), deleted->blob_bytes());
  }
  return kExitOk;
}

int ExportCommand(const ParsedFlags& flags, std::ostream& out,
                  std::ostream& err) {
  const std::string& path = flags.String("out");
  if (path.empty()) {
    err << "curvctl export: --out is required (see: curvctl export --help)\n";
    return kExitUsage;
  }
  absl::StatusOr<std::unique_ptr<Client>> connected = Connect(flags);
  if (!connected.ok()) return ExitFor(connected.status(), err);
  std::unique_ptr<Client> client = *std::move(connected);
  absl::StatusOr<v1::Measurement> measurement =
      client->GetMeasurement(flags.positional()[0]);
  if (!measurement.ok()) return ExitFor(measurement.status(), err);
  absl::StatusOr<v1::GopResult> gop = GopResultOf(*measurement);
  if (!gop.ok()) return ExitFor(gop.status(), err);
  std::string blob;
  if (!gop->eigenvectors_blob_digest().empty()) {
    absl::StatusOr<std::string> read =
        client->ReadBlob(gop->eigenvectors_blob_digest(),
                         common::ParseMeasurementName(measurement->name())
                             .value_or(common::MeasurementName())
                             .run_id);
    if (!read.ok()) return ExitFor(read.status(), err);
    blob = *std::move(read);
  }
  absl::StatusOr<std::string> file = GopExportFile(*gop, blob);
  if (!file.ok()) return ExitFor(file.status(), err);
  std::ofstream stream(path, std::ios::binary | std::ios::trunc);
  stream << *file;
  stream.close();
  if (!stream) {
    return ExitFor(absl::InternalError(absl::StrCat("cannot write ", path)),
                   err);
  }
  out << path << "\n";
  return kExitOk;
}

// The entries of a comma list, trimmed, empty ones dropped.
std::vector<std::string> CommaList(const std::string& flag) {
  std::vector<std::string> entries;
  for (absl::string_view entry : absl::StrSplit(flag, ',')) {
    entry = absl::StripAsciiWhitespace(entry);
    if (!entry.empty()) entries.emplace_back(entry);
  }
  return entries;
}

// Sets the kind named `kind` in `holder`, a MeasurementSpec or a
// MeasurementPlanSpec (their kind fields share names), from the flags by its
// row of the kind table. False for an unknown kind or one the holder already
// sets; InvalidArgument for a bad enum value.
absl::StatusOr<bool> SetKind(const std::string& kind, const ParsedFlags& flags,
                             google::protobuf::Message* holder) {
  const KindRow* row = FindKind(kind);
  if (row == nullptr) return false;
  const google::protobuf::FieldDescriptor* field =
      holder->GetDescriptor()->FindFieldByName(kind);
  if (field == nullptr) {
    return absl::InternalError(
        absl::StrCat(holder->GetTypeName(), " has no field ", kind));
  }
  const google::protobuf::Reflection* reflection = holder->GetReflection();
  if (reflection->HasField(*holder, field)) return false;
  absl::Status filled =
      row->fill_spec(flags, reflection->MutableMessage(holder, field));
  if (!filled.ok()) return filled;
  return true;
}

}  // namespace

const std::vector<CommandDef>& CurvctlCommands() {
  static const std::vector<CommandDef>* commands =
      new std::vector<CommandDef>(BuildCommands());
  return *commands;
}

absl::StatusOr<std::vector<v1::MeasurementSpec>> MeasurementSpecsFromFlags(
    const ParsedFlags& flags) {
  v1::MeasurementSpec common;
  common.set_shard_uri(flags.String("shard"));
  const std::string& loss = flags.String("loss");
  if (loss == "cross_entropy") {
    common.set_loss(v1::LOSS_FUNCTION_CROSS_ENTROPY);
  } else if (loss == "mse") {
    common.set_loss(v1::LOSS_FUNCTION_MSE);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--loss '", loss, "' is not cross_entropy or mse"));
  }
  const std::string& precision = flags.String("precision");
  if (precision == "float32") {
    common.set_precision(v1::PRECISION_FLOAT32);
  } else if (precision == "float64") {
    common.set_precision(v1::PRECISION_FLOAT64);
  } else if (precision == "tf32") {
    common.set_precision(v1::PRECISION_TF32);
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "--precision '", precision, "' is not float32, float64 or tf32"));
  }
  const std::string& op = flags.String("operator");
  if (op == "hessian") {
    common.set_operator_(v1::OPERATOR_HESSIAN);
  } else if (op == "ggn") {
    common.set_operator_(v1::OPERATOR_GGN);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--operator '", op, "' is not hessian or ggn"));
  }
  for (const std::string& name : CommaList(flags.String("block_names"))) {
    common.mutable_block()->add_names(name);
  }
  for (const std::string& prefix : CommaList(flags.String("block_prefixes"))) {
    common.mutable_block()->add_prefixes(prefix);
  }
  common.set_micro_batch_size(flags.Int("micro_batch"));
  common.set_device(flags.String("device"));
  const std::string& split = flags.String("device_split");
  if (split == "auto") {
    common.set_device_split(v1::DEVICE_SPLIT_UNSPECIFIED);
  } else if (split == "one") {
    common.set_device_split(v1::DEVICE_SPLIT_ONE_DEVICE);
  } else if (split == "all_idle") {
    common.set_device_split(v1::DEVICE_SPLIT_ALL_IDLE_DEVICES);
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "--device_split '", split, "' is not auto, one or all_idle"));
  }
  common.set_train_mode(flags.Bool("train_mode"));
  common.set_forward_seed(static_cast<uint64_t>(flags.Int("forward_seed")));

  std::vector<v1::MeasurementSpec> specs;
  bool planned = false;
  for (const std::string& kind : CommaList(flags.String("measure"))) {
    v1::MeasurementSpec spec = common;
    if (kind == "plan") {
      planned = true;
      v1::MeasurementPlanSpec* plan = spec.mutable_plan();
      const std::vector<std::string> kinds = CommaList(flags.String("plan"));
      if (kinds.empty()) {
        return absl::InvalidArgumentError(
            "--measure=plan needs --plan KINDS, e.g. "
            "--plan=spectral_density,hessian_trace,trace_h3");
      }
      for (const std::string& planned_kind : kinds) {
        absl::StatusOr<bool> added = SetKind(planned_kind, flags, plan);
        if (!added.ok()) return added.status();
        if (!*added) {
          return absl::InvalidArgumentError(
              absl::StrCat("--plan names '", planned_kind,
                           "' twice or it is unknown (", KindNameList(), ")"));
        }
      }
    } else {
      absl::StatusOr<bool> added = SetKind(kind, flags, &spec);
      if (!added.ok()) return added.status();
      if (!*added) {
        return absl::InvalidArgumentError(
            absl::StrCat("--measure kind '", kind, "' is unknown (",
                         KindNameList(), ", plan)"));
      }
    }
    specs.push_back(std::move(spec));
  }
  if (specs.empty()) {
    return absl::InvalidArgumentError("--measure names no kind");
  }
  if (flags.IsSet("plan") && !planned) {
    return absl::InvalidArgumentError("--plan needs --measure=plan");
  }
  return specs;
}

int RunCurvctl(const std::vector<std::string>& args, std::ostream& out,
               std::ostream& err) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h" ||
      (args[0] == "help" && args.size() == 1)) {
    (args.empty() ? err : out) << OverallHelp();
    return args.empty() ? kExitUsage : kExitOk;
  }
  std::string name = args[0];
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (name == "help") {
    name = args[1];
    rest = {"--help"};
  }
  const std::vector<CommandDef>& commands = CurvctlCommands();
  auto command =
      std::find_if(commands.begin(), commands.end(),
                   [&](const CommandDef& c) { return c.name == name; });
  if (command == commands.end()) {
    err << "curvctl: unknown command '" << name << "'\n\n" << OverallHelp();
    return kExitUsage;
  }
  absl::StatusOr<ParsedFlags> flags = ParseFlags(*command, rest);
  if (!flags.ok()) {
    err << "curvctl: " << flags.status().message() << "\n";
    return kExitUsage;
  }
  if (flags->help()) {
    out << HelpText(*command);
    return kExitOk;
  }
  using Handler = int (*)(const ParsedFlags&, std::ostream&, std::ostream&);
  static const std::map<std::string, Handler>* handlers =
      new std::map<std::string, Handler>{
          {"create-run", CreateRunCommand}, {"upload", UploadCommand},
          {"measure", MeasureCommand},      {"backfill", BackfillCommand},
          {"watch", WatchCommand},          {"runs", RunsCommand},
          {"results", ResultsCommand},      {"get", GetCommand},
          {"export", ExportCommand},        {"delete", DeleteCommand}};
  return handlers->at(command->name)(*flags, out, err);
}

}  // namespace curvd::client
