// The bounds of every option a request can set, in one table: ValidateRequest
// enforces them, and the proto's comments and curvctl's help cite them (a test
// checks that they agree). Defaults live in the option structs themselves
// (method_types.h, spectral_measurement.h, loss_measurement_types.h).
#ifndef CURVD_CORE_API_OPTION_LIMITS_H_
#define CURVD_CORE_API_OPTION_LIMITS_H_

namespace curvd::core::limits {

// sharpness.top_k and .bottom_k, power_iteration.top_k.
inline constexpr int kMaxEigenpairs = 64;
// sharpness.max_iterations (and the loss slice's Lanczos).
inline constexpr int kMaxLanczosIterations = 1000;
// min_probes and max_probes of hessian_trace, trace_h3 and the loss
// expansion's tr(H^3); at least kMinProbes, for a standard error.
inline constexpr int kMinProbes = 2;
inline constexpr int kMaxProbes = 100000;
inline constexpr int kMaxSlqRuns = 1000;
inline constexpr int kMaxSlqSteps = 1000;
inline constexpr int kMinGridPoints = 2;
inline constexpr int kMaxGridPoints = 100000;
// hutchpp.max_hvps and adaptive_trace.max_hvps.
inline constexpr int kMinHutchppHvps = 3;
inline constexpr int kMaxHutchppHvps = 100000;
inline constexpr int kMaxPowerIterations = 100000;
inline constexpr int kMaxSlicePoints = 10000;
// llc (and llc_calibration.base): chains run concurrently on one device.
inline constexpr int kMaxLlcChains = 64;
inline constexpr int kMaxLlcDraws = 100000;
inline constexpr int kMaxLlcBurnIn = 1000000;
inline constexpr int kMaxLlcStepsBetweenDraws = 10000;
inline constexpr int kMinLlcTraceCap = 10;
inline constexpr int kMaxLlcTraceCap = 100000;
// llc_calibration: step sizes x localizations x n_betas.
inline constexpr int kMaxLlcCalibrationCells = 64;

}  // namespace curvd::core::limits

#endif  // CURVD_CORE_API_OPTION_LIMITS_H_
