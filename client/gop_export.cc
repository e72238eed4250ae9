#include "client/gop_export.h"

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "core/api/safetensors.h"

namespace curvd::client {
namespace {

namespace v1 = ::curvd::v1;

// A repeated double field as an F64 tensor.
core::SafetensorsTensor Float64Tensor(
    std::string name, std::vector<int64_t> shape,
    const google::protobuf::RepeatedField<double>& values) {
  return core::Float64SafetensorsTensor(std::move(name), std::move(shape),
                                        values.data(), values.size());
}

core::SafetensorsTensor Spectrum(std::string name, const v1::GopMetrics& m) {
  return Float64Tensor(std::move(name), {m.eigenvalues_size()},
                       m.eigenvalues());
}

// The eigenvectors tensor: the blob's when there is one, else the message's.
absl::StatusOr<core::SafetensorsTensor> Eigenvectors(
    const v1::GopResult& gop, const std::string& blob) {
  const std::vector<int64_t> shape = {gop.num_eigenvectors(),
                                      gop.num_parameters()};
  if (blob.empty()) {
    if (gop.eigenvectors_size() != shape[0] * shape[1]) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the result holds ", gop.eigenvectors_size(),
          " eigenvector entries for ", shape[0], " x ", shape[1]));
    }
    return Float64Tensor("eigenvectors", shape, gop.eigenvectors());
  }
  CURVD_ASSIGN_OR_RETURN(std::vector<core::SafetensorsTensor> tensors,
                         core::ParseSafetensors(blob));
  for (core::SafetensorsTensor& t : tensors) {
    if (t.name != "eigenvectors") continue;
    if (t.dtype != "F64" || t.shape != shape) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the eigenvectors blob holds ", t.dtype, " [",
          absl::StrJoin(t.shape, ", "), "], not F64 [", shape[0], ", ",
          shape[1], "]"));
    }
    return std::move(t);
  }
  return absl::InvalidArgumentError(
      "the eigenvectors blob has no \"eigenvectors\" tensor");
}

}  // namespace

absl::StatusOr<v1::GopResult> GopResultOf(const v1::Measurement& m) {
  if (m.state() != v1::Measurement::SUCCEEDED) {
    return absl::FailedPreconditionError(
        absl::StrCat(m.name(), " is ", v1::Measurement::State_Name(m.state()),
                     ", not SUCCEEDED: it has no result to export"));
  }
  if (m.has_gop()) return m.gop();
  if (m.has_plan() && m.plan().has_gop()) return m.plan().gop();
  return absl::InvalidArgumentError(absl::StrCat(
      m.name(), " measured no gop: only a gop result has arrays to export"));
}

absl::StatusOr<std::string> GopExportFile(const v1::GopResult& gop,
                                          const std::string& blob) {
  std::vector<core::SafetensorsTensor> tensors = {
      Spectrum("eigenvalues", gop.metrics()),
      Float64Tensor("top_eigenvalues",
                    {gop.metrics().top_eigenvalues_size()},
                    gop.metrics().top_eigenvalues())};
  if (gop.num_eigenvectors() > 0) {
    CURVD_ASSIGN_OR_RETURN(core::SafetensorsTensor vectors,
                           Eigenvectors(gop, blob));
    tensors.push_back(std::move(vectors));
  }
  for (const v1::GopLayer& layer : gop.layers()) {
    tensors.push_back(
        Spectrum(absl::StrCat("layers.", layer.name(), ".eigenvalues"),
                 layer.metrics()));
  }
  return core::SerializeSafetensors(tensors);
}

}  // namespace curvd::client
