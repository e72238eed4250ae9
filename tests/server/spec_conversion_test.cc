#include "server/spec_conversion.h"

#include <utility>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace curvd::server {
namespace {

namespace v1 = ::curvd::v1;

using ::testing::HasSubstr;

TEST(SpecConversionTest, AppliesDocumentedDefaultsToUnsetFields) {
  v1::MeasurementSpec sharpness;
  sharpness.mutable_sharpness();
  auto request = ToCoreRequest(sharpness);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->kind, core::MeasurementKind::kSharpness);
  EXPECT_EQ(request->lanczos.top_k, 1);
  EXPECT_EQ(request->lanczos.max_iterations, 100);
  EXPECT_DOUBLE_EQ(request->lanczos.relative_tolerance, 1e-6);
  EXPECT_EQ(request->objective.loss, core::LossFunction::kCrossEntropy);

  v1::MeasurementSpec trace;
  trace.mutable_hessian_trace();
  trace.set_loss(v1::LOSS_FUNCTION_MSE);
  request = ToCoreRequest(trace);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->trace.min_probes, 10);
  EXPECT_EQ(request->trace.max_probes, 200);
  EXPECT_DOUBLE_EQ(request->trace.target_relative_error, 0.01);
  EXPECT_EQ(request->objective.loss, core::LossFunction::kMse);
}

TEST(SpecConversionTest, ExplicitZerosAreOutOfRangeOrMeaningful) {
  v1::MeasurementSpec k0;
  k0.mutable_sharpness()->set_top_k(0);
  EXPECT_THAT(std::string(ToCoreRequest(k0).status().message()),
              HasSubstr("top_k"));

  v1::MeasurementSpec probes0;
  probes0.mutable_hessian_trace()->set_min_probes(0);
  EXPECT_EQ(ToCoreRequest(probes0).status().code(),
            absl::StatusCode::kInvalidArgument);

  v1::MeasurementSpec max0;
  max0.mutable_hessian_trace()->set_max_probes(0);
  EXPECT_EQ(ToCoreRequest(max0).status().code(),
            absl::StatusCode::kInvalidArgument);

  // An explicit target of 0 means "run max_probes", not the default.
  v1::MeasurementSpec target0;
  target0.mutable_hessian_trace()->set_target_relative_error(0);
  EXPECT_DOUBLE_EQ(ToCoreRequest(target0)->trace.target_relative_error, 0.0);

  EXPECT_EQ(ToCoreRequest(v1::MeasurementSpec()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SpecConversionTest, ResultsFillDiagnosticsAndTheResultOneof) {
  core::MeasurementResult result;
  result.kind = core::MeasurementKind::kSharpness;
  result.sharpness.top = {{5.0, 1e-7, true}, {3.0, 1e-5, false}};
  result.sharpness.iterations = 20;
  result.hvps = 40;
  result.compute_seconds = 1.5;
  result.device = "cpu";
  v1::Measurement m;
  ApplyResult(result, &m);
  EXPECT_DOUBLE_EQ(m.sharpness().sharpness(), 5.0);
  ASSERT_EQ(m.sharpness().top_size(), 2);
  EXPECT_FALSE(m.sharpness().top(1).converged());
  EXPECT_EQ(m.diagnostics().hvps(), 40);
  EXPECT_EQ(m.diagnostics().compute_duration().seconds(), 1);
  EXPECT_EQ(m.diagnostics().compute_duration().nanos(), 500000000);
  EXPECT_EQ(KindName(m.spec()), "unspecified");
}

TEST(SpecConversionTest, PrecisionTravelsBothWays) {
  for (auto [proto, core_precision] :
       {std::pair{v1::PRECISION_UNSPECIFIED, core::Precision::kFloat32},
        std::pair{v1::PRECISION_FLOAT32, core::Precision::kFloat32},
        std::pair{v1::PRECISION_FLOAT64, core::Precision::kFloat64},
        std::pair{v1::PRECISION_TF32, core::Precision::kTf32}}) {
    SCOPED_TRACE(v1::Precision_Name(proto));
    v1::MeasurementSpec spec;
    spec.mutable_sharpness();
    spec.set_precision(proto);
    auto request = ToCoreRequest(spec);
    ASSERT_TRUE(request.ok()) << request.status();
    EXPECT_EQ(request->objective.precision, core_precision);

    core::MeasurementResult result;
    result.precision = core_precision;
    v1::Measurement m;
    ApplyResult(result, &m);
    EXPECT_EQ(m.diagnostics().precision(), proto == v1::PRECISION_UNSPECIFIED
                                               ? v1::PRECISION_FLOAT32
                                               : proto);
  }
}

}  // namespace
}  // namespace curvd::server
