// The seed study's figure, reproduced through curvd: log lambda_hat against
// log(rank(H) / 2) on minimally singular models, the rank from exact_hessian.
//
// The model is a zoo MLP of one linear layer, widths [d - 1, 1] (d parameters,
// the bias included), under MSE on n samples whose rows of A = [X, 1] are
// orthogonal with A A^T = d I (rows of a scaled DCT-II basis, whose first
// column is constant: the bias input). Targets are X w* + b*, so the
// checkpoint w* is a global minimum with L(w*) = 0, L is exactly quadratic,
// and H = (2/n) A^T A has rank n with every non-zero eigenvalue 2d/n. One
// shard of max(ranks) samples is uploaded; rank r measures its first r
// (shard_uri ?limit=r). For each r: exact_hessian (the rank, and lambda_max
// that sets the step size), then llc; the program prints the table, fits
// log lambda_hat = slope * log(rank/2) + intercept by least squares and,
// with --check_slope_within, exits 1 when |slope - 1| is larger.
// scripts/llc_rank_study.sh runs it against a local server;
// docs/llc_rank_study.md has the measured numbers.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/curvd_client.h"
#include "common/status_macros.h"
#include "core/api/safetensors.h"
#include "core/api/sources.h"

ABSL_FLAG(std::string, server, "localhost:50051", "curvd address (host:port).");
ABSL_FLAG(std::string, run, "",
          "Run id; empty = llc-rank-study-YYYYMMDD-HHMMSS, a new run each time.");
ABSL_FLAG(int64_t, parameters, 10000,
          "d, the model's parameters: a linear layer of d - 1 inputs and one "
          "output with its bias. Every rank must be at most d, and d at most "
          "the server's --exact_hessian_max_parameters.");
ABSL_FLAG(std::string, ranks, "10,30,100,300,1000,3000,10000",
          "The ranks r of H (samples in the shard), comma-separated.");
ABSL_FLAG(std::string, device, "",
          "Device the measurements run on: \"cuda\", \"cpu\" or empty for any "
          "worker.");
ABSL_FLAG(std::string, precision, "float32",
          "float32 or float64: of the uploaded weights and shard and of the "
          "measurements.");
ABSL_FLAG(std::string, sampler, "sgld", "sgld, rmsprop_sgld, sgnht or mala.");
ABSL_FLAG(double, n_beta, 1e5,
          "n_beta, given (not a convention): large against gamma / lambda, so "
          "lambda_hat is near r/2, and against r/2, so that L stays well under "
          "the divergence threshold 100 * max(L(w*), 0.01) = 1.");
ABSL_FLAG(double, localization, 100, "gamma, the localisation strength.");
ABSL_FLAG(double, step_scale, 0.05,
          "eps * (n_beta * lambda_max + gamma), lambda_max the exact Hessian's "
          "largest eigenvalue: SGLD's step size relative to the stiffest "
          "curvature. Its stationary bias on a quadratic is 1 / (1 - "
          "step_scale / 4), +1.3% at 0.05.");
ABSL_FLAG(int, chains, 4, "Chains per llc measurement.");
ABSL_FLAG(int, draws, 2000, "Draws kept per chain.");
ABSL_FLAG(int, burn_in, 1000, "Sampler steps discarded before the first draw.");
ABSL_FLAG(int, steps_between_draws, 5, "Sampler steps per draw.");
ABSL_FLAG(uint64_t, seed, 0,
          "Seed of the sample order, the weights w* and the chains.");
ABSL_FLAG(std::string, csv, "",
          "Also write the table to this CSV file (empty: do not).");
ABSL_FLAG(double, check_slope_within, 0,
          "When > 0: exit 1 unless |slope - 1| <= this and every measured "
          "rank equals its r.");
ABSL_FLAG(int, connect_timeout_s, 60, "Seconds to wait for the server.");
ABSL_FLAG(int, measurement_timeout_s, 1800, "Seconds to wait per measurement.");

namespace {

namespace v1 = ::curvd::v1;

// What is uploaded: the checkpoint's state dict and the shard, both
// safetensors.
struct StudyFiles {
  std::string state_dict;
  std::string shard;
};

// Appends `value` rounded to T as little-endian bytes (the machine's order:
// curvd runs on little-endian hosts) and returns the rounded value.
template <typename T>
double AppendRounded(double value, std::string* bytes) {
  const T rounded = static_cast<T>(value);
  bytes->append(reinterpret_cast<const char*>(&rounded), sizeof(T));
  return rounded;
}

// The model and shard described at the top, in T (float or double). The
// targets are computed in double from the rounded inputs and weights, so the
// only residual at w* is the targets' own rounding.
template <typename T>
absl::StatusOr<StudyFiles> MakeStudyFiles(int64_t parameters, int64_t samples,
                                          uint64_t seed,
                                          const std::string& dtype) {
  const int64_t inputs = parameters - 1;
  std::mt19937_64 random(seed);
  // torch.nn.Linear's initialisation, U(-1/sqrt(in), 1/sqrt(in)).
  std::uniform_real_distribution<double> init(-1 / std::sqrt(inputs),
                                              1 / std::sqrt(inputs));
  std::string weight_bytes;
  std::vector<double> weights(inputs);
  for (double& w : weights) w = AppendRounded<T>(init(random), &weight_bytes);
  std::string bias_bytes;
  const double bias = AppendRounded<T>(init(random), &bias_bytes);

  // Sample i is row order[i] of sqrt(d) C^T, C the orthonormal DCT-II matrix
  // of size d: feature k is sqrt(2) cos(pi (2 j + 1) k / (2 d)), and the
  // constant column k = 0 is the bias input. cos(pi m / (2 d)) has period 4d
  // in m, so one table of 4d values gives every entry exactly.
  std::vector<double> cosine(4 * parameters);
  for (int64_t m = 0; m < 4 * parameters; ++m) {
    cosine[m] = std::sqrt(2.0) * std::cos(M_PI * static_cast<double>(m) /
                                          (2.0 * parameters));
  }
  std::vector<int64_t> order(parameters);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), random);
  std::string input_bytes;
  input_bytes.reserve(samples * inputs * sizeof(T));
  std::string target_bytes;
  for (int64_t i = 0; i < samples; ++i) {
    const int64_t odd = 2 * order[i] + 1;
    double target = bias;
    for (int64_t k = 1; k <= inputs; ++k) {
      target += weights[k - 1] *
                AppendRounded<T>(cosine[(odd * k) % (4 * parameters)],
                                 &input_bytes);
    }
    AppendRounded<T>(target, &target_bytes);
  }

  const std::string weight_name = curvd::core::ZooLayerName(0);
  StudyFiles files;
  CURVD_ASSIGN_OR_RETURN(
      files.state_dict,
      curvd::core::SerializeSafetensors(
          {{weight_name + ".weight", dtype, {1, inputs}, weight_bytes},
           {weight_name + ".bias", dtype, {1}, bias_bytes}}));
  CURVD_ASSIGN_OR_RETURN(
      files.shard, curvd::core::SerializeSafetensors(
                       {{"inputs", dtype, {samples, inputs}, input_bytes},
                        {"targets", dtype, {samples, 1}, target_bytes}}));
  return files;
}

// Creates a measurement of checkpoint `parent` and waits for it; a measurement
// that does not succeed is an error carrying its state and message.
absl::StatusOr<v1::Measurement> Measure(curvd::client::Client& client,
                                        const std::string& parent,
                                        const v1::MeasurementSpec& spec,
                                        const std::string& what) {
  CURVD_ASSIGN_OR_RETURN(v1::Measurement created,
                         client.CreateMeasurement(parent, spec, ""));
  std::cerr << what << ": " << created.name() << std::endl;
  CURVD_ASSIGN_OR_RETURN(
      v1::Measurement done,
      client.WaitMeasurement(
          created.name(), nullptr,
          absl::Seconds(absl::GetFlag(FLAGS_measurement_timeout_s))));
  if (done.state() != v1::Measurement::SUCCEEDED) {
    return absl::AbortedError(absl::StrCat(
        what, " ", done.name(), " ", v1::Measurement::State_Name(done.state()),
        ": ", done.error_message()));
  }
  return done;
}

// One rank's measurements.
struct Row {
  int64_t r = 0;
  int64_t rank = 0;
  double lambda_max = 0;
  double step_size = 0;
  v1::LlcResult llc;
  double compute_seconds = 0;  // both measurements, on the server
};

// The least-squares line y = slope x + intercept (at least two distinct x).
struct Line {
  double slope = 0;
  double intercept = 0;
};

Line FitLine(const std::vector<double>& x, const std::vector<double>& y) {
  const double n = static_cast<double>(x.size());
  const double mean_x = std::accumulate(x.begin(), x.end(), 0.0) / n;
  const double mean_y = std::accumulate(y.begin(), y.end(), 0.0) / n;
  double sxy = 0, sxx = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxy += (x[i] - mean_x) * (y[i] - mean_y);
    sxx += (x[i] - mean_x) * (x[i] - mean_x);
  }
  Line line;
  line.slope = sxy / sxx;
  line.intercept = mean_y - line.slope * mean_x;
  return line;
}

double Seconds(const google::protobuf::Duration& d) {
  return static_cast<double>(d.seconds()) + d.nanos() * 1e-9;
}

// The ranks flag: positive, distinct, at most `parameters`; at least two.
absl::StatusOr<std::vector<int64_t>> ParseRanks(const std::string& text,
                                                int64_t parameters) {
  std::vector<int64_t> ranks;
  for (absl::string_view part :
       absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    int64_t r = 0;
    if (!absl::SimpleAtoi(part, &r) || r < 1 || r > parameters) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--ranks: '", part, "' is not an integer in [1, --parameters = ",
          parameters, "]"));
    }
    ranks.push_back(r);
  }
  std::sort(ranks.begin(), ranks.end());
  if (ranks.size() < 2 ||
      std::adjacent_find(ranks.begin(), ranks.end()) != ranks.end()) {
    return absl::InvalidArgumentError(
        "--ranks needs at least two distinct ranks to fit a line");
  }
  return ranks;
}

absl::Status RunStudy() {
  const int64_t parameters = absl::GetFlag(FLAGS_parameters);
  if (parameters < 2) {
    return absl::InvalidArgumentError("--parameters must be at least 2");
  }
  CURVD_ASSIGN_OR_RETURN(std::vector<int64_t> ranks,
                         ParseRanks(absl::GetFlag(FLAGS_ranks), parameters));
  const std::string precision_name = absl::GetFlag(FLAGS_precision);
  v1::Precision precision;
  if (!v1::Precision_Parse(
          absl::StrCat("PRECISION_", absl::AsciiStrToUpper(precision_name)),
          &precision) ||
      precision == v1::PRECISION_UNSPECIFIED ||
      precision == v1::PRECISION_TF32) {
    return absl::InvalidArgumentError("--precision must be float32 or float64");
  }
  v1::LlcSpec::Sampler sampler;
  if (!v1::LlcSpec::Sampler_Parse(
          absl::AsciiStrToUpper(absl::GetFlag(FLAGS_sampler)), &sampler) ||
      sampler == v1::LlcSpec::SAMPLER_UNSPECIFIED) {
    return absl::InvalidArgumentError(
        "--sampler must be sgld, rmsprop_sgld, sgnht or mala");
  }

  const uint64_t seed = absl::GetFlag(FLAGS_seed);
  const absl::Time start = absl::Now();
  absl::StatusOr<StudyFiles> files =
      precision == v1::PRECISION_FLOAT64
          ? MakeStudyFiles<double>(parameters, ranks.back(), seed, "F64")
          : MakeStudyFiles<float>(parameters, ranks.back(), seed, "F32");
  CURVD_RETURN_IF_ERROR(files.status());

  curvd::client::ConnectionOptions options;
  options.target = absl::GetFlag(FLAGS_server);
  curvd::client::Client client(options);
  CURVD_RETURN_IF_ERROR(client.WaitForConnected(
      absl::Seconds(absl::GetFlag(FLAGS_connect_timeout_s))));
  std::string run_id = absl::GetFlag(FLAGS_run);
  if (run_id.empty()) {
    run_id = absl::FormatTime("llc-rank-study-%Y%m%d-%H%M%S", absl::Now(),
                              absl::LocalTimeZone());
  }
  v1::ModelSpec model;
  model.mutable_zoo()->set_architecture("mlp");
  model.mutable_zoo()->add_layer_widths(parameters - 1);
  model.mutable_zoo()->add_layer_widths(1);
  CURVD_RETURN_IF_ERROR(
      client
          .CreateRun(run_id, model, "minimally singular models: llc vs rank")
          .status());
  v1::Checkpoint checkpoint;
  checkpoint.set_step(0);
  checkpoint.set_format(v1::CHECKPOINT_FORMAT_SAFETENSORS);
  CURVD_ASSIGN_OR_RETURN(*checkpoint.mutable_digest(),
                         client.UploadBlob(files->state_dict));
  CURVD_ASSIGN_OR_RETURN(v1::Checkpoint created,
                         client.CreateCheckpoint(run_id, checkpoint));
  CURVD_ASSIGN_OR_RETURN(const std::string shard_digest,
                         client.UploadBlob(files->shard));
  std::cerr << absl::StreamFormat(
                   "uploaded the checkpoint and a shard of %d samples (%.1f "
                   "MB) in %.1f s",
                   ranks.back(), files->shard.size() / 1e6,
                   absl::ToDoubleSeconds(absl::Now() - start))
            << std::endl;
  files->shard.clear();

  const double n_beta = absl::GetFlag(FLAGS_n_beta);
  const double gamma = absl::GetFlag(FLAGS_localization);
  const double step_scale = absl::GetFlag(FLAGS_step_scale);
  std::vector<Row> rows;
  for (int64_t r : ranks) {
    v1::MeasurementSpec spec;
    spec.set_shard_uri(
        absl::StrCat("blob://", shard_digest, "?limit=", r));
    spec.set_loss(v1::LOSS_FUNCTION_MSE);
    spec.set_precision(precision);
    spec.set_device(absl::GetFlag(FLAGS_device));
    spec.mutable_exact_hessian();
    const std::string what = absl::StrCat("r = ", r);
    CURVD_ASSIGN_OR_RETURN(
        v1::Measurement exact,
        Measure(client, created.name(), spec, what + ": exact_hessian"));
    Row row;
    row.r = r;
    row.rank = exact.exact_hessian().rank();
    for (double value : exact.exact_hessian().eigenvalues()) {
      row.lambda_max = std::max(row.lambda_max, std::abs(value));
    }
    row.step_size = step_scale / (n_beta * row.lambda_max + gamma);

    v1::LlcSpec* llc = spec.mutable_llc();
    llc->set_sampler(sampler);
    llc->set_step_size(row.step_size);
    llc->set_localization(gamma);
    llc->set_n_beta(n_beta);
    llc->set_n_beta_convention(v1::LlcSpec::GIVEN);
    llc->set_chains(absl::GetFlag(FLAGS_chains));
    llc->set_draws(absl::GetFlag(FLAGS_draws));
    llc->set_burn_in(absl::GetFlag(FLAGS_burn_in));
    llc->set_steps_between_draws(absl::GetFlag(FLAGS_steps_between_draws));
    llc->set_batch_size(r);  // full batch
    llc->set_seed(seed);
    CURVD_ASSIGN_OR_RETURN(v1::Measurement measured,
                           Measure(client, created.name(), spec, what + ": llc"));
    row.llc = measured.llc();
    row.compute_seconds =
        Seconds(exact.diagnostics().compute_duration()) +
        Seconds(measured.diagnostics().compute_duration());
    std::cerr << absl::StreamFormat(
                     "%s: rank %d, lambda_hat %.4g +- %.2g (%.1f s on %s)",
                     what, row.rank, row.llc.llc_mean(),
                     row.llc.llc_standard_error(), row.compute_seconds,
                     measured.diagnostics().device())
              << std::endl;
    rows.push_back(std::move(row));
  }

  std::cout << absl::StreamFormat(
      "llc rank study on %s, run %s: zoo MLP %d-1 (d = %d parameters), MSE, "
      "shard rows orthogonal (A A^T = d I), w* a global minimum\n"
      "%s, n_beta %g (given), gamma %g, eps = %g / (n_beta lambda_max + "
      "gamma), %d chains x %d draws, burn-in %d, a draw every %d steps, "
      "full batch, %s, seed %d\n\n",
      options.target, run_id, parameters - 1, parameters,
      absl::AsciiStrToLower(v1::LlcSpec::Sampler_Name(sampler)), n_beta, gamma,
      step_scale, absl::GetFlag(FLAGS_chains), absl::GetFlag(FLAGS_draws),
      absl::GetFlag(FLAGS_burn_in), absl::GetFlag(FLAGS_steps_between_draws),
      precision_name, seed);
  std::cout << absl::StreamFormat("%6s %6s %10s %9s %11s %9s %8s %7s %6s %8s\n",
                                  "r", "rank", "lambda_max", "eps",
                                  "lambda_hat", "SE", "rank/2", "ratio",
                                  "R-hat", "seconds");
  std::vector<double> log_half_rank, log_lambda;
  bool ranks_match = true;
  bool all_positive = true;
  for (const Row& row : rows) {
    const double half = row.rank / 2.0;
    std::cout << absl::StreamFormat(
        "%6d %6d %10.4g %9.3g %11.5g %9.2g %8.1f %7.4f %6.3f %8.1f\n", row.r,
        row.rank, row.lambda_max, row.step_size, row.llc.llc_mean(),
        row.llc.llc_standard_error(), half, row.llc.llc_mean() / half,
        row.llc.has_r_hat() ? row.llc.r_hat() : NAN, row.compute_seconds);
    for (const std::string& warning : row.llc.warnings()) {
      std::cout << "       WARNING (r = " << row.r << "): " << warning << "\n";
    }
    ranks_match = ranks_match && row.rank == row.r;
    all_positive = all_positive && row.rank > 0 && row.llc.llc_mean() > 0;
    if (row.rank > 0 && row.llc.llc_mean() > 0) {
      log_half_rank.push_back(std::log(half));
      log_lambda.push_back(std::log(row.llc.llc_mean()));
    }
  }
  if (!all_positive || log_half_rank.front() == log_half_rank.back()) {
    return absl::FailedPreconditionError(
        "a rank of 0, a lambda_hat <= 0 or a single distinct rank: no line "
        "to fit on log scales");
  }
  const Line fit = FitLine(log_half_rank, log_lambda);
  std::cout << absl::StreamFormat(
      "\nleast squares over %d points: log lambda_hat = %.4f * log(rank/2) "
      "%+.4f  (lambda_hat = %.4f * (rank/2)^%.4f)\n",
      log_half_rank.size(), fit.slope, fit.intercept, std::exp(fit.intercept),
      fit.slope);

  const std::string csv_path = absl::GetFlag(FLAGS_csv);
  if (!csv_path.empty()) {
    std::ofstream csv(csv_path);
    csv << "r,rank,lambda_max,step_size,lambda_hat,standard_error,std,"
           "r_hat,chains_diverged,warnings,slope,intercept\n";
    for (const Row& row : rows) {
      csv << absl::StrFormat("%d,%d,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%d,%d,"
                             "%.17g,%.17g\n",
                             row.r, row.rank, row.lambda_max, row.step_size,
                             row.llc.llc_mean(), row.llc.llc_standard_error(),
                             row.llc.llc_std(),
                             row.llc.has_r_hat() ? row.llc.r_hat() : NAN,
                             row.llc.chains_diverged(),
                             row.llc.warnings_size(), fit.slope, fit.intercept);
    }
    if (!csv.good()) {
      return absl::InternalError(absl::StrCat("writing ", csv_path));
    }
  }

  const double tolerance = absl::GetFlag(FLAGS_check_slope_within);
  if (tolerance > 0) {
    if (!ranks_match) {
      return absl::FailedPreconditionError(
          "check: a measured rank differs from its r");
    }
    if (std::abs(fit.slope - 1) > tolerance) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "check: slope %.4f is not within %g of 1", fit.slope, tolerance));
    }
    std::cout << absl::StreamFormat(
        "check: every rank equals r, slope %.4f within %g of 1\n", fit.slope,
        tolerance);
  }
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Measures lambda_hat (llc) and rank(H) (exact_hessian) on minimally "
      "singular linear models through curvd and fits log lambda_hat against "
      "log(rank/2).\nusage: curvd_llc_rank_study [--server host:port] [flags]");
  // absl's --help lists the flags of files named after the program; this
  // binary's file has another name.
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = [](absl::string_view file) {
    return absl::StrContains(file, "llc_rank_study");
  };
  absl::SetFlagsUsageConfig(usage);
  absl::ParseCommandLine(argc, argv);
  if (absl::Status status = RunStudy(); !status.ok()) {
    std::cerr << "curvd_llc_rank_study: " << status << "\n";
    return 1;
  }
  return 0;
}
