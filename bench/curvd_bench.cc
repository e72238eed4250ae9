// curvd_bench: times curvd on the workloads that bench/python/baseline.py
// exported (manifest.json, a TorchScript archive and a safetensors shard each),
// with the method of the Python baseline: a device synchronisation before and
// after every timed region, warm-up first, the median of repeats.
//
// Per workload:
//   engine   full-shard gradient and one HVP through core::Objective; Lanczos
//            top-k to the manifest's relative residual and Hutchinson with a
//            fixed number of probes through core::Engine::Measure (what a
//            device worker runs, model and shard already cached on the device);
//            where the manifest gives the workload an LLC run, SGLD llc
//            measurements with one chain and with the run's chains, and the
//            same two on the workload's zoo MLP state dict where it has one
//            (the chains in one batched pass instead of in turn);
//   gRPC     the same two measurements (and the multi-chain llc ones) through
//            a curvd server started in this
//            process on a loopback port, created and awaited with the C++
//            client (file:// URIs under the export directory, nothing
//            uploaded), timed from CreateMeasurement to the terminal state;
//   GOP      the empirical Fisher's gop measurement (issue 14: all metrics,
//            per layer) of the manifest's N samples on the archive and, where
//            the workload has one, its zoo MLP, at a smaller N of the
//            manifest's ladder when the estimate from the smallest exceeds
//            --gop_budget_seconds; the path used and the device's peak memory;
//   checks   curvd's gradient and H v against the ones Python computed
//            (W*.check.safetensors), and the top-k eigenvalues against a
//            float64 Lanczos of the engine on the same device (skipped when
//            its estimated cost exceeds --reference_budget_seconds).
// Writes everything to --out as JSON; bench/python/report.py makes the table.
#include <torch/cuda.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "bench/device_memory.h"
#include "client/curvd_client.h"
#include "common/status_macros.h"
#include "core/api/engine.h"
#include "core/api/measurement.h"
#include "core/api/safetensors.h"
#include "core/api/sources.h"
#include "core/data/model.h"
#include "core/data/shard.h"
#include "core/measurements/gop.h"
#include "core/objective/objective.h"
#include "nlohmann/json.hpp"
#include "server/disk_blob_store.h"
#include "server/server.h"
#include "server/server_config.h"
#include "server/spec_conversion.h"
#include "server/sqlite_store.h"

ABSL_FLAG(std::string, export_dir, "",
          "Directory written by bench/python/baseline.py (manifest.json, "
          "W*.pt, W*.safetensors, W*.check.safetensors).");
ABSL_FLAG(std::string, out, "",
          "Where to write the JSON results (default EXPORT_DIR/curvd.json).");
ABSL_FLAG(std::string, state_dir, "",
          "The in-process server's state directory, emptied first (default: "
          "curvd-bench-state beside --out).");
ABSL_FLAG(std::string, device, "auto",
          "\"auto\" (cuda:0 if any), cpu, cuda:N.");
ABSL_FLAG(std::string, workloads, "",
          "Comma list of workloads to run; empty: all in the manifest.");
ABSL_FLAG(bool, smoke, false, "Few repeats (the CPU smoke test).");
ABSL_FLAG(bool, grpc, true, "Also time the measurements through gRPC.");
ABSL_FLAG(bool, measurements, true,
          "Time Lanczos and Hutchinson (engine, gRPC) and run the float64 "
          "reference; false: gradient and HVP only (a quick check).");
ABSL_FLAG(bool, estimators_only, false,
          "Only Hutchinson, Hutch++ and the adaptive trace through the engine, "
          "once each without warm-up: issue 5's comparison of their standard "
          "errors, which does not depend on the device, on a machine without "
          "a GPU (where the timed rows would take hours). The report then "
          "lacks PyTorch's side.");
ABSL_FLAG(double, reference_budget_seconds, 45,
          "Skip a workload's float64 reference Lanczos when its estimated "
          "time exceeds this.");
ABSL_FLAG(double, reference_tolerance, 1e-6,
          "Relative residual of the float64 reference Lanczos.");
ABSL_FLAG(std::string, gop, "on",
          "The GOP rows (issue 14): \"on\" after the others, \"off\", or "
          "\"only\" (no other row, no gRPC server).");
ABSL_FLAG(double, gop_budget_seconds, 30,
          "A GOP row whose estimated time at the manifest's N exceeds this "
          "runs at the largest N of the manifest's ladder that fits (the "
          "smallest, its pilot, always runs).");

namespace {

namespace core = ::curvd::core;
namespace v1 = ::curvd::v1;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// A Lanczos measurement of the bench uses this seed, Hutchinson the other; the
// Python baseline uses its own generators (the answers agree, not the bits).
constexpr uint64_t kLanczosSeed = 3;
constexpr uint64_t kTraceSeed = 5;
constexpr int kWarmupProbes = 2;

// How often to run a timed region: `warmup` runs first, then repeats until
// `max_repeats`, or until `min_repeats` and `budget_s` seconds of repeats.
struct Plan {
  int warmup;
  int min_repeats;
  int max_repeats;
  double budget_s;
};

struct Settings {
  int top_k = 5;
  double tolerance = 1e-4;
  int max_iterations = 300;
  int probes = 100;
  // The LLC rows' SGLD (n_beta: the batch convention, B / ln B).
  double llc_step_size = 1e-5;
  double llc_localization = 100;
  uint64_t llc_seed = 9;
};

// A workload's LLC run (manifest.json's "llc"); n_beta is Python's B / ln B,
// which curvd's batch convention must reproduce.
struct LlcRun {
  int chains = 0;
  int draws = 0;
  int burn_in = 0;
  int64_t batch_size = 0;
  double n_beta = 0;
};

// A workload's GOP run (manifest.json's "gop"): N, the ladder N, N / 2, ...
// (descending, the smallest the pilot), the subset's seed and top-k.
struct GopRun {
  int64_t num_samples = 0;
  std::vector<int64_t> ladder;
  uint64_t seed = 0;
  int top_k = 10;
};

struct WorkloadSpec {
  std::string name;
  std::string description;
  std::string archive;
  std::string shard;
  int64_t num_samples = 0;  // the shard's
  int64_t micro_batch_size = 0;
  std::optional<GopRun> gop;  // none: no GOP rows
  std::optional<LlcRun> llc;  // none: no LLC rows
  // The same network as a zoo MLP with its exported state dict (manifest's
  // "zoo"); none: no zoo LLC rows.
  std::optional<core::ModelSource> zoo;
};

class Timer {
 public:
  explicit Timer(bool cuda) : cuda_(cuda) {}

  void Sync() const {
    if (cuda_) torch::cuda::synchronize();
  }

  // Times `fn` (which returns an error to stop) under `plan`; returns the
  // record {median_ms, times_ms, warmup, repeats}.
  absl::StatusOr<json> operator()(const std::function<absl::Status()>& fn,
                                  const Plan& plan) const {
    for (int i = 0; i < plan.warmup; ++i) CURVD_RETURN_IF_ERROR(fn());
    Sync();
    std::vector<double> times;
    const Clock::time_point start = Clock::now();
    auto elapsed = [&] {
      return std::chrono::duration<double>(Clock::now() - start).count();
    };
    while (static_cast<int>(times.size()) < plan.max_repeats &&
           (static_cast<int>(times.size()) < plan.min_repeats ||
            elapsed() < plan.budget_s)) {
      Sync();
      const Clock::time_point t0 = Clock::now();
      CURVD_RETURN_IF_ERROR(fn());
      Sync();
      times.push_back(
          std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    }
    std::vector<double> sorted = times;
    std::sort(sorted.begin(), sorted.end());
    const size_t n = sorted.size();
    const double median =
        n % 2 == 1 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
    return json{{"median_ms", median},
                {"times_ms", times},
                {"warmup", plan.warmup},
                {"repeats", static_cast<int>(n)}};
  }

 private:
  bool cuda_;
};

absl::StatusOr<json> ReadJson(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  json parsed = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    return absl::InvalidArgumentError(absl::StrCat(path, " is not JSON"));
  }
  return parsed;
}

absl::Status WriteJson(const std::string& path, const json& value) {
  std::ofstream out(path);
  out << value.dump(2) << "\n";
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

// ||a - b|| / ||b|| in float64.
double RelativeDifference(const torch::Tensor& a, const torch::Tensor& b) {
  const torch::Tensor a64 = a.to(torch::kCPU, torch::kFloat64);
  const torch::Tensor b64 = b.to(torch::kCPU, torch::kFloat64);
  return (a64 - b64).norm().item<double>() / b64.norm().item<double>();
}

// max_i |x_i - ref_i| / max(|ref_i|, 1e-3 |ref_0|): relative per eigenvalue,
// with a floor so that an eigenvalue near zero does not dominate.
double MaxRelativeDifference(const std::vector<double>& x,
                             const std::vector<double>& ref) {
  if (ref.empty() || x.size() != ref.size()) return NAN;
  const double floor = 1e-3 * std::abs(ref[0]);
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    worst = std::max(
        worst, std::abs(x[i] - ref[i]) / std::max(std::abs(ref[i]), floor));
  }
  return worst;
}

std::vector<double> Values(const std::vector<core::Eigenpair>& pairs) {
  std::vector<double> out;
  for (const core::Eigenpair& p : pairs) out.push_back(p.value);
  return out;
}

json SharpnessJson(const core::SharpnessResult& s, int64_t hvps) {
  std::vector<double> residuals;
  for (const core::Eigenpair& p : s.top) residuals.push_back(p.residual_norm);
  return json{{"values", Values(s.top)},
              {"residuals", residuals},
              {"iterations", s.iterations},
              {"hvps", hvps},
              {"converged", s.converged}};
}

// The result of kind M, which the request of `r` asked for.
template <typename M>
const decltype(M::result)& Of(const core::MeasurementResult& r) {
  return r.Find<M>()->result;
}

// The objective of every bench measurement: cross-entropy over the shard in
// the workload's micro-batches.
core::MeasurementRequest BaseRequest(const WorkloadSpec& w) {
  core::MeasurementRequest r;
  r.objective.loss = core::LossFunction::kCrossEntropy;
  r.objective.micro_batch_size = w.micro_batch_size;
  r.objective.precision = core::Precision::kFloat32;
  return r;
}

core::MeasurementRequest SharpnessRequest(const WorkloadSpec& w,
                                          const Settings& s,
                                          core::Precision precision,
                                          double tolerance) {
  core::MeasurementRequest r = BaseRequest(w);
  r.objective.precision = precision;
  core::LanczosOptions& lanczos = r.Add<core::SharpnessMethod>().options;
  lanczos.top_k = s.top_k;
  lanczos.bottom_k = 0;
  lanczos.max_iterations = s.max_iterations;
  lanczos.relative_tolerance = tolerance;
  lanczos.seed = kLanczosSeed;
  return r;
}

core::MeasurementRequest TraceRequest(const WorkloadSpec& w, int probes,
                                      core::Precision precision) {
  core::MeasurementRequest r = BaseRequest(w);
  r.objective.precision = precision;
  core::TraceOptions& trace = r.Add<core::HessianTraceMethod>().options;
  trace.distribution = core::ProbeDistribution::kRademacher;
  trace.min_probes = probes;
  trace.max_probes = probes;
  trace.target_relative_error = 0;  // exactly `probes` probes
  trace.seed = kTraceSeed;
  return r;
}

// One SLQ run of `steps` Lanczos steps (issue 5's speed row: against `steps`
// plain-PyTorch HVPs).
core::MeasurementRequest SlqRequest(const WorkloadSpec& w, int steps) {
  core::MeasurementRequest r = BaseRequest(w);
  core::SlqOptions& slq = r.Add<core::SpectralDensityMethod>().options;
  slq.runs = 1;
  slq.steps = steps;
  slq.seed = kTraceSeed;
  return r;
}

// Hutch++ spending exactly `hvps` products.
core::MeasurementRequest HutchppRequest(const WorkloadSpec& w, int hvps) {
  core::MeasurementRequest r = BaseRequest(w);
  core::HutchppOptions& hutchpp = r.Add<core::HutchppMethod>().options;
  hutchpp.max_hvps = hvps;
  hutchpp.target_relative_error = 0;
  hutchpp.seed = kTraceSeed;
  return r;
}

// The trace to `target_standard_error` (absolute; relative target off), the
// estimator choosing Hutch++ or Hutchinson from its first products (issue 17).
core::MeasurementRequest AdaptiveTraceRequest(const WorkloadSpec& w,
                                              double target_standard_error) {
  core::MeasurementRequest r = BaseRequest(w);
  core::AdaptiveTraceOptions& adaptive =
      r.Add<core::AdaptiveTraceMethod>().options;
  adaptive.target_standard_error = target_standard_error;
  adaptive.target_relative_error = 0;
  adaptive.seed = kTraceSeed;
  return r;
}

// An SGLD llc measurement of the workload's LLC run with `chains` chains, at
// the manifest's step size, localization and seed, n_beta by the batch
// convention.
core::MeasurementRequest LlcRequest(const WorkloadSpec& w, const Settings& s,
                                    int chains) {
  core::MeasurementRequest r = BaseRequest(w);
  core::LlcOptions& llc = r.Add<core::LlcMethod>().options;
  llc.sampler = core::LlcSampler::kSgld;
  llc.step_size = s.llc_step_size;
  llc.localization = s.llc_localization;
  llc.n_beta_convention = core::NBetaConvention::kBatch;
  llc.chains = chains;
  llc.draws = w.llc->draws;
  llc.burn_in = w.llc->burn_in;
  llc.batch_size = w.llc->batch_size;
  llc.seed = s.llc_seed;
  return r;
}

// The proto spec of `r` on the workload's shard: the server's effective spec
// of it, so that the gRPC path runs exactly what the engine ran.
v1::MeasurementSpec SpecOf(const WorkloadSpec& w,
                           const core::MeasurementRequest& r) {
  v1::MeasurementSpec spec;
  spec.set_shard_uri("file://" + w.shard);
  return curvd::server::EffectiveSpec(spec, r);
}

// Everything a workload's benchmark needs.
struct Context {
  const Settings& settings;
  const Timer& timer;
  Plan quick;
  Plan slow;
  std::string device;
  std::vector<std::string> data_roots;
  std::string export_dir;
  core::Engine& engine;
  curvd::client::Client* client;  // null without --grpc
};

core::ModelSource ModelSourceOf(const WorkloadSpec& w) {
  core::ModelSource source;
  source.kind = core::ModelSource::Kind::kTorchScript;
  source.archive_path = w.archive;
  source.cache_key = "bench:" + w.archive;
  return source;
}

// H v of one vector, the last of each timing.
struct Products {
  torch::Tensor eager;     // a fresh double backward per call
  torch::Tensor retained;  // through the retained graphs
};

// Times objective.Hvp(v) eagerly as out[key] (PyTorch's double backward:
// what the first product at a point costs), then through retained graphs as
// out[key + "_retained"] (issue 17: what every later probe, Lanczos and SLQ
// step pays; the warm-up builds the graphs and records the device graph where
// the objective can), with how they ran and the micro-batch. The graphs are
// freed again.
absl::StatusOr<Products> TimeProducts(const Context& ctx,
                                      core::Objective& objective,
                                      const torch::Tensor& v,
                                      const std::string& key, json& out) {
  Products products;
  torch::Tensor hv;
  auto run_hvp = [&]() -> absl::Status {
    CURVD_ASSIGN_OR_RETURN(hv, objective.Hvp(v));
    return absl::OkStatus();
  };
  CURVD_ASSIGN_OR_RETURN(out[key], ctx.timer(run_hvp, ctx.quick));
  products.eager = hv;
  objective.set_retain_graphs(true);
  json& retained = out[key + "_retained"];
  CURVD_ASSIGN_OR_RETURN(retained, ctx.timer(run_hvp, ctx.quick));
  retained["hvp_graph"] = objective.hvp_graph_note();
  retained["micro_batch_size"] = objective.micro_batch_size();
  objective.set_retain_graphs(false);
  products.retained = hv;
  return products;
}

// Issue 17's TF32 rows, for a request that asks for TF32: one HVP in TF32
// (matmuls and convolutions), eager (PyTorch's TF32 double backward is its
// baseline) and through retained graphs, on the whole shard in one
// micro-batch (a request's default: curvd halves it only when it does not
// fit), with the retained product's relative difference from the IEEE
// float32 one of `v` (`hvp_tf32_retained.rel_diff_vs_ieee`). TF32 is on only
// inside (Engine::Create turned it off for the process).
absl::Status BenchTf32Hvp(const Context& ctx, core::Model& model,
                          const torch::Tensor& inputs,
                          const torch::Tensor& targets, const torch::Tensor& v,
                          json& out) {
  if (!torch::Device(ctx.device).is_cuda()) return absl::OkStatus();
  struct Tf32On {
    Tf32On() { Set(true); }
    ~Tf32On() { Set(false); }
    static void Set(bool on) {
      at::globalContext().setAllowTF32CuBLAS(on);
      at::globalContext().setAllowTF32CuDNN(on);
    }
  } tf32;
  CURVD_ASSIGN_OR_RETURN(
      core::Objective objective,
      core::Objective::Create(&model, inputs, targets,
                              core::LossFunction::kCrossEntropy,
                              /*micro_batch_size=*/0));
  CURVD_ASSIGN_OR_RETURN(const Products hv,
                         TimeProducts(ctx, objective, v, "hvp_tf32", out));
  Tf32On::Set(false);
  CURVD_ASSIGN_OR_RETURN(const torch::Tensor ieee, objective.Hvp(v));
  out["hvp_tf32_retained"]["rel_diff_vs_ieee"] =
      RelativeDifference(hv.retained, ieee);
  return absl::OkStatus();
}

// Gradient and one HVP through core::Objective, and both compared with what
// Python computed.
absl::Status BenchObjective(const Context& ctx, const WorkloadSpec& w,
                            json& out) {
  const torch::Device device(ctx.device);
  CURVD_ASSIGN_OR_RETURN(std::unique_ptr<core::Model> model,
                         core::LoadModel(ModelSourceOf(w)));
  model->To(device, torch::kFloat32);
  model->SetTrainMode(false);
  CURVD_ASSIGN_OR_RETURN(
      core::ShardSpec spec,
      core::ParseShardUri("file://" + w.shard, ctx.data_roots));
  CURVD_ASSIGN_OR_RETURN(core::Shard shard, core::LoadShard(spec));
  torch::Tensor inputs = shard.inputs.to(device, torch::kFloat32);
  torch::Tensor targets = shard.targets.to(device);
  CURVD_ASSIGN_OR_RETURN(
      core::Objective objective,
      core::Objective::Create(model.get(), inputs, targets,
                              core::LossFunction::kCrossEntropy,
                              w.micro_batch_size));
  out["num_parameters"] = objective.num_parameters();
  out["num_samples"] = objective.num_samples();
  out["micro_batch_size"] = objective.micro_batch_size();
  CURVD_ASSIGN_OR_RETURN(out["loss"], objective.Loss());

  torch::Tensor gradient;
  auto run_gradient = [&]() -> absl::Status {
    CURVD_ASSIGN_OR_RETURN(gradient, objective.Gradient());
    return absl::OkStatus();
  };
  CURVD_ASSIGN_OR_RETURN(out["gradient"], ctx.timer(run_gradient, ctx.quick));

  // The probe vector Python used, so that H v can be compared; a seeded
  // Gaussian one if the check file is missing.
  const std::string check_path =
      absl::StrCat(ctx.export_dir, "/", w.name, ".check.safetensors");
  torch::Tensor v, python_hv, python_gradient;
  if (std::filesystem::exists(check_path)) {
    CURVD_ASSIGN_OR_RETURN(std::vector<core::SafetensorsTensor> tensors,
                           core::ReadSafetensorsFile(check_path));
    for (const core::SafetensorsTensor& t : tensors) {
      CURVD_ASSIGN_OR_RETURN(torch::Tensor value,
                             core::TensorFromSafetensors(t));
      if (t.name == "v") v = value;
      if (t.name == "hv") python_hv = value;
      if (t.name == "gradient") python_gradient = value;
    }
  }
  if (!v.defined()) {
    torch::manual_seed(7);
    v = torch::randn({objective.num_parameters()});
  }
  v = v.to(objective.vector_options());
  CURVD_ASSIGN_OR_RETURN(const Products hv,
                         TimeProducts(ctx, objective, v, "hvp", out));
  CURVD_RETURN_IF_ERROR(BenchTf32Hvp(ctx, *model, inputs, targets, v, out));
  json check;
  if (python_gradient.defined() &&
      python_gradient.numel() == gradient.numel()) {
    check["gradient_rel_diff"] = RelativeDifference(gradient, python_gradient);
  }
  if (python_hv.defined() && python_hv.numel() == hv.eager.numel()) {
    check["hvp_rel_diff"] = RelativeDifference(hv.eager, python_hv);
    check["hvp_retained_rel_diff"] = RelativeDifference(hv.retained, python_hv);
  }
  if (check.empty()) check["note"] = "no Python check file";
  out["check_vs_pytorch"] = check;
  return absl::OkStatus();
}

// `request` on `model` and the workload's shard through Engine::Measure.
absl::StatusOr<core::MeasurementResult> Measure(
    const Context& ctx, const core::ModelSource& model, const WorkloadSpec& w,
    const core::MeasurementRequest& request) {
  // Resolved again for each call, as a device worker resolves each job.
  CURVD_ASSIGN_OR_RETURN(
      core::ShardSpec shard,
      core::ParseShardUri("file://" + w.shard, ctx.data_roots));
  return ctx.engine.Measure(model, shard, request, core::Progress{});
}

// `request` on the workload's TorchScript archive.
absl::StatusOr<core::MeasurementResult> Measure(
    const Context& ctx, const WorkloadSpec& w,
    const core::MeasurementRequest& request) {
  return Measure(ctx, ModelSourceOf(w), w, request);
}

// Hutchinson with the manifest's probes and Hutch++ with half as many HVPs,
// through Engine::Measure: their times, estimates and standard errors, and
// Hutch++'s account of whether its sketch paid off (issue 5); then the
// adaptive trace to the standard error Hutchinson reached (issue 17).
absl::Status BenchTraceEstimators(const Context& ctx, const WorkloadSpec& w,
                                  json& out) {
  const core::MeasurementRequest trace =
      TraceRequest(w, ctx.settings.probes, core::Precision::kFloat32);
  core::MeasurementResult result;
  auto run_trace = [&]() -> absl::Status {
    CURVD_ASSIGN_OR_RETURN(result, Measure(ctx, w, trace));
    return absl::OkStatus();
  };
  CURVD_ASSIGN_OR_RETURN(json timing, ctx.timer(run_trace, ctx.slow));
  timing["trace"] = Of<core::HessianTraceMethod>(result).trace;
  timing["standard_error"] = Of<core::HessianTraceMethod>(result).standard_error;
  timing["probes"] = Of<core::HessianTraceMethod>(result).probes;
  timing["hvps"] = result.hvps;
  timing["compute_seconds"] = result.compute_seconds;
  timing["hvp_graph"] = result.hvp_graph;
  out["hutchinson_engine"] = timing;
  const double hutchinson_standard_error =
      Of<core::HessianTraceMethod>(result).standard_error;

  const core::MeasurementRequest hutchpp =
      HutchppRequest(w, ctx.settings.probes / 2);
  auto run_hutchpp = [&]() -> absl::Status {
    CURVD_ASSIGN_OR_RETURN(result, Measure(ctx, w, hutchpp));
    return absl::OkStatus();
  };
  CURVD_ASSIGN_OR_RETURN(timing, ctx.timer(run_hutchpp, ctx.slow));
  timing["trace"] = Of<core::HutchppMethod>(result).trace;
  timing["standard_error"] = Of<core::HutchppMethod>(result).standard_error;
  timing["hvps"] = result.hvps;
  timing["sketch_size"] = Of<core::HutchppMethod>(result).sketch_size;
  timing["sketch_frobenius_fraction"] = Of<core::HutchppMethod>(result).sketch_frobenius_fraction;
  timing["hutchinson_standard_error_same_hvps"] =
      Of<core::HutchppMethod>(result).hutchinson_standard_error_same_hvps;
  timing["compute_seconds"] = result.compute_seconds;
  timing["hvp_graph"] = result.hvp_graph;
  out["hutchpp_engine"] = timing;

  // Equal terms give an SE of 0, which no estimator can be asked for.
  if (!(hutchinson_standard_error > 0)) {
    out["adaptive_trace_engine"] = {
        {"skipped", absl::StrCat("Hutchinson's standard error is ",
                                 hutchinson_standard_error)}};
    return absl::OkStatus();
  }
  const core::MeasurementRequest adaptive =
      AdaptiveTraceRequest(w, hutchinson_standard_error);
  auto run_adaptive = [&]() -> absl::Status {
    CURVD_ASSIGN_OR_RETURN(result, Measure(ctx, w, adaptive));
    return absl::OkStatus();
  };
  CURVD_ASSIGN_OR_RETURN(timing, ctx.timer(run_adaptive, ctx.slow));
  const core::AdaptiveTraceResult& a = Of<core::AdaptiveTraceMethod>(result);
  timing["target_standard_error"] = hutchinson_standard_error;
  timing["trace"] = a.trace;
  timing["standard_error"] = a.standard_error;
  timing["method"] = a.method;
  timing["decision"] = a.decision;
  timing["sketch_size"] = a.sketch_size;
  timing["probes"] = a.probes;
  timing["stop_reason"] = a.stop_reason;
  timing["sketch_frobenius_fraction"] = a.sketch_frobenius_fraction;
  timing["hvps"] = result.hvps;
  timing["compute_seconds"] = result.compute_seconds;
  out["adaptive_trace_engine"] = timing;
  return absl::OkStatus();
}

// What the LLC rows keep of an llc result, engine's or gRPC's.
struct LlcSummary {
  int chains = 0;
  int64_t steps = 0;  // per chain
  double llc_mean = 0;
  double llc_standard_error = 0;
  double n_beta = 0;
  int64_t batch_size = 0;
  int chains_diverged = 0;
};

LlcSummary SummaryOf(const core::LlcResult& r) {
  return {static_cast<int>(r.chains.size()),
          r.steps,
          r.llc_mean,
          r.llc_standard_error,
          r.n_beta,
          r.batch_size,
          r.chains_diverged};
}

LlcSummary SummaryOf(const v1::LlcResult& r) {
  return {r.chains_size(),        r.steps(),  r.llc_mean(),
          r.llc_standard_error(), r.n_beta(), r.batch_size(),
          r.chains_diverged()};
}

// `timing` (a Timer record of the whole measurement) with the summary and the
// rates: one chain's step time (median / steps) and the steps per second of
// all chains together (chains x steps / median).
json LlcJson(json timing, const LlcSummary& s, double compute_seconds) {
  const double seconds = timing["median_ms"].get<double>() / 1e3;
  timing["chains"] = s.chains;
  timing["steps"] = s.steps;
  timing["step_ms"] = 1e3 * seconds / static_cast<double>(s.steps);
  timing["steps_per_second"] =
      static_cast<double>(s.chains * s.steps) / seconds;
  timing["llc"] = s.llc_mean;
  timing["llc_standard_error"] = s.llc_standard_error;
  timing["n_beta"] = s.n_beta;
  timing["batch_size"] = s.batch_size;
  timing["chains_diverged"] = s.chains_diverged;
  timing["compute_seconds"] = compute_seconds;
  return timing;
}

// The workload's LLC run on `model` through Engine::Measure, model and shard
// cached (one untimed measurement loads them first): with one chain
// (PREFIX_engine_one_chain) and with the run's chains (PREFIX_engine), each
// with the loss at w* on the whole shard.
absl::Status BenchLlcEngine(const Context& ctx, const WorkloadSpec& w,
                            const core::ModelSource& model,
                            const std::string& prefix, json& out) {
  CURVD_RETURN_IF_ERROR(
      Measure(ctx, model, w,
              TraceRequest(w, kWarmupProbes, core::Precision::kFloat32))
          .status());
  for (const auto& [suffix, chains] :
       {std::pair<const char*, int>{"_engine_one_chain", 1},
        std::pair<const char*, int>{"_engine", w.llc->chains}}) {
    const core::MeasurementRequest request =
        LlcRequest(w, ctx.settings, chains);
    core::MeasurementResult result;
    auto run = [&]() -> absl::Status {
      CURVD_ASSIGN_OR_RETURN(result, Measure(ctx, model, w, request));
      return absl::OkStatus();
    };
    CURVD_ASSIGN_OR_RETURN(json timing, ctx.timer(run, ctx.slow));
    json& row = out[prefix + suffix];
    row = LlcJson(std::move(timing), SummaryOf(Of<core::LlcMethod>(result)),
                  result.compute_seconds);
    row["loss"] = result.loss;
  }
  return absl::OkStatus();
}

// The zoo model's loss at w* against the TorchScript archive's (the same
// weights, so the same function): relative difference of the C-chain rows'
// losses, agreeing within kZooLossTolerance.
constexpr double kZooLossTolerance = 1e-6;

json ZooLossCheck(const json& out) {
  const double archive = out["llc_engine"]["loss"].get<double>();
  const double zoo = out["llc_zoo_engine"]["loss"].get<double>();
  const double rel_diff = std::abs(zoo - archive) / std::abs(archive);
  return json{{"torchscript", archive},
              {"zoo", zoo},
              {"rel_diff", rel_diff},
              {"tolerance", kZooLossTolerance},
              {"agree", rel_diff <= kZooLossTolerance}};
}

// Whether every llc row of PREFIX (PREFIX_engine_one_chain, PREFIX_engine,
// PREFIX_grpc; those present) has a finite estimate and standard error (NaN
// turns into null in the JSON), and whether the engine, gRPC and Python (the
// manifest) agree on n_beta to 1e-12.
json LlcCheck(const WorkloadSpec& w, const json& out,
              const std::string& prefix) {
  bool finite = true;
  bool agree = true;
  json n_betas{{"manifest", w.llc->n_beta}};
  for (const std::string& key :
       {prefix + "_engine_one_chain", prefix + "_engine", prefix + "_grpc"}) {
    if (!out.contains(key)) continue;
    const json& row = out[key];
    finite = finite && row["llc"].is_number() &&
             std::isfinite(row["llc"].get<double>()) &&
             row["llc_standard_error"].is_number() &&
             std::isfinite(row["llc_standard_error"].get<double>());
    const double n_beta = row["n_beta"].get<double>();
    n_betas[key] = n_beta;
    agree = agree &&
            std::abs(n_beta - w.llc->n_beta) <= 1e-12 * std::abs(w.llc->n_beta);
  }
  return json{{"finite", finite}, {"n_beta", n_betas}, {"n_beta_agree", agree}};
}

// Lanczos, the trace estimators and SLQ through Engine::Measure, model and
// shard cached.
absl::Status BenchEngine(const Context& ctx, const WorkloadSpec& w, json& out) {
  CURVD_RETURN_IF_ERROR(
      Measure(ctx, w, TraceRequest(w, kWarmupProbes, core::Precision::kFloat32))
          .status());

  const core::MeasurementRequest lanczos = SharpnessRequest(
      w, ctx.settings, core::Precision::kFloat32, ctx.settings.tolerance);
  core::MeasurementResult result;
  auto run_lanczos = [&]() -> absl::Status {
    CURVD_ASSIGN_OR_RETURN(result, Measure(ctx, w, lanczos));
    return absl::OkStatus();
  };
  CURVD_ASSIGN_OR_RETURN(json timing, ctx.timer(run_lanczos, ctx.slow));
  timing.update(SharpnessJson(Of<core::SharpnessMethod>(result), result.hvps));
  timing["compute_seconds"] = result.compute_seconds;
  timing["hvp_graph"] = result.hvp_graph;
  out["lanczos_engine"] = timing;
  if (torch::Device(ctx.device).is_cuda()) {
    // Issue 17: the same Lanczos with TF32 requested, on the whole shard in
    // one micro-batch (a request's default); report.py compares its
    // eigenvalues with the float64 reference (or, where that was skipped,
    // with the float32 ones).
    core::MeasurementRequest tf32 = SharpnessRequest(
        w, ctx.settings, core::Precision::kTf32, ctx.settings.tolerance);
    tf32.objective.micro_batch_size = 0;
    auto run_tf32 = [&]() -> absl::Status {
      CURVD_ASSIGN_OR_RETURN(result, Measure(ctx, w, tf32));
      return absl::OkStatus();
    };
    CURVD_ASSIGN_OR_RETURN(timing, ctx.timer(run_tf32, ctx.slow));
    timing.update(
        SharpnessJson(Of<core::SharpnessMethod>(result), result.hvps));
    timing["hvp_graph"] = result.hvp_graph;
    timing["micro_batch_size"] = result.micro_batch_size;
    out["lanczos_tf32_engine"] = timing;
  }

  CURVD_RETURN_IF_ERROR(BenchTraceEstimators(ctx, w, out));

  // Issue 5: one 100-step SLQ run against 100 plain HVPs.
  const core::MeasurementRequest slq = SlqRequest(w, ctx.settings.probes);
  auto run_slq = [&]() -> absl::Status {
    CURVD_ASSIGN_OR_RETURN(result, Measure(ctx, w, slq));
    return absl::OkStatus();
  };
  CURVD_ASSIGN_OR_RETURN(timing, ctx.timer(run_slq, ctx.slow));
  timing["hvps"] = result.hvps;
  timing["steps"] = Of<core::SpectralDensityMethod>(result).runs.empty() ? 0
                                                : Of<core::SpectralDensityMethod>(result).runs[0].steps;
  timing["compute_seconds"] = result.compute_seconds;
  timing["hvp_graph"] = result.hvp_graph;
  out["slq_engine"] = timing;
  if (w.llc) {
    CURVD_RETURN_IF_ERROR(BenchLlcEngine(ctx, w, ModelSourceOf(w), "llc", out));
    if (w.zoo) {
      CURVD_RETURN_IF_ERROR(BenchLlcEngine(ctx, w, *w.zoo, "llc_zoo", out));
    }
  }
  return absl::OkStatus();
}

// One measurement through gRPC: create, wait for the terminal state.
absl::StatusOr<v1::Measurement> MeasureOverGrpc(
    curvd::client::Client& client, const std::string& checkpoint,
    const v1::MeasurementSpec& spec) {
  CURVD_ASSIGN_OR_RETURN(v1::Measurement created,
                         client.CreateMeasurement(checkpoint, spec, ""));
  CURVD_ASSIGN_OR_RETURN(
      v1::Measurement done,
      client.WaitMeasurement(created.name(), nullptr, absl::Minutes(10)));
  if (done.state() != v1::Measurement::SUCCEEDED) {
    return absl::InternalError(absl::StrCat(
        done.name(), " ended in state ",
        v1::Measurement::State_Name(done.state()), ": ", done.error_message()));
  }
  return done;
}

double ComputeSeconds(const v1::Measurement& m) {
  const auto& d = m.diagnostics().compute_duration();
  return static_cast<double>(d.seconds()) + 1e-9 * d.nanos();
}

// A run RUN_ID of `model` on the server with one checkpoint (step 0) of
// `format` at file://PATH, and one small Hutchinson measurement of it that
// loads model and shard into the server's engine, as the engine's warm-up;
// returns the checkpoint's name.
absl::StatusOr<std::string> GrpcCheckpoint(const WorkloadSpec& w,
                                           curvd::client::Client& client,
                                           const std::string& run_id,
                                           const v1::ModelSpec& model,
                                           v1::CheckpointFormat format,
                                           const std::string& path) {
  CURVD_RETURN_IF_ERROR(client.CreateRun(run_id, model, w.name).status());
  v1::Checkpoint checkpoint;
  checkpoint.set_step(0);
  checkpoint.set_format(format);
  checkpoint.set_uri("file://" + path);
  CURVD_ASSIGN_OR_RETURN(v1::Checkpoint created,
                         client.CreateCheckpoint(run_id, checkpoint));
  CURVD_RETURN_IF_ERROR(
      MeasureOverGrpc(
          client, created.name(),
          SpecOf(w, TraceRequest(w, kWarmupProbes, core::Precision::kFloat32)))
          .status());
  return created.name();
}

// The engine's multi-chain llc request (PREFIX_engine) as a measurement of
// `checkpoint`: PREFIX_grpc.
absl::Status BenchLlcGrpc(const Context& ctx, const WorkloadSpec& w,
                          const std::string& checkpoint,
                          const std::string& prefix, json& out) {
  const v1::MeasurementSpec llc =
      SpecOf(w, LlcRequest(w, ctx.settings, w.llc->chains));
  v1::Measurement m;
  auto run_llc = [&]() -> absl::Status {
    CURVD_ASSIGN_OR_RETURN(m, MeasureOverGrpc(*ctx.client, checkpoint, llc));
    return absl::OkStatus();
  };
  CURVD_ASSIGN_OR_RETURN(json timing, ctx.timer(run_llc, ctx.slow));
  out[prefix + "_grpc"] =
      LlcJson(std::move(timing), SummaryOf(m.llc()), ComputeSeconds(m));
  return absl::OkStatus();
}

// The zoo model of `w` through gRPC: a run with the zoo spec, the exported
// state dict as its safetensors checkpoint, and the C-chain llc measurement
// (llc_zoo_grpc).
absl::Status BenchZooGrpc(const Context& ctx, const WorkloadSpec& w,
                          json& out) {
  v1::ModelSpec model;
  v1::ZooModel& zoo = *model.mutable_zoo();
  zoo.set_architecture(w.zoo->zoo.architecture);
  for (int64_t width : w.zoo->zoo.layer_widths) zoo.add_layer_widths(width);
  zoo.set_activation(w.zoo->zoo.activation);
  CURVD_ASSIGN_OR_RETURN(
      std::string checkpoint,
      GrpcCheckpoint(
          w, *ctx.client,
          absl::AsciiStrToLower(absl::StrCat("bench-", w.name, "-zoo")), model,
          v1::CHECKPOINT_FORMAT_SAFETENSORS, w.zoo->state_dict_path));
  return BenchLlcGrpc(ctx, w, checkpoint, "llc_zoo", out);
}

absl::Status BenchGrpc(const Context& ctx, const WorkloadSpec& w, json& out) {
  curvd::client::Client& client = *ctx.client;
  v1::ModelSpec model;
  model.set_archive_uri("file://" + w.archive);
  CURVD_ASSIGN_OR_RETURN(
      std::string checkpoint,
      GrpcCheckpoint(w, client,
                     absl::AsciiStrToLower(absl::StrCat("bench-", w.name)),
                     model, v1::CHECKPOINT_FORMAT_TORCHSCRIPT, w.archive));

  const v1::MeasurementSpec lanczos =
      SpecOf(w, SharpnessRequest(w, ctx.settings, core::Precision::kFloat32,
                                 ctx.settings.tolerance));
  const v1::MeasurementSpec trace = SpecOf(
      w, TraceRequest(w, ctx.settings.probes, core::Precision::kFloat32));
  v1::Measurement m;
  auto run_lanczos = [&]() -> absl::Status {
    CURVD_ASSIGN_OR_RETURN(m, MeasureOverGrpc(client, checkpoint, lanczos));
    return absl::OkStatus();
  };
  auto run_trace = [&]() -> absl::Status {
    CURVD_ASSIGN_OR_RETURN(m, MeasureOverGrpc(client, checkpoint, trace));
    return absl::OkStatus();
  };

  CURVD_ASSIGN_OR_RETURN(json timing, ctx.timer(run_lanczos, ctx.slow));
  std::vector<double> values;
  for (const v1::Eigenpair& p : m.sharpness().top())
    values.push_back(p.value());
  timing["values"] = values;
  timing["iterations"] = m.sharpness().iterations();
  timing["hvps"] = m.diagnostics().hvps();
  timing["converged"] = m.sharpness().converged();
  timing["compute_seconds"] = ComputeSeconds(m);
  out["lanczos_grpc"] = timing;

  CURVD_ASSIGN_OR_RETURN(timing, ctx.timer(run_trace, ctx.slow));
  timing["trace"] = m.hessian_trace().trace();
  timing["standard_error"] = m.hessian_trace().standard_error();
  timing["probes"] = m.hessian_trace().probes();
  timing["hvps"] = m.diagnostics().hvps();
  timing["compute_seconds"] = ComputeSeconds(m);
  out["hutchinson_grpc"] = timing;

  if (!w.llc) return absl::OkStatus();
  CURVD_RETURN_IF_ERROR(BenchLlcGrpc(ctx, w, checkpoint, "llc", out));
  return w.zoo ? BenchZooGrpc(ctx, w, out) : absl::OkStatus();
}

// The top-k eigenvalues by a float64 Lanczos of the engine to a tighter
// tolerance, when it fits the time budget.
absl::Status BenchReference(const Context& ctx, const WorkloadSpec& w,
                            json& out) {
  json ref{{"kind", "curvd engine, float64, same device"},
           {"relative_tolerance", absl::GetFlag(FLAGS_reference_tolerance)}};
  const core::MeasurementRequest warm =
      TraceRequest(w, kWarmupProbes, core::Precision::kFloat64);
  CURVD_RETURN_IF_ERROR(Measure(ctx, w, warm).status());  // loads
  const Clock::time_point t0 = Clock::now();
  CURVD_RETURN_IF_ERROR(Measure(ctx, w, warm).status());
  ctx.timer.Sync();
  const double probe_s =
      std::chrono::duration<double>(Clock::now() - t0).count();
  // A loss and kWarmupProbes HVPs; a loss costs about half an HVP.
  const double hvp_s = probe_s / (kWarmupProbes + 0.5);
  const int f32_hvps = out["lanczos_engine"].value("hvps", 0);
  const int expected_hvps =
      std::min(ctx.settings.max_iterations, 2 * f32_hvps + 10);
  const double estimate_s = hvp_s * expected_hvps;
  ref["float64_hvp_ms"] = 1e3 * hvp_s;
  ref["estimated_seconds"] = estimate_s;
  if (estimate_s > absl::GetFlag(FLAGS_reference_budget_seconds)) {
    ref["skipped"] = absl::StrFormat(
        "estimated %.0f s (%d HVPs at %.0f ms) > --reference_budget_seconds",
        estimate_s, expected_hvps, 1e3 * hvp_s);
    out["reference"] = ref;
    return absl::OkStatus();
  }
  const Clock::time_point t1 = Clock::now();
  CURVD_ASSIGN_OR_RETURN(
      core::MeasurementResult result,
      Measure(ctx, w,
              SharpnessRequest(w, ctx.settings, core::Precision::kFloat64,
                               absl::GetFlag(FLAGS_reference_tolerance))));
  ctx.timer.Sync();
  ref["seconds"] = std::chrono::duration<double>(Clock::now() - t1).count();
  ref.update(SharpnessJson(Of<core::SharpnessMethod>(result), result.hvps));
  const std::vector<double> reference = Values(Of<core::SharpnessMethod>(result).top);
  ref["engine_max_rel_diff"] = MaxRelativeDifference(
      out["lanczos_engine"]["values"].get<std::vector<double>>(), reference);
  if (out.contains("lanczos_grpc")) {
    ref["grpc_max_rel_diff"] = MaxRelativeDifference(
        out["lanczos_grpc"]["values"].get<std::vector<double>>(), reference);
  }
  out["reference"] = ref;
  return absl::OkStatus();
}

// The GOP request of the bench: the empirical Fisher (per-sample,
// uncentred) of `n` samples drawn by the run's seed, every metric, per layer,
// the run's top-k, no eigenvectors (the baseline computes none).
core::MeasurementRequest GopRequest(const WorkloadSpec& w, int64_t n) {
  core::MeasurementRequest r = BaseRequest(w);
  core::GopOptions& gop = r.Add<core::GopMethod>().options;
  gop.variant = core::GopVariant::kEmpiricalFisher;
  gop.num_samples = n;
  gop.seed = w.gop->seed;
  gop.per_layer = true;
  gop.top_k = w.gop->top_k;
  gop.eigenvectors = false;
  return r;
}

// [sum of the indices, sum of (position + 1) * index] of the subset of `n`
// samples curvd measures: baseline.py's indices_checksum of its own subset
// must equal it for the two to compare.
std::vector<int64_t> GopIndicesChecksum(const WorkloadSpec& w, int64_t n) {
  core::GopOptions options;
  options.num_samples = n;
  options.seed = w.gop->seed;
  const std::vector<int64_t> indices =
      core::GopSampleIndices(options, w.num_samples);
  int64_t sum = 0;
  int64_t weighted = 0;
  for (size_t k = 0; k < indices.size(); ++k) {
    sum += indices[k];
    weighted += static_cast<int64_t>(k + 1) * indices[k];
  }
  return {sum, weighted};
}

// The estimated time of a generic-path gop measurement of `n` samples from
// one of `n0` that took `seconds`: about proportional to the per-sample
// gradients it computes (core::GopGenericGradientCount; the pilot's fixed
// costs make it an overestimate).
double GenericGopEstimateSeconds(int64_t num_parameters, int64_t n0,
                                 double seconds, int64_t n) {
  const int64_t cap = core::GopOptions{}.max_gradient_floats;
  return seconds *
         static_cast<double>(
             core::GopGenericGradientCount(n, num_parameters, cap)) /
         static_cast<double>(
             core::GopGenericGradientCount(n0, num_parameters, cap));
}

// What a GOP row keeps of the whole model's metrics (and a layer's).
json GopMetricsJson(const core::GopMetrics& m) {
  return json{{"size", m.size},
              {"top_eigenvalues", m.top_eigenvalues},
              {"explained_variance", m.explained_variance},
              {"trace", m.trace},
              {"frobenius_norm", m.frobenius_norm},
              {"spectral_norm", m.spectral_norm},
              {"nuclear_norm", m.nuclear_norm},
              {"rank", m.rank},
              {"rank_tolerance", m.rank_tolerance},
              {"effective_rank", m.effective_rank},
              {"stable_rank", m.stable_rank},
              {"condition_number", m.condition_number},
              {"log_pseudo_determinant", m.log_pseudo_determinant},
              {"max_nonzero", m.max_nonzero},
              {"min_nonzero", m.min_nonzero},
              {"mean_nonzero", m.mean_nonzero},
              {"std_nonzero", m.std_nonzero},
              {"mean_all", m.mean_all},
              {"std_all", m.std_all}};
}

json GopResultJson(const core::GopResult& r) {
  json out = GopMetricsJson(r.metrics);
  out["path"] = r.path;
  out["num_samples"] = r.num_samples;
  out["num_parameters"] = r.num_parameters;
  json layers = json::array();
  for (const core::GopLayerResult& layer : r.layers) {
    json entry = GopMetricsJson(layer.metrics);
    entry["name"] = layer.name;
    entry["trace_share"] = layer.trace_share;
    layers.push_back(std::move(entry));
  }
  out["layers"] = std::move(layers);
  out["gradient_norms"] =
      json{{"mean", r.gradient_norms.mean},
           {"quantile_levels", r.gradient_norms.quantile_levels},
           {"quantiles", r.gradient_norms.quantiles}};
  return out;
}

// One gop measurement of `n` samples on `model`, between two device
// synchronisations: its seconds and its result.
absl::StatusOr<std::pair<double, core::GopResult>> GopOnce(
    const Context& ctx, const WorkloadSpec& w, const core::ModelSource& model,
    int64_t n) {
  ctx.timer.Sync();
  const Clock::time_point t0 = Clock::now();
  CURVD_ASSIGN_OR_RETURN(core::MeasurementResult result,
                         Measure(ctx, model, w, GopRequest(w, n)));
  ctx.timer.Sync();
  return std::make_pair(
      std::chrono::duration<double>(Clock::now() - t0).count(),
      Of<core::GopMethod>(result));
}

// The workload's GOP run on `model` through Engine::Measure into out[key]:
// one untimed 2-probe measurement loads model and shard, then the pilot at
// the ladder's smallest N (timed once; the kind's warm-up). The N measured is
// the largest of the ladder whose estimated time fits --gop_budget_seconds:
// for the generic path GenericGopEstimateSeconds from the pilot; for any
// other (a fast path, whose small-N time is mostly fixed costs) the ladder is
// climbed, each N run once and the next estimated as quadratic in N from it.
// Then N is timed (at least 3 repeats when its estimate is under a third of
// the budget, else 1; until 4 s or 15), with the device's peak memory over
// the repeats. The row says when and why it ran at less than the manifest's N.
absl::Status BenchGopRow(const Context& ctx, const WorkloadSpec& w,
                         const core::ModelSource& model, const std::string& key,
                         json& out) {
  CURVD_RETURN_IF_ERROR(
      Measure(ctx, model, w,
              TraceRequest(w, kWarmupProbes, core::Precision::kFloat32))
          .status());
  const std::vector<int64_t>& ladder = w.gop->ladder;  // descending
  const double budget = absl::GetFlag(FLAGS_gop_budget_seconds);
  int64_t n = ladder.back();
  CURVD_ASSIGN_OR_RETURN(auto pilot, GopOnce(ctx, w, model, n));
  const std::string path = pilot.second.path;
  json row{{"requested_num_samples", w.gop->num_samples},
           {"pilot", {{"num_samples", n}, {"seconds", pilot.first}}},
           {"budget_seconds", budget}};
  json& estimates = row["estimated_seconds"];
  double estimate = pilot.first;
  if (path == "generic") {
    for (auto it = ladder.rbegin() + 1; it != ladder.rend(); ++it) {
      const double s = GenericGopEstimateSeconds(
          pilot.second.num_parameters, ladder.back(), pilot.first, *it);
      estimates[std::to_string(*it)] = s;
      if (s > budget) break;
      n = *it;
      estimate = s;
    }
  } else {
    double seconds = pilot.first;
    for (auto it = ladder.rbegin() + 1; it != ladder.rend(); ++it) {
      const double ratio = static_cast<double>(*it) / static_cast<double>(n);
      const double s = seconds * ratio * ratio;
      estimates[std::to_string(*it)] = s;
      if (s > budget) break;
      CURVD_ASSIGN_OR_RETURN(auto step, GopOnce(ctx, w, model, *it));
      row["climb"][std::to_string(*it)] = step.first;
      n = *it;
      seconds = estimate = step.first;
    }
  }
  if (n < w.gop->num_samples) {
    const std::string next = std::to_string(
        *std::find_if(ladder.rbegin(), ladder.rend(),
                      [&](int64_t candidate) { return candidate > n; }));
    row["reduced"] = absl::StrFormat(
        "%s path: estimated %.3g s at N = %s > --gop_budget_seconds %g; run "
        "at N = %d",
        path, estimates[next].get<double>(), next, budget, n);
  }
  const core::MeasurementRequest request = GopRequest(w, n);
  const Plan plan = ctx.slow.max_repeats == 1
                        ? ctx.slow
                        : Plan{0, estimate <= budget / 3 ? 3 : 1, 15, 4.0};
  core::MeasurementResult result;
  auto run = [&]() -> absl::Status {
    CURVD_ASSIGN_OR_RETURN(result, Measure(ctx, model, w, request));
    return absl::OkStatus();
  };
  ctx.timer.Sync();
  const std::optional<int64_t> before =
      curvd::bench::ResetPeakDeviceMemory(ctx.device);
  CURVD_ASSIGN_OR_RETURN(json timing, ctx.timer(run, plan));
  const std::optional<int64_t> peak =
      curvd::bench::PeakDeviceMemory(ctx.device);
  row.update(timing);
  row.update(GopResultJson(Of<core::GopMethod>(result)));
  row["indices_checksum"] = GopIndicesChecksum(w, n);
  row["compute_seconds"] = result.compute_seconds;
  row["allocated_before_bytes"] = before ? json(*before) : json(nullptr);
  row["peak_memory_bytes"] = peak ? json(*peak) : json(nullptr);
  out[key] = std::move(row);
  return absl::OkStatus();
}

// The GOP rows: gop_engine on the TorchScript archive, gop_zoo_engine on the
// zoo MLP where the workload has one.
absl::Status BenchGop(const Context& ctx, const WorkloadSpec& w, json& out) {
  CURVD_RETURN_IF_ERROR(
      BenchGopRow(ctx, w, ModelSourceOf(w), "gop_engine", out));
  if (!w.zoo) return absl::OkStatus();
  return BenchGopRow(ctx, w, *w.zoo, "gop_zoo_engine", out);
}

// The rows of issues 4, 5 and 12 (objective, engine, gRPC, float64
// reference) through RunWorkload's `step`.
template <typename Step>
absl::Status RunHessianAndLlc(const Context& ctx, const WorkloadSpec& w,
                              Step& step, json& out) {
  CURVD_RETURN_IF_ERROR(
      step("objective", [&] { return BenchObjective(ctx, w, out); }));
  if (absl::GetFlag(FLAGS_measurements)) {
    CURVD_RETURN_IF_ERROR(
        step("engine", [&] { return BenchEngine(ctx, w, out); }));
    if (ctx.client != nullptr) {
      CURVD_RETURN_IF_ERROR(
          step("gRPC", [&] { return BenchGrpc(ctx, w, out); }));
    }
    if (w.llc) out["llc_check"] = LlcCheck(w, out, "llc");
    if (w.llc && w.zoo) {
      out["llc_zoo_check"] = LlcCheck(w, out, "llc_zoo");
      out["llc_zoo_check"]["loss"] = ZooLossCheck(out);
    }
    CURVD_RETURN_IF_ERROR(
        step("float64 reference", [&] { return BenchReference(ctx, w, out); }));
  }
  return absl::OkStatus();
}

absl::Status RunWorkload(const Context& ctx, const WorkloadSpec& w, json& out) {
  const Clock::time_point start = Clock::now();
  auto step = [&](const char* what, auto&& fn) -> absl::Status {
    try {
      absl::Status status = fn();
      if (!status.ok()) {
        return absl::Status(status.code(), absl::StrCat(w.name, " ", what, ": ",
                                                        status.message()));
      }
      std::cerr << "[curvd_bench] " << w.name << " " << what << " done at "
                << std::chrono::duration<double>(Clock::now() - start).count()
                << " s\n";
      return absl::OkStatus();
    } catch (const std::exception& e) {
      return absl::InternalError(
          absl::StrCat(w.name, " ", what, " threw: ", e.what()));
    }
  };
  out["description"] = w.description;
  if (absl::GetFlag(FLAGS_estimators_only)) {
    CURVD_RETURN_IF_ERROR(step("trace estimators", [&] {
      return BenchTraceEstimators(ctx, w, out);
    }));
    out["wall_s"] = std::chrono::duration<double>(Clock::now() - start).count();
    return absl::OkStatus();
  }
  const std::string gop = absl::GetFlag(FLAGS_gop);
  if (gop != "only") {
    CURVD_RETURN_IF_ERROR(RunHessianAndLlc(ctx, w, step, out));
  }
  if (gop != "off" && w.gop) {
    CURVD_RETURN_IF_ERROR(step("GOP", [&] { return BenchGop(ctx, w, out); }));
  }
  out["wall_s"] = std::chrono::duration<double>(Clock::now() - start).count();
  return absl::OkStatus();
}

absl::Status Main() {
  const std::string export_dir =
      std::filesystem::absolute(absl::GetFlag(FLAGS_export_dir)).string();
  if (absl::GetFlag(FLAGS_export_dir).empty()) {
    return absl::InvalidArgumentError("--export_dir is required");
  }
  std::string out_path = absl::GetFlag(FLAGS_out);
  if (out_path.empty()) out_path = export_dir + "/curvd.json";
  CURVD_ASSIGN_OR_RETURN(json manifest,
                         ReadJson(export_dir + "/manifest.json"));

  Settings settings;
  const json& s = manifest["settings"];
  settings.top_k = s.value("lanczos_top_k", settings.top_k);
  settings.tolerance =
      s.value("lanczos_relative_tolerance", settings.tolerance);
  settings.max_iterations =
      s.value("lanczos_max_iterations", settings.max_iterations);
  settings.probes = s.value("hutchinson_probes", settings.probes);
  settings.llc_step_size = s.value("llc_step_size", settings.llc_step_size);
  settings.llc_localization =
      s.value("llc_localization", settings.llc_localization);
  settings.llc_seed = s.value("llc_seed", settings.llc_seed);

  std::string device = absl::GetFlag(FLAGS_device);
  if (device == "auto") {
    device = core::Engine::CudaDeviceCount() > 0 ? "cuda:0" : "cpu";
  }
  const bool cuda = device != "cpu";
  CURVD_ASSIGN_OR_RETURN(std::unique_ptr<core::Engine> engine,
                         core::Engine::Create(device));
  // Engine::Create turned TF32 off for the whole process, objective included.
  const bool smoke = absl::GetFlag(FLAGS_smoke);
  const Timer timer(cuda);
  CURVD_ASSIGN_OR_RETURN(std::vector<std::string> roots,
                         curvd::server::ResolveDataRoots(export_dir));

  std::unique_ptr<curvd::server::CurvdServer> server;
  std::unique_ptr<curvd::client::Client> client;
  const bool estimators_only = absl::GetFlag(FLAGS_estimators_only);
  const std::string gop = absl::GetFlag(FLAGS_gop);
  if (gop != "on" && gop != "off" && gop != "only") {
    return absl::InvalidArgumentError(
        absl::StrCat("--gop must be on, off or only, got ", gop));
  }
  if (absl::GetFlag(FLAGS_grpc) && absl::GetFlag(FLAGS_measurements) &&
      !estimators_only && gop != "only") {
    curvd::server::ServerOptions options;
    options.listen = "127.0.0.1:0";
    options.metrics_listen = "";
    options.service.state_dir = absl::GetFlag(FLAGS_state_dir);
    options.service.store_factory = curvd::server::SqliteStore::Factory();
    options.service.blob_store_factory =
        curvd::server::DiskBlobStore::Factory();
    if (options.service.state_dir.empty()) {
      options.service.state_dir =
          std::filesystem::path(out_path).parent_path().string() +
          "/curvd-bench-state";
    }
    std::filesystem::remove_all(options.service.state_dir);
    options.service.data_roots = roots;
    options.service.devices = {device};
    options.service.version = "bench";
    CURVD_RETURN_IF_ERROR(curvd::server::ValidateServerOptions(&options));
    CURVD_ASSIGN_OR_RETURN(server, curvd::server::CurvdServer::Start(
                                       options, &core::Engine::Create));
    curvd::client::ConnectionOptions connection;
    connection.target = absl::StrCat("127.0.0.1:", server->port());
    client = std::make_unique<curvd::client::Client>(connection);
    CURVD_RETURN_IF_ERROR(client->WaitForConnected(absl::Seconds(10)));
  }

  Context ctx{settings,
              timer,
              smoke ? Plan{1, 2, 3, 0.2} : Plan{10, 20, 200, 3.0},
              smoke || estimators_only ? Plan{0, 1, 1, 0.0}
                                       : Plan{1, 1, 15, 4.0},
              device,
              roots,
              export_dir,
              *engine,
              client.get()};

  std::vector<std::string> wanted;
  for (absl::string_view name :
       absl::StrSplit(absl::GetFlag(FLAGS_workloads), ',', absl::SkipEmpty())) {
    wanted.emplace_back(name);
  }
  json results{{"device", device},
               {"torch_version", TORCH_VERSION},
               {"smoke", smoke},
               {"estimators_only", estimators_only},
               {"gop", gop},
               {"gop_budget_seconds", absl::GetFlag(FLAGS_gop_budget_seconds)},
               {"precision", "float32, TF32 off (Engine::Create)"},
               {"method",
                "steady_clock between torch::cuda::synchronize(); warm-up; "
                "median of repeats"},
               {"settings",
                {{"lanczos_top_k", settings.top_k},
                 {"lanczos_relative_tolerance", settings.tolerance},
                 {"lanczos_max_iterations", settings.max_iterations},
                 {"hutchinson_probes", settings.probes},
                 {"llc_step_size", settings.llc_step_size},
                 {"llc_localization", settings.llc_localization},
                 {"llc_n_beta_convention", "batch"},
                 {"llc_seed", settings.llc_seed}}},
               {"workloads", json::object()}};
  absl::Status first_error;
  for (const json& entry : manifest["workloads"]) {
    WorkloadSpec w;
    w.name = entry.at("name").get<std::string>();
    if (!wanted.empty() &&
        std::find(wanted.begin(), wanted.end(), w.name) == wanted.end()) {
      continue;
    }
    w.description = entry.value("description", "");
    w.archive = entry.at("archive").get<std::string>();
    w.shard = entry.at("shard").get<std::string>();
    w.micro_batch_size = entry.value("micro_batch_size", int64_t{0});
    w.num_samples = entry.value("num_samples", int64_t{0});
    if (entry.contains("gop") && entry["gop"].is_object()) {
      const json& g = entry["gop"];
      w.gop = GopRun{g.at("num_samples").get<int64_t>(),
                     g.at("ladder").get<std::vector<int64_t>>(),
                     g.at("seed").get<uint64_t>(), g.at("top_k").get<int>()};
    }
    if (entry.contains("llc") && entry["llc"].is_object()) {
      const json& l = entry["llc"];
      w.llc =
          LlcRun{l.at("chains").get<int>(), l.at("draws").get<int>(),
                 l.at("burn_in").get<int>(), l.at("batch_size").get<int64_t>(),
                 l.at("n_beta").get<double>()};
    }
    if (entry.contains("zoo") && entry["zoo"].is_object()) {
      const json& z = entry["zoo"];
      core::ModelSource zoo;
      zoo.kind = core::ModelSource::Kind::kZoo;
      zoo.zoo.layer_widths = z.at("layer_widths").get<std::vector<int64_t>>();
      zoo.zoo.activation = z.at("activation").get<std::string>();
      zoo.state_dict_path = z.at("state_dict").get<std::string>();
      zoo.cache_key = "bench:zoo:" + zoo.state_dict_path;
      w.zoo = zoo;
    }
    json out;
    absl::Status status = RunWorkload(ctx, w, out);
    if (!status.ok()) {
      std::cerr << "[curvd_bench] " << status << "\n";
      out["error"] = status.ToString();
      if (first_error.ok()) first_error = status;
    }
    results["workloads"][w.name] = out;
    // Written after every workload so that a crash later keeps what ran.
    CURVD_RETURN_IF_ERROR(WriteJson(out_path, results));
  }
  if (server != nullptr) {
    client.reset();
    server->Shutdown(absl::Seconds(5), absl::Seconds(1));
  }
  CURVD_RETURN_IF_ERROR(WriteJson(out_path, results));
  std::cerr << "[curvd_bench] wrote " << out_path << "\n";
  return first_error;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Times curvd (engine and gRPC) on workloads exported by "
      "bench/python/baseline.py.\nUsage: curvd_bench --export_dir=DIR "
      "[--out=FILE] [--device=auto] [--smoke]");
  absl::ParseCommandLine(argc, argv);
  absl::Status status;
  try {
    status = Main();
  } catch (const std::exception& e) {
    status = absl::InternalError(absl::StrCat("uncaught: ", e.what()));
  }
  if (!status.ok()) {
    std::cerr << "curvd_bench: " << status << "\n";
    return 1;
  }
  return 0;
}
