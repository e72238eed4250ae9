// Expectations that two GOP results agree (the fast path against the generic
// one, tests/core/gop_*fast_path_test.cc): every metric to kTolerance
// relative, eigenvectors up to sign.
#ifndef CURVD_TESTS_CORE_GOP_EXPECTATIONS_H_
#define CURVD_TESTS_CORE_GOP_EXPECTATIONS_H_

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/measurements/gop.h"
#include "core/measurements/gop_fast_path.h"

namespace curvd::core::testing {

// The issue asks for 1e-6 relative; both paths are exact in float64, so they
// agree to rounding, far below it.
inline constexpr double kTolerance = 1e-9;

// The fast path's G^T w (`features`, w [M, k]) against G^T w of the generic
// path's retained per-sample gradients G [N, M], to 1e-12 of its largest entry.
inline void ExpectSameGradientTransposeTimes(const LinearGopFeatures& features,
                                             const torch::Tensor& gradients,
                                             const torch::Tensor& w) {
  const torch::Tensor expected = gradients.t().mm(w);
  EXPECT_LT((LinearGopGradientTransposeTimes(features, w) - expected)
                .abs()
                .max()
                .item<double>(),
            1e-12 * expected.abs().max().item<double>());
}

inline void ExpectClose(double fast, double generic, double scale,
                        const std::string& what) {
  EXPECT_NEAR(fast, generic, kTolerance * std::max(scale, 1e-300)) << what;
}

inline void ExpectSameSpectrum(const std::vector<double>& fast,
                               const std::vector<double>& generic, double scale,
                               const std::string& what) {
  ASSERT_EQ(fast.size(), generic.size()) << what;
  for (size_t j = 0; j < fast.size(); ++j) {
    ExpectClose(fast[j], generic[j], scale, absl::StrCat(what, "[", j, "]"));
  }
}

inline void ExpectSameMetrics(const GopMetrics& fast, const GopMetrics& generic,
                              const std::string& what) {
  SCOPED_TRACE(what);
  const double top = generic.spectral_norm;
  EXPECT_EQ(fast.size, generic.size);
  EXPECT_EQ(fast.rank, generic.rank);
  ExpectSameSpectrum(fast.eigenvalues, generic.eigenvalues, top, "eigenvalues");
  // The top ones may include numerical zeros: compared on lambda_max's scale.
  ExpectSameSpectrum(fast.top_eigenvalues, generic.top_eigenvalues, top,
                     "top_eigenvalues");
  ExpectSameSpectrum(fast.explained_variance, generic.explained_variance, 1,
                     "explained_variance");
  ExpectClose(fast.trace, generic.trace, generic.trace, "trace");
  ExpectClose(fast.frobenius_norm, generic.frobenius_norm,
              generic.frobenius_norm, "frobenius_norm");
  ExpectClose(fast.spectral_norm, generic.spectral_norm, top, "spectral_norm");
  ExpectClose(fast.nuclear_norm, generic.nuclear_norm, generic.nuclear_norm,
              "nuclear_norm");
  ExpectClose(fast.rank_tolerance, generic.rank_tolerance,
              generic.rank_tolerance, "rank_tolerance");
  ExpectClose(fast.effective_rank, generic.effective_rank,
              generic.effective_rank, "effective_rank");
  ExpectClose(fast.stable_rank, generic.stable_rank, generic.stable_rank,
              "stable_rank");
  // lambda_min carries lambda_max's absolute rounding: 1e-6 relative, the
  // issue's bound.
  EXPECT_NEAR(fast.condition_number, generic.condition_number,
              1e-6 * generic.condition_number);
  EXPECT_NEAR(fast.log_pseudo_determinant, generic.log_pseudo_determinant,
              1e-6 * std::max(1.0, std::abs(generic.log_pseudo_determinant)));
  ExpectClose(fast.max_nonzero, generic.max_nonzero, top, "max_nonzero");
  ExpectClose(fast.min_nonzero, generic.min_nonzero, top, "min_nonzero");
  ExpectClose(fast.mean_nonzero, generic.mean_nonzero, top, "mean_nonzero");
  ExpectClose(fast.std_nonzero, generic.std_nonzero, top, "std_nonzero");
  ExpectClose(fast.mean_all, generic.mean_all, generic.mean_all, "mean_all");
  ExpectClose(fast.std_all, generic.std_all, generic.std_all, "std_all");
}

// Everything but the path; eigenvectors up to sign.
inline void ExpectSameResult(const GopResult& fast, const GopResult& generic) {
  EXPECT_EQ(fast.variant, generic.variant);
  EXPECT_EQ(fast.num_samples, generic.num_samples);
  EXPECT_EQ(fast.num_parameters, generic.num_parameters);
  ExpectSameMetrics(fast.metrics, generic.metrics, "whole");
  ASSERT_EQ(fast.layers.size(), generic.layers.size());
  for (size_t l = 0; l < fast.layers.size(); ++l) {
    EXPECT_EQ(fast.layers[l].name, generic.layers[l].name);
    EXPECT_EQ(fast.layers[l].size, generic.layers[l].size);
    ExpectSameMetrics(fast.layers[l].metrics, generic.layers[l].metrics,
                      generic.layers[l].name);
    ExpectClose(fast.layers[l].trace_share, generic.layers[l].trace_share, 1,
                "trace_share");
  }
  ExpectClose(fast.gradient_norms.mean, generic.gradient_norms.mean,
              generic.gradient_norms.mean, "gradient norm mean");
  ExpectSameSpectrum(fast.gradient_norms.quantiles,
                     generic.gradient_norms.quantiles,
                     generic.gradient_norms.mean, "gradient norm quantiles");
  ASSERT_EQ(fast.signal_to_noise.has_value(),
            generic.signal_to_noise.has_value());
  if (generic.signal_to_noise) {
    ExpectClose(*fast.signal_to_noise, *generic.signal_to_noise,
                *generic.signal_to_noise, "signal_to_noise");
  }
  ASSERT_EQ(fast.num_eigenvectors, generic.num_eigenvectors);
  ASSERT_EQ(fast.eigenvectors.size(), generic.eigenvectors.size());
  const int64_t m = generic.num_parameters;
  for (int64_t i = 0; i < generic.num_eigenvectors; ++i) {
    double dot = 0;
    for (int64_t e = 0; e < m; ++e) {
      dot += fast.eigenvectors[i * m + e] * generic.eigenvectors[i * m + e];
    }
    const double sign = dot < 0 ? -1 : 1;
    for (int64_t e = 0; e < m; ++e) {
      EXPECT_NEAR(sign * fast.eigenvectors[i * m + e],
                  generic.eigenvectors[i * m + e], 1e-8)
          << "eigenvector " << i << " entry " << e;
    }
  }
}

// Per layer and with eigenvectors: everything both paths compute.
inline GopOptions Everything(GopVariant variant, int top_k) {
  GopOptions options;
  options.variant = variant;
  options.top_k = top_k;
  options.per_layer = true;
  options.eigenvectors = true;
  return options;
}

inline GopOptions WithPath(GopOptions options, GopPath path) {
  options.path = path;
  return options;
}

}  // namespace curvd::core::testing

#endif  // CURVD_TESTS_CORE_GOP_EXPECTATIONS_H_
