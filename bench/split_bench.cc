// curvd_split_bench: one measurement split across N devices against the same
// measurement on one (issue 18, docs/adr/0028), on a workload that
// bench/python/baseline.py exported (manifest.json, a TorchScript archive and
// a safetensors shard; W2 with --w2_samples 16384 for the rows).
//
// For each device count N of --counts (the first N of --devices), three rows
// through core::Engine (N = 1: Measure; N > 1: MeasureSplit with the other
// N - 1 engines as helpers), each timed as the median of --repeats after an
// untimed product (the hvp row's request) that loads the model and shard into
// every device's cache (on the GPU machine W2's rows take from seconds to
// minutes each: --rows and --counts divide a run among calls):
//   hvp        Hutchinson with --hvp_probes probes, reported per probe (the
//              measurement's setup included);
//   lanczos    top-5 eigenvalues to the manifest's tolerance;
//   hutchinson --probes Rademacher probes.
// Speed-up T(1) / T(N) beside the target 0.8 N, and whether the
// answer equals one device's (the same probes and start vector: to 1e-5
// relative in float32). Writes --out as JSON and prints a markdown table.
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "core/api/engine.h"
#include "core/api/measurement.h"
#include "core/api/sources.h"
#include "nlohmann/json.hpp"

ABSL_FLAG(std::string, export_dir, "", "baseline.py's export (manifest.json).");
ABSL_FLAG(std::string, workload, "W2", "The manifest's workload to split.");
ABSL_FLAG(std::string, devices, "",
          "Comma-separated devices (default: every CUDA device, cuda:0 first).");
ABSL_FLAG(std::string, counts, "1,2,4,8",
          "Device counts to time; those above --devices' count are left out.");
ABSL_FLAG(int, hvp_probes, 5, "Probes of the per-product row.");
ABSL_FLAG(int, probes, 100, "Probes of the Hutchinson row.");
ABSL_FLAG(int, repeats, 1, "Timed runs per row and count (the median).");
ABSL_FLAG(std::string, rows, "hvp,lanczos,hutchinson", "The rows to time.");
ABSL_FLAG(std::string, out, "", "JSON output (default EXPORT_DIR/split.json).");

namespace curvd {
namespace {

using json = nlohmann::json;

constexpr uint64_t kSeed = 5;
constexpr double kTarget = 0.8;     // speed-up >= 0.8 N
constexpr double kAgreement = 1e-5;  // relative, float32

struct Workload {
  core::ModelSource model;
  core::ShardSpec shard;
  int64_t micro_batch_size = 0;
  int64_t num_samples = 0;
  double lanczos_tolerance = 0;
  int lanczos_max_iterations = 0;
};

absl::StatusOr<Workload> ReadWorkload(const std::string& dir,
                                      const std::string& name) {
  std::ifstream file(dir + "/manifest.json");
  if (!file) return absl::NotFoundError(dir + "/manifest.json is missing");
  const json manifest = json::parse(file);
  for (const json& w : manifest.at("workloads")) {
    if (w.at("name") != name) continue;
    Workload out;
    out.model.kind = core::ModelSource::Kind::kTorchScript;
    out.model.archive_path = w.at("archive").get<std::string>();
    out.model.cache_key = "split-bench:" + out.model.archive_path;
    CURVD_ASSIGN_OR_RETURN(
        out.shard,
        core::ParseShardUri("file://" + w.at("shard").get<std::string>(),
                            {dir}));
    out.micro_batch_size = w.at("micro_batch_size").get<int64_t>();
    out.num_samples = w.at("num_samples").get<int64_t>();
    const json& settings = manifest.at("settings");
    out.lanczos_tolerance =
        settings.at("lanczos_relative_tolerance").get<double>();
    out.lanczos_max_iterations =
        settings.at("lanczos_max_iterations").get<int>();
    return out;
  }
  return absl::NotFoundError(
      absl::StrCat("no workload ", name, " in ", dir, "/manifest.json"));
}

// The request of row `row` ("hvp", "lanczos" or "hutchinson").
core::MeasurementRequest RequestOf(const Workload& w, const std::string& row) {
  core::MeasurementRequest r;
  r.objective.loss = core::LossFunction::kCrossEntropy;
  r.objective.micro_batch_size = w.micro_batch_size;
  r.objective.precision = core::Precision::kFloat32;
  if (row == "lanczos") {
    core::LanczosOptions& lanczos = r.Add<core::SharpnessMethod>().options;
    lanczos.top_k = 5;
    lanczos.max_iterations = w.lanczos_max_iterations;
    lanczos.relative_tolerance = w.lanczos_tolerance;
    lanczos.seed = kSeed;
    return r;
  }
  const int probes = row == "hvp" ? absl::GetFlag(FLAGS_hvp_probes)
                                  : absl::GetFlag(FLAGS_probes);
  core::TraceOptions& trace = r.Add<core::HessianTraceMethod>().options;
  trace.distribution = core::ProbeDistribution::kRademacher;
  trace.min_probes = probes;
  trace.max_probes = probes;
  trace.target_relative_error = 0;
  trace.seed = kSeed;
  return r;
}

// The numbers a row's answer is compared by: the trace, or the eigenvalues.
std::vector<double> AnswerOf(const core::MeasurementResult& result) {
  if (const auto* s = core::FindMethod<core::SharpnessMethod>(result.methods)) {
    std::vector<double> values;
    for (const core::Eigenpair& pair : s->result.top) {
      values.push_back(pair.value);
    }
    return values;
  }
  return {core::FindMethod<core::HessianTraceMethod>(result.methods)
              ->result.trace};
}

struct Timed {
  double seconds = 0;  // median
  core::MeasurementResult result;
};

// `request` on engines[0], split with engines[1..count) when count > 1,
// after an untimed `warmup`.
absl::StatusOr<Timed> TimeRow(const std::vector<core::Engine*>& engines,
                              int count, const Workload& w,
                              const core::MeasurementRequest& warmup,
                              const core::MeasurementRequest& request) {
  const std::vector<core::Engine*> helpers(engines.begin() + 1,
                                           engines.begin() + count);
  auto measure = [&](const core::MeasurementRequest& r) {
    return count == 1 ? engines[0]->Measure(w.model, w.shard, r, {})
                      : engines[0]->MeasureSplit(helpers, w.model, w.shard, r,
                                                 {});
  };
  Timed timed;
  CURVD_RETURN_IF_ERROR(measure(warmup).status());  // fills every cache
  std::vector<double> seconds;
  for (int r = 0; r < std::max(1, absl::GetFlag(FLAGS_repeats)); ++r) {
    const absl::Time start = absl::Now();
    CURVD_ASSIGN_OR_RETURN(timed.result, measure(request));
    seconds.push_back(absl::ToDoubleSeconds(absl::Now() - start));
  }
  std::sort(seconds.begin(), seconds.end());
  timed.seconds = seconds[seconds.size() / 2];
  return timed;
}

double MaxRelativeDifference(const std::vector<double>& a,
                             const std::vector<double>& b) {
  if (a.size() != b.size()) return INFINITY;
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, std::abs(a[i] - b[i]) /
                                std::max(std::abs(b[i]), 1e-30));
  }
  return worst;
}

absl::StatusOr<std::vector<std::string>> DevicesToUse() {
  const std::string flag = absl::GetFlag(FLAGS_devices);
  if (!flag.empty()) return absl::StrSplit(flag, ',', absl::SkipEmpty());
  std::vector<std::string> devices;
  for (int i = 0; i < core::Engine::CudaDeviceCount(); ++i) {
    devices.push_back(absl::StrCat("cuda:", i));
  }
  if (devices.empty()) {
    return absl::FailedPreconditionError(
        "no CUDA device: give --devices (e.g. cpu,cpu for a smoke run)");
  }
  return devices;
}

absl::Status Run() {
  if (absl::GetFlag(FLAGS_export_dir).empty()) {
    return absl::InvalidArgumentError("--export_dir is required");
  }
  // Canonical: it is the data root the shard's path is checked against.
  const std::string dir =
      std::filesystem::weakly_canonical(absl::GetFlag(FLAGS_export_dir))
          .string();
  CURVD_ASSIGN_OR_RETURN(const Workload w,
                         ReadWorkload(dir, absl::GetFlag(FLAGS_workload)));
  CURVD_ASSIGN_OR_RETURN(const std::vector<std::string> devices,
                         DevicesToUse());
  std::vector<int> counts;
  for (absl::string_view c :
       absl::StrSplit(absl::GetFlag(FLAGS_counts), ',', absl::SkipEmpty())) {
    int count = 0;
    if (!absl::SimpleAtoi(c, &count) || count < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("--counts: '", c, "' is not a device count"));
    }
    if (count <= static_cast<int>(devices.size())) counts.push_back(count);
  }
  if (counts.empty() || counts[0] != 1) {
    return absl::InvalidArgumentError(
        "--counts must start with 1, the speed-ups' reference");
  }
  std::vector<std::unique_ptr<core::Engine>> owned;
  std::vector<core::Engine*> engines;
  for (const std::string& device : devices) {
    CURVD_ASSIGN_OR_RETURN(std::unique_ptr<core::Engine> engine,
                           core::Engine::Create(device));
    engines.push_back(engine.get());
    owned.push_back(std::move(engine));
  }
  json out = {{"workload", absl::GetFlag(FLAGS_workload)},
              {"num_samples", w.num_samples},
              {"micro_batch_size", w.micro_batch_size},
              {"devices", devices},
              {"rows", json::array()}};
  std::cout << absl::StrFormat(
      "Split of %s (%d samples, micro-batches of %d) on %s\n"
      "| row | devices | seconds | speed-up | target | same answer | split |\n"
      "| --- | ---: | ---: | ---: | ---: | --- | --- |\n",
      absl::GetFlag(FLAGS_workload), w.num_samples, w.micro_batch_size,
      devices[0]);
  bool all_agree = true;
  const core::MeasurementRequest warmup = RequestOf(w, "hvp");
  for (const absl::string_view name :
       absl::StrSplit(absl::GetFlag(FLAGS_rows), ',', absl::SkipEmpty())) {
    const std::string row(name);
    if (row != "hvp" && row != "lanczos" && row != "hutchinson") {
      return absl::InvalidArgumentError(absl::StrCat(
          "--rows: '", row, "' is not hvp, lanczos or hutchinson"));
    }
    const core::MeasurementRequest request = RequestOf(w, row);
    const double per = row == "hvp" ? absl::GetFlag(FLAGS_hvp_probes) : 1;
    double one_device = 0;
    std::vector<double> reference;
    for (int count : counts) {
      CURVD_ASSIGN_OR_RETURN(const Timed t,
                             TimeRow(engines, count, w, warmup, request));
      const double seconds = t.seconds / per;
      const std::vector<double> answer = AnswerOf(t.result);
      if (count == 1) {
        one_device = seconds;
        reference = answer;
      }
      const double difference = MaxRelativeDifference(answer, reference);
      const bool agrees = difference <= kAgreement;
      all_agree = all_agree && agrees;
      const double speedup = one_device / seconds;
      out["rows"].push_back({{"row", row},
                             {"devices", count},
                             {"seconds", seconds},
                             {"speedup", speedup},
                             {"target_speedup", kTarget * count},
                             {"answer", answer},
                             {"max_rel_diff_vs_one_device", difference},
                             {"split", t.result.split}});
      std::cout << absl::StrFormat(
          "| %s | %d | %.4f | %.2f | %s | %s (%.1e) | %s |\n",
          row == "hvp" ? "one HVP" : row, count, seconds, speedup,
          count == 1 ? "—" : absl::StrFormat("≥ %.1f", kTarget * count),
          agrees ? "yes" : "NO", difference, t.result.split);
    }
  }
  std::string path = absl::GetFlag(FLAGS_out);
  if (path.empty()) path = dir + "/split.json";
  std::ofstream(path) << out.dump(2) << "\n";
  if (!all_agree) {
    return absl::InternalError(absl::StrCat(
        "a split answer differs from one device's by more than ", kAgreement,
        " (", path, ")"));
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace curvd

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Times one measurement split across devices (issue 18).\nUsage: "
      "curvd_split_bench --export_dir=DIR [--workload=W2] "
      "[--devices=cuda:0,cuda:1] [--counts=1,2,4,8]");
  absl::ParseCommandLine(argc, argv);
  const absl::Status status = curvd::Run();
  if (!status.ok()) {
    std::cerr << "curvd_split_bench: " << status << "\n";
    return 1;
  }
  return 0;
}
