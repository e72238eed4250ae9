#include "client/kind_table.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/number_format.h"

namespace curvd::client {
namespace {

namespace v1 = ::curvd::v1;
using Type = FlagDef::Type;

uint64_t Seed(const ParsedFlags& flags) {
  return static_cast<uint64_t>(flags.Int("seed"));
}

int32_t Int32(const ParsedFlags& flags, const char* name) {
  return static_cast<int32_t>(flags.Int(name));
}

// Calls `set` with an int flag only when the command line gives it.
template <typename Setter>
void SetIfGiven(const ParsedFlags& flags, const char* name, Setter set) {
  if (flags.IsSet(name)) set(Int32(flags, name));
}

// Calls `set` with a double flag only when the command line gives it.
template <typename Setter>
void SetDoubleIfGiven(const ParsedFlags& flags, const char* name, Setter set) {
  if (flags.IsSet(name)) set(flags.Double(name));
}

absl::StatusOr<v1::ProbeDistribution> Distribution(const ParsedFlags& flags) {
  const std::string& distribution = flags.String("distribution");
  if (distribution == "rademacher") return v1::PROBE_DISTRIBUTION_RADEMACHER;
  if (distribution == "gaussian") return v1::PROBE_DISTRIBUTION_GAUSSIAN;
  return absl::InvalidArgumentError(absl::StrCat(
      "--distribution '", distribution, "' is not rademacher or gaussian"));
}

// Lanczos settings of sharpness and of the loss slice's eigenvector.
absl::Status FillLanczos(const ParsedFlags& flags, v1::SharpnessSpec* s) {
  s->set_top_k(Int32(flags, "top_k"));
  s->set_bottom_k(Int32(flags, "bottom_k"));
  s->set_max_iterations(Int32(flags, "max_iterations"));
  s->set_relative_tolerance(flags.Double("tolerance"));
  s->set_seed(Seed(flags));
  return absl::OkStatus();
}

// Hutchinson settings of hessian_trace, trace_h3 and the loss expansion.
absl::Status FillTrace(const ParsedFlags& flags, v1::HessianTraceSpec* t) {
  absl::StatusOr<v1::ProbeDistribution> distribution = Distribution(flags);
  if (!distribution.ok()) return distribution.status();
  t->set_distribution(*distribution);
  const int32_t probes = Int32(flags, "probes");
  if (probes != 0) {
    // Equal bounds and no target: exactly `probes` probes.
    t->set_min_probes(probes);
    t->set_max_probes(probes);
    t->set_target_relative_error(0);
  }
  t->set_seed(Seed(flags));
  return absl::OkStatus();
}

std::string TopEigenvalues(const v1::SharpnessResult& result,
                           const std::string& separator, bool full) {
  std::vector<std::string> values;
  for (const v1::Eigenpair& pair : result.top()) {
    values.push_back(full ? RoundTripNumber(pair.value())
                          : ShortNumber(pair.value()));
  }
  return absl::StrJoin(values, separator);
}

// Hutchinson's tr(H) or tr(H^3) in columns `column` and
// `column`_standard_error.
KindSummary TraceSummary(const std::string& column,
                         const v1::HessianTraceResult& r) {
  return {r.trace(),
          r.standard_error(),
          absl::StrCat(r.probes(), " probes"),
          {{column, RoundTripNumber(r.trace())},
           {column + "_standard_error", RoundTripNumber(r.standard_error())}}};
}

// The estimate of tr(f(H)) for `function` ("x", "1{|x|>t}"), if present.
const v1::SpectralEstimate* Estimate(const v1::SpectralDensityResult& r,
                                     const std::string& function) {
  for (const v1::SpectralEstimate& e : r.estimates()) {
    if (e.function() == function) return &e;
  }
  return nullptr;
}

// The first parameter's type of a function pointer.
template <typename F>
struct FirstArgument;
template <typename R, typename A, typename... Rest>
struct FirstArgument<R (*)(A, Rest...)> {
  using type = A;
};

// A row of the table from its data and its typed functions, which the row
// calls behind its message-typed ones. `summarize` takes the result, or the
// result and the spec it ran with.
template <typename Spec, typename Summarize>
KindRow Row(std::string name, std::vector<FlagDef> new_flags,
            std::vector<std::string> flags,
            std::vector<std::string> csv_columns,
            absl::Status (*fill)(const ParsedFlags&, Spec*),
            Summarize summarize) {
  using Result = std::decay_t<typename FirstArgument<Summarize>::type>;
  return {std::move(name),
          Spec::descriptor(),
          Result::descriptor(),
          std::move(new_flags),
          std::move(flags),
          std::move(csv_columns),
          [fill](const ParsedFlags& parsed, google::protobuf::Message* spec) {
            Spec* typed = google::protobuf::DynamicCastToGenerated<Spec>(spec);
            if (typed == nullptr) {
              return absl::InternalError(
                  absl::StrCat(spec->GetTypeName(), " is not a ",
                               Spec::descriptor()->full_name()));
            }
            return fill(parsed, typed);
          },
          [summarize](const google::protobuf::Message& result,
                      const google::protobuf::Message& spec) {
            const Result* typed =
                google::protobuf::DynamicCastToGenerated<Result>(&result);
            if (typed == nullptr) return KindSummary{};
            if constexpr (std::is_invocable_v<Summarize, const Result&,
                                              const Spec&>) {
              const Spec* typed_spec =
                  google::protobuf::DynamicCastToGenerated<Spec>(&spec);
              return summarize(*typed, typed_spec != nullptr
                                           ? *typed_spec
                                           : Spec::default_instance());
            } else {
              return summarize(*typed);
            }
          }};
}

// One block per kind: how its flags fill its spec, how its result reads, and
// its row.

KindSummary SummarizeSharpness(const v1::SharpnessResult& r) {
  return {r.sharpness(),
          std::nullopt,
          absl::StrCat("top ", TopEigenvalues(r, " ", /*full=*/false)),
          {{"sharpness", RoundTripNumber(r.sharpness())},
           {"top_eigenvalues", TopEigenvalues(r, ";", /*full=*/true)},
           {"iterations", absl::StrCat(r.iterations())}}};
}

KindRow SharpnessRow() {
  return Row(
      "sharpness",
      {{"top_k", Type::kInt, "1",
        "sharpness, power_iteration: largest eigenvalues wanted (1..64)."},
       {"bottom_k", Type::kInt, "0",
        "sharpness: most negative eigenvalues wanted (0..64)."},
       {"max_iterations", Type::kInt, "0",
        "sharpness, loss_slice: Lanczos steps at most; power_iteration: "
        "iterations per eigenpair; 0 = server default (100; 1000)."},
       {"tolerance", Type::kDouble, "0",
        "sharpness, loss_slice, power_iteration: relative residual "
        "tolerance; 0 = server default (1e-6)."}},
      {"top_k", "bottom_k", "max_iterations", "tolerance", "seed"},
      {"sharpness"}, FillLanczos, SummarizeSharpness);
}

KindSummary SummarizeHessianTrace(const v1::HessianTraceResult& r) {
  KindSummary s = TraceSummary("trace", r);
  s.columns["probes"] = absl::StrCat(r.probes());
  return s;
}

KindRow HessianTraceRow() {
  return Row("hessian_trace",
             {{"probes", Type::kInt, "0",
               "hessian_trace, trace_h3, loss_expansion: exactly this many "
               "Hutchinson probes; 0 = adaptive (10..200, stop at 1% standard "
               "error)."},
              {"distribution", Type::kString, "rademacher",
               "hessian_trace, trace_h3, loss_expansion, spectral_density, "
               "hutchpp, adaptive_trace: probe distribution, rademacher or "
               "gaussian."}},
             {"distribution", "probes", "seed"},
             {"trace", "trace_standard_error"}, FillTrace,
             SummarizeHessianTrace);
}

absl::Status FillSpectralDensity(const ParsedFlags& flags,
                                 v1::SpectralDensitySpec* d) {
  absl::StatusOr<v1::ProbeDistribution> distribution = Distribution(flags);
  if (!distribution.ok()) return distribution.status();
  d->set_distribution(*distribution);
  d->set_seed(Seed(flags));
  SetIfGiven(flags, "runs", [d](int32_t v) { d->set_runs(v); });
  SetIfGiven(flags, "steps", [d](int32_t v) { d->set_steps(v); });
  SetIfGiven(flags, "grid_points", [d](int32_t v) { d->set_grid_points(v); });
  d->set_sigma(flags.Double("sigma"));
  return absl::OkStatus();
}

// The rank estimate with its spread over runs and its systematic bounds; an
// unreliable one shows only its bounds, and its density_rank is empty so that
// no number stands for it. Results from before the bounds (no threshold_rule)
// read as they did.
void SummarizeDensityRank(const v1::SpectralDensityResult& r,
                          const v1::SpectralEstimate& rank, KindSummary* s) {
  if (r.threshold_rule().empty()) {
    absl::StrAppend(&s->detail, ", rank ~", ShortNumber(rank.trace()));
    s->columns["density_rank"] = RoundTripNumber(rank.trace());
    return;
  }
  const std::string bounds = absl::StrCat(ShortNumber(r.rank_lower()), "..",
                                          ShortNumber(r.rank_upper()));
  if (r.rank_unreliable()) {
    absl::StrAppend(&s->detail, ", rank UNRELIABLE: anywhere in ", bounds,
                    " (the cut lies in an unresolved cluster)");
    s->columns["density_rank"] = "";
  } else {
    absl::StrAppend(&s->detail, ", rank ~", ShortNumber(rank.trace()), " ± ",
                    ShortNumber(rank.standard_error()), " (systematic ",
                    bounds, ")");
    s->columns["density_rank"] = RoundTripNumber(rank.trace());
  }
  s->columns["density_rank_standard_error"] =
      RoundTripNumber(rank.standard_error());
  s->columns["density_rank_lower"] = RoundTripNumber(r.rank_lower());
  s->columns["density_rank_upper"] = RoundTripNumber(r.rank_upper());
  s->columns["density_rank_unreliable"] =
      r.rank_unreliable() ? "true" : "false";
}

KindSummary SummarizeSpectralDensity(const v1::SpectralDensityResult& r) {
  KindSummary s;
  s.detail = absl::StrCat(r.runs_size(), " runs, ", r.grid_size(),
                          " grid points, sigma ", ShortNumber(r.sigma()));
  s.columns["density_sigma"] = RoundTripNumber(r.sigma());
  if (const v1::SpectralEstimate* trace = Estimate(r, "x")) {
    s.value = trace->trace();
    s.standard_error = trace->standard_error();
    s.detail = absl::StrCat("tr(H); ", s.detail);
    s.columns["density_trace"] = RoundTripNumber(trace->trace());
    s.columns["density_trace_standard_error"] =
        RoundTripNumber(trace->standard_error());
  }
  if (const v1::SpectralEstimate* rank = Estimate(r, "1{|x|>t}")) {
    SummarizeDensityRank(r, *rank, &s);
  }
  return s;
}

KindRow SpectralDensityRow() {
  return Row(
      "spectral_density",
      {{"runs", Type::kInt, "",
        "spectral_density: SLQ start vectors (1..1000; server default 10)."},
       {"steps", Type::kInt, "",
        "spectral_density: Lanczos steps per run (1..1000; server default "
        "100)."},
       {"grid_points", Type::kInt, "",
        "spectral_density: points of the density grid (2..100000; server "
        "default 1000)."},
       {"sigma", Type::kDouble, "0",
        "spectral_density: Gaussian width; 0 = 1% of the Ritz values' "
        "spread."}},
      {"distribution", "seed", "runs", "steps", "grid_points", "sigma"},
      {"density_trace", "density_trace_standard_error", "density_rank",
       "density_rank_standard_error", "density_rank_lower",
       "density_rank_upper", "density_rank_unreliable", "density_sigma"},
      FillSpectralDensity, SummarizeSpectralDensity);
}

absl::Status FillHutchpp(const ParsedFlags& flags, v1::HutchppSpec* h) {
  absl::StatusOr<v1::ProbeDistribution> distribution = Distribution(flags);
  if (!distribution.ok()) return distribution.status();
  h->set_distribution(*distribution);
  h->set_seed(Seed(flags));
  SetIfGiven(flags, "max_hvps", [h](int32_t v) { h->set_max_hvps(v); });
  h->set_sketch_size(Int32(flags, "sketch_size"));
  return absl::OkStatus();
}

KindSummary SummarizeHutchpp(const v1::HutchppResult& r) {
  return {r.trace(),
          r.standard_error(),
          absl::StrCat("sketch ", r.sketch_size(), " + ", r.residual_probes(),
                       " probes; sketch holds ",
                       ShortNumber(100 * r.sketch_frobenius_fraction()),
                       "% of |H|_F^2; Hutchinson, same HVPs: +/-",
                       ShortNumber(r.hutchinson_standard_error_same_hvps())),
          {{"hutchpp_trace", RoundTripNumber(r.trace())},
           {"hutchpp_standard_error", RoundTripNumber(r.standard_error())},
           {"sketch_frobenius_fraction",
            RoundTripNumber(r.sketch_frobenius_fraction())},
           {"hutchinson_standard_error_same_hvps",
            RoundTripNumber(r.hutchinson_standard_error_same_hvps())}}};
}

KindRow HutchppRow() {
  return Row(
      "hutchpp",
      {{"max_hvps", Type::kInt, "",
        "hutchpp, adaptive_trace: the HVP budget (>= 3; server default "
        "300; 1000 for adaptive_trace)."},
       {"sketch_size", Type::kInt, "0",
        "hutchpp: sketch columns; 0 = max_hvps / 3."}},
      {"distribution", "seed", "max_hvps", "sketch_size"},
      {"hutchpp_trace", "hutchpp_standard_error", "sketch_frobenius_fraction",
       "hutchinson_standard_error_same_hvps"},
      FillHutchpp, SummarizeHutchpp);
}

absl::Status FillAdaptiveTrace(const ParsedFlags& flags,
                               v1::AdaptiveTraceSpec* a) {
  absl::StatusOr<v1::ProbeDistribution> distribution = Distribution(flags);
  if (!distribution.ok()) return distribution.status();
  a->set_distribution(*distribution);
  a->set_seed(Seed(flags));
  SetIfGiven(flags, "max_hvps", [a](int32_t v) { a->set_max_hvps(v); });
  a->set_target_standard_error(flags.Double("target_standard_error"));
  SetDoubleIfGiven(flags, "target_relative_error",
                   [a](double v) { a->set_target_relative_error(v); });
  SetIfGiven(flags, "initial_sketch_size",
             [a](int32_t v) { a->set_initial_sketch_size(v); });
  SetIfGiven(flags, "min_probes", [a](int32_t v) { a->set_min_probes(v); });
  return absl::OkStatus();
}

// As Hutch++'s, with the method chosen; its reasons are a note.
KindSummary SummarizeAdaptiveTrace(const v1::AdaptiveTraceResult& r) {
  const std::string method = r.method().empty() ? "?" : r.method();
  const std::string probes = r.sketch_size() > 0
                                 ? absl::StrCat("sketch ", r.sketch_size(),
                                                " + ", r.probes(), " probes")
                                 : absl::StrCat(r.probes(), " probes");
  KindSummary s = {
      r.trace(),
      r.standard_error(),
      absl::StrCat(method, ": ", probes, ", ", r.hvps(), " HVPs; ",
                   r.hvps() == r.probes() ? "half the first sketch held ~"
                                          : "sketch holds ",
                   ShortNumber(100 * r.sketch_frobenius_fraction()),
                   "% of |H|_F^2; stop ", r.stop_reason()),
      {{"adaptive_trace", RoundTripNumber(r.trace())},
       {"adaptive_trace_standard_error", RoundTripNumber(r.standard_error())},
       {"adaptive_trace_method", r.method()},
       {"adaptive_trace_hvps", absl::StrCat(r.hvps())},
       {"adaptive_trace_sketch_frobenius_fraction",
        RoundTripNumber(r.sketch_frobenius_fraction())},
       {"probes", absl::StrCat(r.probes())}}};
  if (!r.decision().empty()) {
    s.notes.push_back(
        absl::StrCat("adaptive_trace chose ", method, ": ", r.decision()));
  }
  return s;
}

KindRow AdaptiveTraceRow() {
  return Row(
      "adaptive_trace",
      {{"target_standard_error", Type::kDouble, "0",
        "adaptive_trace: stop once the trace's standard error is at most "
        "this (absolute); 0 = off. Given alone, the relative target is off."},
       {"target_relative_error", Type::kDouble, "",
        "adaptive_trace: stop once the standard error is at most this times "
        "|trace|, in [0, 1) (server default 0.01, or 0 when "
        "--target_standard_error is given)."},
       {"initial_sketch_size", Type::kInt, "",
        "adaptive_trace: columns of the first sketch, which doubles while "
        "that pays (server default 8)."},
       {"min_probes", Type::kInt, "",
        "adaptive_trace: probes before a target can stop it (>= 2; server "
        "default 10)."}},
      {"distribution", "seed", "max_hvps", "target_standard_error",
       "target_relative_error", "initial_sketch_size", "min_probes"},
      {"adaptive_trace", "adaptive_trace_standard_error",
       "adaptive_trace_method", "adaptive_trace_hvps",
       "adaptive_trace_sketch_frobenius_fraction"},
      FillAdaptiveTrace, SummarizeAdaptiveTrace);
}

KindSummary SummarizeTraceH3(const v1::HessianTraceResult& r) {
  return TraceSummary("trace_h3", r);
}

KindRow TraceH3Row() {
  return Row("trace_h3", {}, {"distribution", "probes", "seed"},
             {"trace_h3", "trace_h3_standard_error"}, FillTrace,
             SummarizeTraceH3);
}

absl::Status FillLossExpansion(const ParsedFlags& flags,
                               v1::LossExpansionSpec* e) {
  e->set_rho(flags.Double("rho"));
  e->set_h0(flags.Double("h0"));
  e->set_ess(flags.Double("ess"));
  e->set_num_steps(flags.Double("num_steps"));
  return FillTrace(flags, e->mutable_trace_h3());
}

KindSummary SummarizeLossExpansion(const v1::LossExpansionResult& r) {
  return {r.total(),
          r.total_standard_error(),
          absl::StrCat("total = ", ShortNumber(r.first_order_term()), " + ",
                       ShortNumber(r.second_order_term()), " + noise ",
                       ShortNumber(r.noise_term())),
          {{"first_order_term", RoundTripNumber(r.first_order_term())},
           {"second_order_term", RoundTripNumber(r.second_order_term())},
           {"noise_term", RoundTripNumber(r.noise_term())},
           {"noise_term_standard_error",
            RoundTripNumber(r.noise_term_standard_error())},
           {"total", RoundTripNumber(r.total())},
           {"total_standard_error", RoundTripNumber(r.total_standard_error())},
           {"trace_h3", RoundTripNumber(r.trace_h3().trace())},
           {"trace_h3_standard_error",
            RoundTripNumber(r.trace_h3().standard_error())}}};
}

KindRow LossExpansionRow() {
  return Row(
      "loss_expansion",
      {{"rho", Type::kDouble, "", "loss_expansion: step size (required, > 0)."},
       {"h0", Type::kDouble, "",
        "loss_expansion: h0 of sigma^2 = 1 / (h0 ess) (required, > 0)."},
       {"ess", Type::kDouble, "",
        "loss_expansion: effective sample size (required, > 0)."},
       {"num_steps", Type::kDouble, "",
        "loss_expansion: N_s, the steps the noise averages over (required, "
        "> 0)."}},
      {"rho", "h0", "ess", "num_steps", "distribution", "probes", "seed"},
      {"first_order_term", "second_order_term", "noise_term",
       "noise_term_standard_error", "total", "total_standard_error"},
      FillLossExpansion, SummarizeLossExpansion);
}

absl::Status FillExactHessian(const ParsedFlags& flags,
                              v1::ExactHessianSpec* x) {
  x->set_return_matrix(flags.Bool("return_matrix"));
  return absl::OkStatus();
}

// ", clear (gap 3.2 decades)" or ", NOT clear-cut (gap 0.05 decades, rank
// 212..187 over a decade of tolerance either side)"; empty for a result
// stored before the server judged the cut.
std::string RankClarity(const v1::ExactHessianResult& r) {
  if (!r.has_rank_clear_cut()) return "";
  const std::string gap =
      absl::StrCat("gap ", ShortNumber(r.rank_gap_decades()), " decades");
  if (r.rank_clear_cut()) return absl::StrCat(", clear (", gap, ")");
  return absl::StrCat(", NOT clear-cut (", gap, ", rank ",
                      r.rank_at_tenth_tolerance(), "..",
                      r.rank_at_tenfold_tolerance(),
                      " over a decade of tolerance either side)");
}

KindSummary SummarizeExactHessian(const v1::ExactHessianResult& r) {
  KindSummary s;
  s.detail = absl::StrCat("rank ", r.rank(), " of ", r.eigenvalues_size(), " (",
                          r.positive(), " positive, ", r.negative(),
                          " negative)", RankClarity(r), ", condition ",
                          ShortNumber(r.condition_number()));
  s.columns = {{"rank", absl::StrCat(r.rank())},
               {"positive", absl::StrCat(r.positive())},
               {"negative", absl::StrCat(r.negative())},
               {"condition_number", RoundTripNumber(r.condition_number())}};
  if (r.has_rank_clear_cut()) {
    s.columns["rank_clear_cut"] = r.rank_clear_cut() ? "true" : "false";
    s.columns["rank_gap_decades"] = RoundTripNumber(r.rank_gap_decades());
  }
  if (!r.eigenvalues().empty()) {
    // Ascending: the last is the top eigenvalue.
    s.value = r.eigenvalues(r.eigenvalues_size() - 1);
    s.detail =
        absl::StrCat("min ", ShortNumber(r.eigenvalues(0)), ", ", s.detail);
    s.columns["min_eigenvalue"] = RoundTripNumber(r.eigenvalues(0));
    s.columns["max_eigenvalue"] = RoundTripNumber(s.value);
  }
  return s;
}

KindRow ExactHessianRow() {
  return Row("exact_hessian",
             {{"return_matrix", Type::kBool, "false",
               "exact_hessian: also return the P x P matrix (only up to the "
               "server's --exact_hessian_max_matrix_parameters)."}},
             {"return_matrix"},
             {"rank", "positive", "negative", "min_eigenvalue",
              "max_eigenvalue", "condition_number", "rank_clear_cut",
              "rank_gap_decades"},
             FillExactHessian, SummarizeExactHessian);
}

absl::Status FillPowerIteration(const ParsedFlags& flags,
                                v1::PowerIterationSpec* p) {
  p->set_top_k(Int32(flags, "top_k"));
  if (flags.Int("max_iterations") != 0) {
    p->set_max_iterations(Int32(flags, "max_iterations"));
  }
  if (flags.Double("tolerance") != 0) {
    p->set_relative_tolerance(flags.Double("tolerance"));
  }
  p->set_seed(Seed(flags));
  return absl::OkStatus();
}

KindSummary SummarizePowerIteration(const v1::PowerIterationResult& r) {
  std::vector<std::string> short_values, full_values;
  for (const v1::PowerEigenpair& pair : r.pairs()) {
    short_values.push_back(ShortNumber(pair.value()));
    full_values.push_back(RoundTripNumber(pair.value()));
  }
  return {r.pairs().empty() ? 0 : r.pairs(0).value(),
          std::nullopt,
          absl::StrCat("top ", absl::StrJoin(short_values, " "),
                       r.converged() ? "" : " (not converged)"),
          {{"power_eigenvalues", absl::StrJoin(full_values, ";")}}};
}

KindRow PowerIterationRow() {
  return Row(
      "power_iteration", {}, {"top_k", "max_iterations", "tolerance", "seed"},
      {"power_eigenvalues"}, FillPowerIteration, SummarizePowerIteration);
}

absl::Status FillLossSlice(const ParsedFlags& flags, v1::LossSliceSpec* l) {
  const std::string& direction = flags.String("direction");
  if (direction == "top_eigenvector") {
    l->set_direction(v1::LossSliceSpec::TOP_EIGENVECTOR);
  } else if (direction == "random") {
    l->set_direction(v1::LossSliceSpec::RANDOM);
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "--direction '", direction, "' is not top_eigenvector or random"));
  }
  SetIfGiven(flags, "points", [l](int32_t v) { l->set_points(v); });
  l->set_t_min(flags.Double("t_min"));
  l->set_t_max(flags.Double("t_max"));
  l->set_seed(Seed(flags));
  return FillLanczos(flags, l->mutable_lanczos());
}

KindSummary SummarizeLossSlice(const v1::LossSliceResult& r) {
  std::string range;
  if (!r.t().empty()) {
    range = absl::StrCat(" on [", ShortNumber(r.t(0)), ", ",
                         ShortNumber(r.t(r.t_size() - 1)), "]");
  }
  const auto [low, high] =
      std::minmax_element(r.loss().begin(), r.loss().end());
  std::string losses;
  if (low != r.loss().end()) {
    losses =
        absl::StrCat(", loss ", ShortNumber(*low), "..", ShortNumber(*high));
  }
  return {r.direction_curvature(),
          std::nullopt,
          absl::StrCat("v^T H v; ", r.loss_size(), " points", range, losses,
                       "; ", r.direction()),
          {{"slice_eigenvalue", RoundTripNumber(r.eigenvalue())},
           {"slice_curvature", RoundTripNumber(r.direction_curvature())}}};
}

KindRow LossSliceRow() {
  return Row(
      "loss_slice",
      {{"points", Type::kInt, "",
        "loss_slice: points of the t grid (1..10000; server default 41)."},
       {"t_min", Type::kDouble, "0",
        "loss_slice: first t; t_min = t_max = 0 means [-1, 1]."},
       {"t_max", Type::kDouble, "0", "loss_slice: last t."},
       {"direction", Type::kString, "top_eigenvector",
        "loss_slice: top_eigenvector or random (a unit Gaussian direction of "
        "--seed)."}},
      {"direction", "points", "t_min", "t_max", "seed", "top_k", "bottom_k",
       "max_iterations", "tolerance"},
      {"slice_eigenvalue", "slice_curvature"}, FillLossSlice,
      SummarizeLossSlice);
}

// ---- The LLC: llc and llc_calibration share the chains' settings ----

// The name of `value` among `names` (lower case, as the flags spell them),
// or InvalidArgument naming --`flag`.
template <typename Enum>
absl::StatusOr<Enum> EnumFlag(
    const ParsedFlags& flags, const char* flag,
    const std::vector<std::pair<std::string, Enum>>& names) {
  const std::string& value = flags.String(flag);
  std::vector<std::string> known;
  for (const auto& [name, e] : names) {
    if (name == value) return e;
    known.push_back(name);
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "--", flag, " '", value, "' is not ", absl::StrJoin(known, ", ")));
}

const std::vector<std::pair<std::string, v1::LlcSpec::Sampler>>& Samplers() {
  static const auto* samplers =
      new std::vector<std::pair<std::string, v1::LlcSpec::Sampler>>{
          {"sgld", v1::LlcSpec::SGLD},
          {"rmsprop_sgld", v1::LlcSpec::RMSPROP_SGLD},
          {"sgnht", v1::LlcSpec::SGNHT},
          {"mala", v1::LlcSpec::MALA}};
  return *samplers;
}

// The chains' settings of llc and of llc_calibration's base; the step size,
// localization and n_beta are llc's alone (a calibration's are its grid's).
absl::Status FillLlcChains(const ParsedFlags& flags, v1::LlcSpec* l) {
  absl::StatusOr<v1::LlcSpec::Sampler> sampler =
      EnumFlag(flags, "llc_sampler", Samplers());
  if (!sampler.ok()) return sampler.status();
  l->set_sampler(*sampler);
  absl::StatusOr<v1::LlcSpec::NBetaConvention> convention =
      EnumFlag<v1::LlcSpec::NBetaConvention>(
          flags, "llc_n_beta_convention",
          {{"dataset", v1::LlcSpec::DATASET}, {"batch", v1::LlcSpec::BATCH}});
  if (!convention.ok()) return convention.status();
  l->set_n_beta_convention(*convention);
  absl::StatusOr<v1::LlcSpec::OnDivergence> on_divergence =
      EnumFlag<v1::LlcSpec::OnDivergence>(
          flags, "llc_on_divergence",
          {{"drop_chain", v1::LlcSpec::DROP_CHAIN},
           {"fail", v1::LlcSpec::FAIL}});
  if (!on_divergence.ok()) return on_divergence.status();
  l->set_on_divergence(*on_divergence);
  l->set_prior_precision(flags.Double("llc_prior_precision"));
  SetIfGiven(flags, "llc_chains", [l](int32_t v) { l->set_chains(v); });
  SetIfGiven(flags, "llc_draws", [l](int32_t v) { l->set_draws(v); });
  SetIfGiven(flags, "llc_burn_in", [l](int32_t v) { l->set_burn_in(v); });
  SetIfGiven(flags, "llc_steps_between_draws",
             [l](int32_t v) { l->set_steps_between_draws(v); });
  if (flags.IsSet("llc_batch_size")) {
    l->set_batch_size(flags.Int("llc_batch_size"));
  }
  l->set_seed(Seed(flags));
  l->set_full_loss_every(Int32(flags, "llc_full_loss_every"));
  SetDoubleIfGiven(flags, "llc_divergence_factor",
                   [l](double v) { l->set_divergence_factor(v); });
  SetDoubleIfGiven(flags, "llc_rmsprop_alpha",
                   [l](double v) { l->set_rmsprop_alpha(v); });
  SetDoubleIfGiven(flags, "llc_rmsprop_epsilon",
                   [l](double v) { l->set_rmsprop_epsilon(v); });
  SetDoubleIfGiven(flags, "llc_sgnht_diffusion",
                   [l](double v) { l->set_sgnht_diffusion(v); });
  SetIfGiven(flags, "llc_trace_cap", [l](int32_t v) { l->set_trace_cap(v); });
  return absl::OkStatus();
}

absl::Status FillLlc(const ParsedFlags& flags, v1::LlcSpec* l) {
  SetDoubleIfGiven(flags, "llc_step_size",
                   [l](double v) { l->set_step_size(v); });
  SetDoubleIfGiven(flags, "llc_localization",
                   [l](double v) { l->set_localization(v); });
  SetDoubleIfGiven(flags, "llc_n_beta", [l](double v) { l->set_n_beta(v); });
  l->set_use_latest_calibration(flags.Bool("llc_use_latest_calibration"));
  return FillLlcChains(flags, l);
}

// A comma-separated list of numbers of flag `name` into `axis`.
absl::Status FillAxis(const ParsedFlags& flags, const char* name,
                      google::protobuf::RepeatedField<double>* axis) {
  for (absl::string_view item :
       absl::StrSplit(flags.String(name), ',', absl::SkipWhitespace())) {
    double value = 0;
    if (!absl::SimpleAtod(item, &value)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, ": '", item, "' is not a number"));
    }
    axis->Add(value);
  }
  return absl::OkStatus();
}

absl::Status FillLlcCalibration(const ParsedFlags& flags,
                                v1::LlcCalibrationSpec* c) {
  for (const auto& [name, axis] :
       {std::pair<const char*, google::protobuf::RepeatedField<double>*>{
            "llc_step_sizes", c->mutable_step_sizes()},
        {"llc_localizations", c->mutable_localizations()},
        {"llc_n_betas", c->mutable_n_betas()}}) {
    if (absl::Status s = FillAxis(flags, name, axis); !s.ok()) return s;
  }
  return FillLlcChains(flags, c->mutable_base());
}

std::string SamplerName(v1::LlcSpec::Sampler sampler) {
  for (const auto& [name, value] : Samplers()) {
    if (value == sampler) return name;
  }
  return "sgld";  // unset
}

// "R-hat 1.01, ESS 400, 1 of 4 chains diverged, acceptance 0.6".
std::string LlcDiagnostics(const v1::LlcResult& r) {
  std::vector<std::string> parts;
  if (r.has_r_hat()) parts.push_back(absl::StrCat("R-hat ", ShortNumber(r.r_hat())));
  if (r.has_effective_sample_size()) {
    parts.push_back(
        absl::StrCat("ESS ", ShortNumber(r.effective_sample_size())));
  }
  parts.push_back(absl::StrCat(r.chains_diverged(), " of ", r.chains_size(),
                               " chains diverged"));
  if (r.has_acceptance_rate()) {
    parts.push_back(
        absl::StrCat("acceptance ", ShortNumber(r.acceptance_rate())));
  }
  return absl::StrJoin(parts, ", ");
}

// The "WARNING: ..." lines of `r`'s warnings.
std::vector<std::string> LlcWarnings(const v1::LlcResult& r) {
  std::vector<std::string> lines;
  for (const std::string& warning : r.warnings()) {
    lines.push_back(absl::StrCat("WARNING: ", warning));
  }
  return lines;
}

KindSummary SummarizeLlc(const v1::LlcResult& r, const v1::LlcSpec& spec) {
  KindSummary s;
  s.value = r.llc_mean();
  s.standard_error = r.llc_standard_error();
  const std::string settings = absl::StrCat(
      r.chains_size(), " chains, ", spec.draws(), " draws, ",
      SamplerName(spec.sampler()), ", eps ", ShortNumber(spec.step_size()),
      ", gamma ", ShortNumber(spec.localization()), ", n_beta ",
      ShortNumber(r.n_beta()));
  s.detail = absl::StrCat(settings, "; ", LlcDiagnostics(r),
                          r.warnings().empty() ? "" : "; WARNINGS below");
  s.notes = {absl::StrCat("lambda_hat = ", ShortNumber(r.llc_mean()), " ± ",
                          ShortNumber(r.llc_standard_error()), " (", settings,
                          ")"),
             absl::StrCat("diagnostics: ", LlcDiagnostics(r))};
  for (std::string& line : LlcWarnings(r)) s.notes.push_back(std::move(line));
  s.columns = {{"llc", RoundTripNumber(r.llc_mean())},
               {"llc_standard_error", RoundTripNumber(r.llc_standard_error())},
               {"llc_std", RoundTripNumber(r.llc_std())},
               {"llc_n_beta", RoundTripNumber(r.n_beta())},
               {"llc_chains_diverged", absl::StrCat(r.chains_diverged())},
               {"llc_r_hat", r.has_r_hat() ? RoundTripNumber(r.r_hat()) : ""},
               {"llc_ess", r.has_effective_sample_size()
                               ? RoundTripNumber(r.effective_sample_size())
                               : ""},
               {"llc_warnings", absl::StrCat(r.warnings_size())}};
  return s;
}

// The chains' flags, shared by llc and llc_calibration (llc's row holds them).
std::vector<std::string> LlcChainFlags() {
  return {"llc_sampler",         "llc_prior_precision",
          "llc_n_beta_convention", "llc_chains",
          "llc_draws",           "llc_burn_in",
          "llc_steps_between_draws", "llc_batch_size",
          "seed",                "llc_full_loss_every",
          "llc_divergence_factor", "llc_on_divergence",
          "llc_rmsprop_alpha",   "llc_rmsprop_epsilon",
          "llc_sgnht_diffusion", "llc_trace_cap"};
}

KindRow LlcRow() {
  std::vector<std::string> flags = {"llc_step_size", "llc_localization",
                                    "llc_n_beta", "llc_use_latest_calibration"};
  for (std::string& flag : LlcChainFlags()) flags.push_back(std::move(flag));
  return Row(
      "llc",
      {{"llc_sampler", Type::kString, "sgld",
        "llc, llc_calibration: the sampler, sgld, rmsprop_sgld, sgnht or mala "
        "(full-batch Metropolis-adjusted Langevin, for small models)."},
       {"llc_step_size", Type::kDouble, "",
        "llc: eps, the step size (> 0; server default 0.0001)."},
       {"llc_localization", Type::kDouble, "",
        "llc: gamma, the pull towards the checkpoint (>= 0; server default "
        "100)."},
       {"llc_prior_precision", Type::kDouble, "0",
        "llc, llc_calibration: precision of a Gaussian prior (weight decay); "
        "0 = none."},
       {"llc_n_beta", Type::kDouble, "",
        "llc: n_beta given directly (> 0); unset = --llc_n_beta_convention."},
       {"llc_n_beta_convention", Type::kString, "dataset",
        "llc, llc_calibration: n_beta when not given: dataset (n / ln n, n "
        "the shard's size) or batch (B / ln B, devinterp's)."},
       {"llc_chains", Type::kInt, "",
        "llc, llc_calibration: chains, run concurrently (1..64; server "
        "default 4)."},
       {"llc_draws", Type::kInt, "",
        "llc, llc_calibration: draws kept per chain (1..100000; server "
        "default 200, 100 for a calibration)."},
       {"llc_burn_in", Type::kInt, "",
        "llc, llc_calibration: steps discarded first (0..1000000; server "
        "default 100, 50 for a calibration)."},
       {"llc_steps_between_draws", Type::kInt, "",
        "llc, llc_calibration: sampler steps per draw (1..10000; server "
        "default 1)."},
       {"llc_batch_size", Type::kInt, "",
        "llc, llc_calibration: samples per step (>= 1; server default 512)."},
       {"llc_full_loss_every", Type::kInt, "0",
        "llc, llc_calibration: also evaluate the whole shard's loss every "
        "k-th draw; 0 = never (minibatch losses)."},
       {"llc_divergence_factor", Type::kDouble, "",
        "llc, llc_calibration: a loss above this factor of max(L(w*), 0.01) "
        "is a divergence (> 1; server default 100)."},
       {"llc_on_divergence", Type::kString, "drop_chain",
        "llc, llc_calibration: drop_chain (lambda_hat without it) or fail."},
       {"llc_rmsprop_alpha", Type::kDouble, "",
        "llc, llc_calibration: rmsprop_sgld's second-moment decay (0..1; "
        "server default 0.99)."},
       {"llc_rmsprop_epsilon", Type::kDouble, "",
        "llc, llc_calibration: rmsprop_sgld's stabiliser (> 0; server default "
        "0.1)."},
       {"llc_sgnht_diffusion", Type::kDouble, "",
        "llc, llc_calibration: sgnht's diffusion A (> 0; server default "
        "0.01)."},
       {"llc_trace_cap", Type::kInt, "",
        "llc, llc_calibration: stored trace points per chain, past which "
        "every k-th draw is kept (10..100000; server default 1000)."},
       {"llc_use_latest_calibration", Type::kBool, "false",
        "llc: take eps, gamma and n_beta from the recommended cell of the "
        "run's latest succeeded llc_calibration."}},
      std::move(flags),
      {"llc", "llc_standard_error", "llc_std", "llc_n_beta",
       "llc_chains_diverged", "llc_r_hat", "llc_ess", "llc_warnings"},
      FillLlc, SummarizeLlc);
}

// The grid, one row per cell, the recommended one marked "*".
std::vector<std::string> CalibrationGrid(const v1::LlcCalibrationResult& r) {
  std::vector<std::string> lines = {
      "   eps         gamma       n_beta      lambda_hat ± SE      R-hat  "
      "diverged  rejection"};
  for (int i = 0; i < r.cells_size(); ++i) {
    const v1::LlcCalibrationCell& c = r.cells(i);
    const v1::LlcResult& l = c.result();
    lines.push_back(absl::StrFormat(
        "%s %-11s %-11s %-11s %-20s %-6s %-9s %s",
        i == r.recommended() ? "*" : " ", ShortNumber(c.step_size()),
        ShortNumber(c.localization()), ShortNumber(c.n_beta()),
        absl::StrCat(ShortNumber(l.llc_mean()), " ± ",
                     ShortNumber(l.llc_standard_error())),
        l.has_r_hat() ? ShortNumber(l.r_hat()) : "-",
        absl::StrCat(l.chains_diverged(), "/", l.chains_size()),
        c.rejection()));
  }
  return lines;
}

KindSummary SummarizeLlcCalibration(const v1::LlcCalibrationResult& r) {
  KindSummary s;
  const bool recommends =
      r.recommended() >= 0 && r.recommended() < r.cells_size();
  s.columns["llc_calibration_cells"] = absl::StrCat(r.cells_size());
  if (recommends) {
    const v1::LlcCalibrationCell& best = r.cells(r.recommended());
    s.value = best.result().llc_mean();
    s.standard_error = best.result().llc_standard_error();
    s.detail = absl::StrCat("recommended eps ", ShortNumber(best.step_size()),
                            ", gamma ", ShortNumber(best.localization()),
                            ", n_beta ", ShortNumber(best.n_beta()), " of ",
                            r.cells_size(), " cells");
    s.columns["llc_calibration_step_size"] = RoundTripNumber(best.step_size());
    s.columns["llc_calibration_localization"] =
        RoundTripNumber(best.localization());
    s.columns["llc_calibration_n_beta"] = RoundTripNumber(best.n_beta());
  } else {
    s.detail = absl::StrCat("no cell recommended of ", r.cells_size());
  }
  s.notes = CalibrationGrid(r);
  s.notes.push_back(absl::StrCat(recommends ? "* recommended: " : "WARNING: ",
                                 r.reason()));
  return s;
}

KindRow LlcCalibrationRow() {
  std::vector<std::string> flags = {"llc_step_sizes", "llc_localizations",
                                    "llc_n_betas"};
  for (std::string& flag : LlcChainFlags()) flags.push_back(std::move(flag));
  return Row(
      "llc_calibration",
      {{"llc_step_sizes", Type::kString, "",
        "llc_calibration: the eps axis, comma-separated (server default "
        "1e-6,1e-5,0.0001,0.001)."},
       {"llc_localizations", Type::kString, "",
        "llc_calibration: the gamma axis, comma-separated (server default "
        "1,10,100)."},
       {"llc_n_betas", Type::kString, "",
        "llc_calibration: an n_beta axis, comma-separated; empty = "
        "--llc_n_beta_convention in every cell; at most 64 cells in all."}},
      std::move(flags),
      {"llc_calibration_cells", "llc_calibration_step_size",
       "llc_calibration_localization", "llc_calibration_n_beta"},
      FillLlcCalibration, SummarizeLlcCalibration);
}

// ---- gop: gradient outer products ----

const std::vector<std::pair<std::string, v1::GopSpec::Variant>>& GopVariants() {
  static const auto* variants =
      new std::vector<std::pair<std::string, v1::GopSpec::Variant>>{
          {"empirical_fisher", v1::GopSpec::EMPIRICAL_FISHER},
          {"gradient_covariance", v1::GopSpec::GRADIENT_COVARIANCE},
          {"mean_gradient", v1::GopSpec::MEAN_GRADIENT}};
  return *variants;
}

const std::vector<std::pair<std::string, v1::GopSpec::Path>>& GopPaths() {
  static const auto* paths =
      new std::vector<std::pair<std::string, v1::GopSpec::Path>>{
          {"auto", v1::GopSpec::PATH_AUTO},
          {"generic", v1::GopSpec::PATH_GENERIC},
          {"fast", v1::GopSpec::PATH_FAST}};
  return *paths;
}

absl::Status FillGop(const ParsedFlags& flags, v1::GopSpec* g) {
  absl::StatusOr<v1::GopSpec::Variant> variant =
      EnumFlag(flags, "gop_variant", GopVariants());
  if (!variant.ok()) return variant.status();
  g->set_variant(*variant);
  if (flags.IsSet("gop_samples")) g->set_num_samples(flags.Int("gop_samples"));
  g->set_seed(Seed(flags));
  g->set_per_layer(flags.Bool("gop_per_layer"));
  SetIfGiven(flags, "gop_top_k", [g](int32_t v) { g->set_top_k(v); });
  g->set_eigenvectors(flags.Bool("gop_eigenvectors"));
  SetDoubleIfGiven(flags, "gop_rank_rtol",
                   [g](double v) { g->set_rank_rtol(v); });
  SetIfGiven(flags, "gop_hessian_overlap",
             [g](int32_t v) { g->set_hessian_overlap_k(v); });
  absl::StatusOr<v1::GopSpec::Path> path =
      EnumFlag(flags, "gop_path", GopPaths());
  if (!path.ok()) return path.status();
  g->set_path(*path);
  return absl::OkStatus();
}

std::string GopVariantName(v1::GopSpec::Variant variant) {
  for (const auto& [name, value] : GopVariants()) {
    if (value == variant) return name;
  }
  return "empirical_fisher";  // unset
}

// One line of the GOP table: block, params, share, trace, frobenius,
// spectral, nuclear, rank, eff_rank, stable, condition, log_pdet.
std::string GopLine(const std::array<std::string, 12>& c) {
  return absl::StrFormat(
      "%-12s %-10s %-9s %-11s %-11s %-11s %-11s %-6s %-9s %-9s %-11s %s", c[0],
      c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11]);
}

// The line of the metrics of `m` under the label `name` (the model, a layer).
std::string GopMetricsLine(const std::string& name, const v1::GopMetrics& m,
                           const std::string& share) {
  return GopLine({name, absl::StrCat(m.size()), share, ShortNumber(m.trace()),
                  ShortNumber(m.frobenius_norm()),
                  ShortNumber(m.spectral_norm()), ShortNumber(m.nuclear_norm()),
                  absl::StrCat(m.rank()), ShortNumber(m.effective_rank()),
                  ShortNumber(m.stable_rank()),
                  ShortNumber(m.condition_number()),
                  ShortNumber(m.log_pseudo_determinant())});
}

// The whole model's metrics and, with per_layer, one line per layer, then the
// rank rule, the gradient norms and the signal-to-noise ratio.
std::vector<std::string> GopTable(const v1::GopResult& r) {
  std::vector<std::string> lines = {GopLine(
      {"block", "params", "share", "trace", "frobenius", "spectral", "nuclear",
       "rank", "eff_rank", "stable", "condition", "log_pdet"})};
  lines.push_back(GopMetricsLine("(model)", r.metrics(), "1"));
  for (const v1::GopLayer& layer : r.layers()) {
    lines.push_back(GopMetricsLine(layer.name(), layer.metrics(),
                                   ShortNumber(layer.trace_share())));
  }
  std::vector<std::string> top;
  for (double lambda : r.metrics().top_eigenvalues()) {
    top.push_back(ShortNumber(lambda));
  }
  lines.push_back(absl::StrCat("top eigenvalues: ", absl::StrJoin(top, " ")));
  lines.push_back(absl::StrCat("rank rule: ", r.metrics().rank_rule()));
  const v1::GopGradientNorms& norms = r.gradient_norms();
  if (!norms.quantiles().empty()) {
    std::vector<std::string> quantiles;
    for (int i = 0;
         i < norms.quantiles_size() && i < norms.quantile_levels_size(); ++i) {
      quantiles.push_back(absl::StrCat("q",
                                       ShortNumber(norms.quantile_levels(i)),
                                       " ", ShortNumber(norms.quantiles(i))));
    }
    lines.push_back(absl::StrCat("per-sample gradient norms: mean ",
                                 ShortNumber(norms.mean()), ", ",
                                 absl::StrJoin(quantiles, ", ")));
  }
  if (r.has_signal_to_noise()) {
    lines.push_back(absl::StrCat("signal-to-noise ||g-bar||^2 / tr(Sigma): ",
                                 ShortNumber(r.signal_to_noise())));
  }
  if (r.has_hessian_overlap()) {
    const v1::GopHessianOverlap& o = r.hessian_overlap();
    std::vector<std::string> cosines, hessian;
    for (double c : o.cosines()) cosines.push_back(ShortNumber(c));
    for (const v1::Eigenpair& e : o.hessian_eigenpairs()) {
      hessian.push_back(ShortNumber(e.value()));
    }
    lines.push_back(absl::StrCat(
        "Hessian overlap (k ", o.k(), ": GOP ", o.gop_dimension(),
        " vs Hessian ", o.hessian_dimension(), " directions): ",
        ShortNumber(o.overlap()), " (random ", ShortNumber(o.random_baseline()),
        "), cosines ", absl::StrJoin(cosines, " "), "; Hessian eigenvalues ",
        absl::StrJoin(hessian, " "), " (Lanczos ", o.lanczos_iterations(),
        " steps", o.lanczos_converged() ? "" : ", not converged", ")"));
  }
  return lines;
}

KindSummary SummarizeGop(const v1::GopResult& r) {
  const v1::GopMetrics& m = r.metrics();
  KindSummary s;
  s.value = m.trace();
  s.detail = absl::StrCat(GopVariantName(r.variant()), ", N ", r.num_samples(),
                          ", rank ", m.rank(), " of ", r.num_parameters(),
                          ", spectral ", ShortNumber(m.spectral_norm()),
                          ", effective rank ", ShortNumber(m.effective_rank()),
                          r.path().empty() ? "" : ", " + r.path() + " path");
  s.notes = GopTable(r);
  std::vector<std::string> top;
  for (double lambda : m.top_eigenvalues())
    top.push_back(RoundTripNumber(lambda));
  s.columns = {
      {"top_eigenvalues", absl::StrJoin(top, ";")},
      {"gop_trace", RoundTripNumber(m.trace())},
      {"gop_frobenius_norm", RoundTripNumber(m.frobenius_norm())},
      {"gop_spectral_norm", RoundTripNumber(m.spectral_norm())},
      {"gop_nuclear_norm", RoundTripNumber(m.nuclear_norm())},
      {"gop_rank", absl::StrCat(m.rank())},
      {"gop_effective_rank", RoundTripNumber(m.effective_rank())},
      {"gop_stable_rank", RoundTripNumber(m.stable_rank())},
      {"gop_condition_number", RoundTripNumber(m.condition_number())},
      {"gop_log_pseudo_determinant",
       RoundTripNumber(m.log_pseudo_determinant())},
      {"gop_signal_to_noise",
       r.has_signal_to_noise() ? RoundTripNumber(r.signal_to_noise()) : ""},
      {"gop_hessian_overlap",
       r.has_hessian_overlap() ? RoundTripNumber(r.hessian_overlap().overlap())
                               : ""},
      {"gop_hessian_overlap_random",
       r.has_hessian_overlap()
           ? RoundTripNumber(r.hessian_overlap().random_baseline())
           : ""}};
  return s;
}

KindRow GopRow() {
  return Row(
      "gop",
      {{"gop_variant", Type::kString, "empirical_fisher",
        "gop: empirical_fisher ((1/N) sum g_i g_i^T), gradient_covariance "
        "(centred) or mean_gradient (g-bar g-bar^T, rank one)."},
       {"gop_samples", Type::kInt, "",
        "gop: N, a subset of the shard drawn by --seed (server default 0 = "
        "every sample; at most 8192)."},
       {"gop_per_layer", Type::kBool, "false",
        "gop: also the metrics of each layer (a module's parameters), one "
        "line each."},
       {"gop_top_k", Type::kInt, "",
        "gop: the largest eigenvalues reported (0..N; server default 10)."},
       {"gop_eigenvectors", Type::kBool, "false",
        "gop: also the top-k eigenvectors in parameter space (stored as a "
        "blob on the server, under its --gop_max_eigenvector_floats; curvctl "
        "export writes them)."},
       {"gop_rank_rtol", Type::kDouble, "",
        "gop: the rank tolerance relative to lambda_max, in (0, 1) (server "
        "default N * eps_float64)."},
       {"gop_path", Type::kString, "auto",
        "gop: auto (the fast path where the block allows it), generic (a "
        "backward pass per sample, any model) or fast (Linear, Embedding and "
        "added parameters of the zoo MLP or an eval-mode TorchScript model; "
        "refused elsewhere)."},
       {"gop_hessian_overlap", Type::kInt, "",
        "gop: K, also the overlap of the GOP's top-K eigenspace with the "
        "Hessian's top-K (Lanczos on the same block), its random baseline "
        "and principal cosines (1..64; server default 0 = off)."}},
      {"gop_variant", "gop_samples", "seed", "gop_per_layer", "gop_top_k",
       "gop_eigenvectors", "gop_rank_rtol", "gop_path", "gop_hessian_overlap"},
      {"gop_trace", "gop_frobenius_norm", "gop_spectral_norm",
       "gop_nuclear_norm", "gop_rank", "gop_effective_rank", "gop_stable_rank",
       "gop_condition_number", "gop_log_pseudo_determinant",
       "gop_signal_to_noise", "gop_hessian_overlap",
       "gop_hessian_overlap_random"},
      FillGop, SummarizeGop);
}

std::vector<KindRow> BuildKinds() {
  return {SharpnessRow(),
          HessianTraceRow(),
          SpectralDensityRow(),
          HutchppRow(),
          AdaptiveTraceRow(),
          TraceH3Row(),
          LossExpansionRow(),
          ExactHessianRow(),
          PowerIterationRow(),
          LossSliceRow(),
          LlcRow(),
          LlcCalibrationRow(),
          GopRow()};
}

}  // namespace

const std::vector<KindRow>& CurvctlKinds() {
  static const std::vector<KindRow>* kinds =
      new std::vector<KindRow>(BuildKinds());
  return *kinds;
}

const KindRow* FindKind(const std::string& name) {
  for (const KindRow& row : CurvctlKinds()) {
    if (row.name == name) return &row;
  }
  return nullptr;
}

std::string KindNameList() {
  std::vector<std::string> names;
  for (const KindRow& row : CurvctlKinds()) names.push_back(row.name);
  return absl::StrJoin(names, ", ");
}

}  // namespace curvd::client
