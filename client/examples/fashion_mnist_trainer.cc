// An example trainer that streams checkpoints to curvd while it trains: a zoo
// MLP on Fashion-MNIST with plain SGD. Every --checkpoint_every steps it
// serialises the state dict to safetensors and hands it to a background
// uploader, which uploads it, asks for sharpness (top-5 eigenvalues) and the
// Hessian trace on a fixed slice of the training set, and prints each
// checkpoint's results as they arrive, beside the training loss. Training never
// waits on the server unless --policy=block asks it to; by default a checkpoint
// made while the uploader is busy replaces the one waiting.
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/background_uploader.h"
#include "client/connection_credentials.h"
#include "client/curvd_client.h"
#include "core/api/safetensors.h"
#include "core/data/shard.h"
#include "core/data/zoo_mlp.h"

ABSL_FLAG(std::string, server, "localhost:50051", "curvd address (host:port).");
ABSL_FLAG(std::string, token_file, "",
          "File holding the bearer token (default: $CURVD_TOKEN, else the file "
          "$CURVD_TOKEN_FILE). A token implies TLS.");
ABSL_FLAG(bool, tls, false,
          "Speak TLS with the system's roots when --tls_ca is not given "
          "($CURVD_TLS=1 too).");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM CAs of the server's certificate (default $CURVD_TLS_CA).");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM client certificate for mutual TLS (default $CURVD_TLS_CERT).");
ABSL_FLAG(std::string, tls_key, "",
          "PEM key of --tls_cert (default $CURVD_TLS_KEY).");
ABSL_FLAG(std::string, tls_server_name, "",
          "Name checked against the server's certificate instead of "
          "--server's host (default $CURVD_TLS_SERVER_NAME).");
ABSL_FLAG(std::string, run, "",
          "Run id; empty = fmnist-mlp-YYYYMMDD-HHMMSS, a new run each time.");
ABSL_FLAG(std::string, hidden, "64",
          "Hidden layer widths, comma-separated (784 in, 10 out are fixed).");
ABSL_FLAG(std::string, activation, "tanh", "tanh, relu or gelu.");
ABSL_FLAG(int, steps, 1500, "SGD steps.");
ABSL_FLAG(double, lr, 0.1, "SGD learning rate.");
ABSL_FLAG(int, batch_size, 128, "Training batch size.");
ABSL_FLAG(int, checkpoint_every, 250,
          "Send a checkpoint every N steps (and at steps 0 and --steps).");
ABSL_FLAG(int, shard_size, 1024,
          "Training images in the measurement shard (the first N).");
ABSL_FLAG(int, top_k, 5, "Top Hessian eigenvalues measured per checkpoint.");
ABSL_FLAG(int, trace_probes, 30,
          "Hutchinson probes at most per trace (it stops earlier at 5% "
          "standard error); each costs one Hessian-vector product.");
ABSL_FLAG(std::string, policy, "coalesce",
          "What a checkpoint does while the uploader is behind: coalesce "
          "(keep only the newest waiting checkpoint), queue (keep --queue, "
          "dropping the oldest with a warning) or block (keep --queue and "
          "make training wait for room).");
ABSL_FLAG(int, queue, 4,
          "Checkpoints waiting for upload at most under --policy=queue and "
          "--policy=block.");
ABSL_FLAG(
    std::string, data_dir, "/usr/share/datasets/fashion-mnist",
    "Directory of the Fashion-MNIST idx files (gzipped); must be under the "
    "server's --data_roots, which reads the measurement shard from it.");
ABSL_FLAG(int, threads, 1,
          "Torch threads for training; leave the other cores to the server.");
ABSL_FLAG(uint64_t, seed, 0, "Seed of the initial weights and the batches.");

namespace {

namespace v1 = ::curvd::v1;
using curvd::client::BackgroundUploader;
using curvd::client::PendingCheckpoint;

// Serialises the model's parameters, as float32 on the CPU, under the names the
// server's zoo MLP uses.
absl::StatusOr<std::string> StateDict(curvd::core::ZooMlp& model) {
  std::vector<curvd::core::SafetensorsTensor> tensors;
  torch::NoGradGuard no_grad;
  for (const auto& item : model->named_parameters()) {
    torch::Tensor value =
        item.value().detach().to(torch::kCPU, torch::kFloat32).contiguous();
    curvd::core::SafetensorsTensor tensor;
    tensor.name = item.key();
    tensor.dtype = "F32";
    tensor.shape.assign(value.sizes().begin(), value.sizes().end());
    tensor.data.assign(static_cast<const char*>(value.data_ptr()),
                       value.numel() * sizeof(float));
    tensors.push_back(std::move(tensor));
  }
  return curvd::core::SerializeSafetensors(tensors);
}

// Writes the progress line and result lines without interleaving them. On a
// terminal the progress line is rewritten in place; otherwise it is printed
// every `log_every` steps so logs stay readable.
class Console {
 public:
  explicit Console(bool interactive) : interactive_(interactive) {}

  void Progress(int step, int steps, double loss, int measured, int sent) {
    absl::MutexLock lock(&mu_);
    progress_ = absl::StrFormat(
        "train step %5d/%d  loss %.4f  checkpoints measured %d/%d", step, steps,
        loss, measured, sent);
    if (interactive_) {
      std::fprintf(stdout, "\r\033[K%s", progress_.c_str());
      std::fflush(stdout);
    } else {
      std::fprintf(stdout, "%s\n", progress_.c_str());
    }
  }

  void Line(const std::string& line) {
    absl::MutexLock lock(&mu_);
    if (interactive_) {
      std::fprintf(stdout, "\r\033[K%s\n%s", line.c_str(), progress_.c_str());
    } else {
      std::fprintf(stdout, "%s\n", line.c_str());
    }
    std::fflush(stdout);
  }

  void EndProgress() {
    absl::MutexLock lock(&mu_);
    if (interactive_) std::fprintf(stdout, "\n");
    progress_.clear();
  }

 private:
  const bool interactive_;
  absl::Mutex mu_;
  std::string progress_ ABSL_GUARDED_BY(mu_);
};

// Collects a checkpoint's measurements and prints one line when all are in.
class ResultBoard {
 public:
  ResultBoard(Console* console, int kinds) : console_(console), kinds_(kinds) {}

  void Add(const PendingCheckpoint& checkpoint, const v1::Measurement& m) {
    std::vector<v1::Measurement> done;
    {
      absl::MutexLock lock(&mu_);
      auto& pending = pending_[checkpoint.step];
      pending.push_back(m);
      if (static_cast<int>(pending.size()) < kinds_) return;
      done = std::move(pending);
      pending_.erase(checkpoint.step);
      ++measured_;
    }
    console_->Line(Format(checkpoint, done));
  }

  int measured() {
    absl::MutexLock lock(&mu_);
    return measured_;
  }

 private:
  static std::string Format(const PendingCheckpoint& checkpoint,
                            const std::vector<v1::Measurement>& done) {
    std::string line = absl::StrFormat("[curvd] step %5d  train loss %.4f",
                                       checkpoint.step, checkpoint.train_loss);
    bool loss_shown = false;
    for (const v1::Measurement& m : done) {
      if (m.state() != v1::Measurement::SUCCEEDED) {
        absl::StrAppend(&line, "  ", curvd::client::KindName(m.spec()), " ",
                        v1::Measurement::State_Name(m.state()), ": ",
                        m.error_message());
        continue;
      }
      if (!loss_shown) {
        absl::StrAppend(&line, absl::StrFormat("  shard loss %.4f",
                                               m.diagnostics().loss()));
        loss_shown = true;
      }
      if (m.has_sharpness()) {
        std::vector<std::string> top;
        for (const v1::Eigenpair& pair : m.sharpness().top()) {
          top.push_back(absl::StrFormat("%.3g", pair.value()));
        }
        absl::StrAppend(&line,
                        absl::StrFormat("  sharpness %.4g  top-%d [%s]",
                                        m.sharpness().sharpness(), top.size(),
                                        absl::StrJoin(top, " ")));
      } else if (m.has_hessian_trace()) {
        absl::StrAppend(
            &line,
            absl::StrFormat("  trace %.4g ± %.2g", m.hessian_trace().trace(),
                            m.hessian_trace().standard_error()));
      }
    }
    return line;
  }

  Console* const console_;
  const int kinds_;
  absl::Mutex mu_;
  std::map<int64_t, std::vector<v1::Measurement>> pending_ ABSL_GUARDED_BY(mu_);
  int measured_ ABSL_GUARDED_BY(mu_) = 0;
};

int Fail(const std::string& what, const absl::Status& status) {
  std::cerr << "curvd_example_trainer: " << what << ": " << status << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Trains an MLP on Fashion-MNIST and streams checkpoints to curvd, which "
      "measures sharpness and the Hessian trace of each.\n"
      "usage: curvd_example_trainer [--server host:port] [flags]");
  // absl's --help lists the flags of files named after the program; this
  // binary's file has another name.
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = [](absl::string_view file) {
    return absl::StrContains(file, "fashion_mnist_trainer");
  };
  absl::SetFlagsUsageConfig(usage);
  absl::ParseCommandLine(argc, argv);
  torch::set_num_threads(std::max(1, absl::GetFlag(FLAGS_threads)));
  torch::manual_seed(absl::GetFlag(FLAGS_seed));
  const torch::Device device =
      torch::cuda::is_available() ? torch::kCUDA : torch::kCPU;

  absl::StatusOr<curvd::client::Backpressure> policy =
      curvd::client::ParseBackpressure(absl::GetFlag(FLAGS_policy));
  if (!policy.ok()) return Fail("--policy", policy.status());

  curvd::core::ZooSpec spec;
  spec.layer_widths.push_back(784);
  for (absl::string_view width : absl::StrSplit(absl::GetFlag(FLAGS_hidden),
                                                ',', absl::SkipWhitespace())) {
    int64_t value;
    if (!absl::SimpleAtoi(width, &value)) {
      return Fail("--hidden", absl::InvalidArgumentError(absl::StrCat(
                                  "'", width, "' is not an integer")));
    }
    spec.layer_widths.push_back(value);
  }
  spec.layer_widths.push_back(10);
  spec.activation = absl::GetFlag(FLAGS_activation);
  if (absl::Status valid = curvd::core::ValidateZooSpec(spec); !valid.ok()) {
    return Fail("model", valid);
  }

  const std::string data_dir = absl::GetFlag(FLAGS_data_dir);
  curvd::core::ShardSpec train_spec;
  train_spec.kind = curvd::core::ShardSpec::Kind::kIdx;
  train_spec.path = data_dir + "/train-images-idx3-ubyte.gz";
  train_spec.labels_path = data_dir + "/train-labels-idx1-ubyte.gz";
  absl::StatusOr<curvd::core::Shard> train = curvd::core::LoadShard(train_spec);
  if (!train.ok()) return Fail("loading Fashion-MNIST", train.status());
  const int64_t num_train = train->size();
  torch::Tensor inputs = train->inputs.to(device);
  torch::Tensor targets = train->targets.to(device);

  std::string run_id = absl::GetFlag(FLAGS_run);
  if (run_id.empty()) {
    run_id = absl::FormatTime("fmnist-mlp-%Y%m%d-%H%M%S", absl::Now(),
                              absl::LocalTimeZone());
  }
  curvd::client::ConnectionOptions options;
  options.target = absl::GetFlag(FLAGS_server);
  curvd::client::CredentialSources credentials;
  credentials.token_file = absl::GetFlag(FLAGS_token_file);
  credentials.tls = absl::GetFlag(FLAGS_tls);
  credentials.tls_ca_file = absl::GetFlag(FLAGS_tls_ca);
  credentials.tls_cert_file = absl::GetFlag(FLAGS_tls_cert);
  credentials.tls_key_file = absl::GetFlag(FLAGS_tls_key);
  credentials.tls_server_name = absl::GetFlag(FLAGS_tls_server_name);
  if (absl::Status applied =
          curvd::client::ApplyCredentials(credentials, &options);
      !applied.ok()) {
    return Fail("reading the credentials", applied);
  }
  curvd::client::Client client(options);
  if (absl::Status connected = client.WaitForConnected(absl::Seconds(30));
      !connected.ok()) {
    return Fail("connecting", connected);
  }
  v1::ModelSpec model_spec;
  model_spec.mutable_zoo()->set_architecture("mlp");
  for (int64_t width : spec.layer_widths) {
    model_spec.mutable_zoo()->add_layer_widths(width);
  }
  model_spec.mutable_zoo()->set_activation(spec.activation);
  absl::StatusOr<v1::Run> run = client.CreateRun(
      run_id, model_spec, "Fashion-MNIST MLP (curvd example trainer)");
  if (!run.ok()) return Fail("creating the run", run.status());

  // Every checkpoint is measured on the same slice, so values are comparable
  // across steps.
  const std::string shard_uri = absl::StrCat(
      "file://", data_dir,
      "/train-images-idx3-ubyte.gz?labels=train-labels-idx1-ubyte.gz&limit=",
      absl::GetFlag(FLAGS_shard_size));
  v1::MeasurementSpec sharpness;
  sharpness.set_shard_uri(shard_uri);
  sharpness.set_loss(v1::LOSS_FUNCTION_CROSS_ENTROPY);
  sharpness.mutable_sharpness()->set_top_k(absl::GetFlag(FLAGS_top_k));
  v1::MeasurementSpec trace = sharpness;
  // Few probes by default: the demo must keep up with training on two cores.
  trace.mutable_hessian_trace()->set_max_probes(
      std::max(2, absl::GetFlag(FLAGS_trace_probes)));
  trace.mutable_hessian_trace()->set_min_probes(
      std::min(10, std::max(2, absl::GetFlag(FLAGS_trace_probes))));
  trace.mutable_hessian_trace()->set_target_relative_error(0.05);

  Console console(isatty(STDOUT_FILENO));
  ResultBoard board(&console, 2);
  console.Line(absl::StrCat(
      "curvd example trainer: run ", run->name(), " on ", options.target,
      "; MLP ", absl::StrJoin(spec.layer_widths, "-"), " ", spec.activation,
      " on ", num_train, " Fashion-MNIST images (", device.str(),
      "); measuring sharpness (top-", absl::GetFlag(FLAGS_top_k),
      ") and Hessian trace every ", absl::GetFlag(FLAGS_checkpoint_every),
      " steps on ", shard_uri, "; backpressure ",
      curvd::client::BackpressureName(*policy)));
  BackgroundUploader uploader(
      {static_cast<size_t>(std::max(1, absl::GetFlag(FLAGS_queue))),
       [&console](const std::string& line) { console.Line(line); }, *policy},
      curvd::client::MeasureCheckpointProcessor(
          &client, run_id, {sharpness, trace},
          [&board](const PendingCheckpoint& c, const v1::Measurement& m) {
            board.Add(c, m);
          }));

  curvd::core::ZooMlp model(spec);
  model->to(device);
  model->train();
  torch::optim::SGD optimizer(
      model->parameters(), torch::optim::SGDOptions(absl::GetFlag(FLAGS_lr)));
  const int steps = absl::GetFlag(FLAGS_steps);
  const int batch_size = absl::GetFlag(FLAGS_batch_size);
  const int every = std::max(1, absl::GetFlag(FLAGS_checkpoint_every));
  const int log_every = isatty(STDOUT_FILENO) ? 1 : std::max(1, every / 2);
  int sent = 0;
  double window_loss = 0;
  int window_batches = 0;
  const absl::Time start = absl::Now();

  // The loss recorded with a checkpoint is the mean over the batches since the
  // previous one (at step 0: the loss before any update), less noisy than one
  // batch.
  auto send = [&](int step, double loss) {
    absl::StatusOr<std::string> bytes = StateDict(model);
    if (!bytes.ok()) {
      console.Line(absl::StrCat("serialising step ", step, ": ",
                                bytes.status().ToString()));
      return;
    }
    uploader.Submit(PendingCheckpoint{step, loss, *std::move(bytes)});
    ++sent;
  };

  torch::Tensor permutation =
      torch::randperm(num_train, torch::TensorOptions().device(device));
  int64_t cursor = 0;
  for (int step = 0; step <= steps; ++step) {
    if (cursor + batch_size > num_train) {
      permutation =
          torch::randperm(num_train, torch::TensorOptions().device(device));
      cursor = 0;
    }
    torch::Tensor index = permutation.slice(0, cursor, cursor + batch_size);
    cursor += batch_size;
    torch::Tensor loss = torch::nn::functional::cross_entropy(
        model->forward(inputs.index_select(0, index)),
        targets.index_select(0, index));
    const double loss_value = loss.item<double>();
    if (step % every == 0 || step == steps) {
      send(step,
           window_batches > 0 ? window_loss / window_batches : loss_value);
      window_loss = 0;
      window_batches = 0;
    }
    if (step == steps) break;
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
    window_loss += loss_value;
    ++window_batches;
    if (step % log_every == 0) {
      console.Progress(step, steps, loss_value, board.measured(), sent);
    }
  }
  console.EndProgress();
  console.Line(absl::StrFormat(
      "training done in %.1f s; waiting for the measurements still queued "
      "(%d of %d checkpoints measured so far)",
      absl::ToDoubleSeconds(absl::Now() - start), board.measured(), sent));
  uploader.Close();
  const BackgroundUploader::Stats stats = uploader.stats();
  console.Line(absl::StrFormat(
      "done in %.1f s: %d checkpoints sent, %d measured, %d dropped, %d "
      "failed",
      absl::ToDoubleSeconds(absl::Now() - start), stats.submitted,
      stats.processed, stats.dropped, stats.failed));
  const std::string server_flag = absl::StrCat("--server=", options.target);
  console.Line(absl::StrCat(
      "\nResults are stored by the server (SQLite in its --state_dir) under ",
      run->name(), ". Query them with:\n", "  build/bin/curvctl results ",
      server_flag, " --run=", run_id, "\n", "  build/bin/curvctl results ",
      server_flag, " --run=", run_id, " --csv > ", run_id, ".csv\n",
      "  build/bin/curvctl results ", server_flag, " --run=", run_id,
      " --step=", steps, " --json\n", "  build/bin/curvctl get ", server_flag,
      " ", run->name(), "\n", "  build/bin/curvctl runs ", server_flag));
  return stats.failed == 0 ? 0 : 1;
}
