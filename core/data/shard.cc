#include "core/data/shard.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>
#include <zlib.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <sstream>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "core/api/modular_addition.h"
#include "core/api/safetensors.h"
#include "core/data/model.h"
#include "core/engine/torch_status.h"

namespace curvd::core {
namespace {

constexpr uint32_t kIdxImagesMagic =
    0x00000803;  // unsigned bytes, 3 dimensions
constexpr uint32_t kIdxLabelsMagic = 0x00000801;  // unsigned bytes, 1 dimension
// Larger idx files (or CIFAR batch files together) than this are not shards
// this service measures; the cap also stops a gzip bomb from filling memory.
constexpr uint64_t kMaxIdxBytes = uint64_t{1} << 32;
constexpr int kReadChunkBytes = 1 << 20;
// The same bound ParseShardUri applies, repeated because a ShardSpec can also
// be built directly.
constexpr int64_t kMaxGeneratedElements = int64_t{1} << 28;

absl::Status Invalid(const std::string& path, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

absl::StatusOr<std::string> ReadGzip(const std::string& path) {
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr)
    return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::unique_ptr<gzFile_s, int (*)(gzFile)> closer(file, gzclose);
  std::string out;
  std::vector<char> chunk(kReadChunkBytes);
  while (true) {
    const int n = gzread(file, chunk.data(), kReadChunkBytes);
    if (n < 0) break;  // reported by gzerror below
    if (n == 0) break;
    out.append(chunk.data(), n);
    if (out.size() > kMaxIdxBytes) {
      return Invalid(path, absl::StrCat("decompresses to more than ",
                                        kMaxIdxBytes, " bytes"));
    }
  }
  int error = Z_OK;
  const char* message = gzerror(file, &error);
  if (error != Z_OK && error != Z_STREAM_END) {
    return Invalid(path,
                   absl::StrCat("corrupt or truncated gzip data: ", message));
  }
  return out;
}

// Reads a file whole, decompressing it when it starts with the gzip magic 1f
// 8b.
absl::StatusOr<std::string> ReadMaybeGzipped(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  unsigned char magic[2] = {0, 0};
  in.read(reinterpret_cast<char*>(magic), 2);
  if (in.gcount() == 2 && magic[0] == 0x1f && magic[1] == 0x8b) {
    in.close();
    return ReadGzip(path);
  }
  in.clear();
  in.seekg(0);
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad())
    return absl::DataLossError(absl::StrCat("error reading ", path));
  return contents.str();
}

uint32_t BigEndian32(const std::string& bytes, size_t at) {
  uint32_t value = 0;
  for (size_t i = 0; i < 4; ++i) {
    value = (value << 8) | static_cast<unsigned char>(bytes[at + i]);
  }
  return value;
}

// Checks an idx file's magic and dimensions and that its size matches them;
// returns the dimensions.
absl::StatusOr<std::vector<uint64_t>> ParseIdxHeader(const std::string& path,
                                                     const std::string& bytes,
                                                     uint32_t magic,
                                                     const char* what) {
  const size_t ndims = magic & 0xff;
  const size_t header = 4 + 4 * ndims;
  if (bytes.size() < header) {
    return Invalid(path,
                   absl::StrCat("truncated idx ", what, " file: ", bytes.size(),
                                " bytes, shorter than its header"));
  }
  if (BigEndian32(bytes, 0) != magic) {
    return Invalid(
        path, absl::StrCat("not an idx ", what, " file: magic 0x",
                           absl::Hex(BigEndian32(bytes, 0), absl::kZeroPad8),
                           ", expected 0x", absl::Hex(magic, absl::kZeroPad8)));
  }
  std::vector<uint64_t> dims;
  uint64_t size = 1;
  for (size_t i = 0; i < ndims; ++i) {
    dims.push_back(BigEndian32(bytes, 4 + 4 * i));
    if (__builtin_mul_overflow(size, dims.back(), &size))
      size = kMaxIdxBytes + 1;
  }
  if (size != bytes.size() - header) {
    return Invalid(
        path,
        absl::StrCat(size < bytes.size() - header ? "oversized" : "truncated",
                     " idx ", what, " file: dimensions [",
                     absl::StrJoin(dims, ", "), "] need ", size,
                     " data bytes but it has ", bytes.size() - header));
  }
  return dims;
}

// The range [begin, begin + count) of `total` samples that offset/limit select.
absl::StatusOr<std::pair<int64_t, int64_t>> Slice(const ShardSpec& spec,
                                                  int64_t total) {
  if (spec.offset < 0 || spec.limit < 0) {
    return absl::InvalidArgumentError(absl::StrCat("offset (", spec.offset,
                                                   ") and limit (", spec.limit,
                                                   ") must not be negative"));
  }
  if (spec.offset >= total) {
    return absl::InvalidArgumentError(
        absl::StrCat("shard is empty: it has ", total,
                     " samples and the slice starts at offset ", spec.offset));
  }
  int64_t count = total - spec.offset;
  if (spec.limit > 0 && spec.limit < count) count = spec.limit;
  return std::make_pair(spec.offset, count);
}

absl::StatusOr<Shard> LoadIdx(const ShardSpec& spec) {
  CURVD_ASSIGN_OR_RETURN(std::string images, ReadMaybeGzipped(spec.path));
  CURVD_ASSIGN_OR_RETURN(
      auto image_dims,
      ParseIdxHeader(spec.path, images, kIdxImagesMagic, "images"));
  CURVD_ASSIGN_OR_RETURN(std::string labels,
                         ReadMaybeGzipped(spec.labels_path));
  CURVD_ASSIGN_OR_RETURN(
      auto label_dims,
      ParseIdxHeader(spec.labels_path, labels, kIdxLabelsMagic, "labels"));
  if (image_dims[0] != label_dims[0]) {
    return absl::InvalidArgumentError(absl::StrCat(
        "label count mismatch: ", spec.path, " has ", image_dims[0],
        " images but ", spec.labels_path, " has ", label_dims[0], " labels"));
  }
  CURVD_ASSIGN_OR_RETURN(auto range,
                         Slice(spec, static_cast<int64_t>(image_dims[0])));
  const auto [begin, count] = range;
  const int64_t pixels = static_cast<int64_t>(image_dims[1] * image_dims[2]);
  // Only the slice is converted, so a small slice of a large file stays small.
  auto* image_data =
      reinterpret_cast<uint8_t*>(images.data()) + 16 + begin * pixels;
  auto* label_data = reinterpret_cast<uint8_t*>(labels.data()) + 8 + begin;
  Shard shard;
  shard.inputs = torch::from_blob(image_data, {count, pixels}, torch::kUInt8)
                     .to(torch::kFloat32)
                     .div_(255.0);
  shard.targets =
      torch::from_blob(label_data, {count}, torch::kUInt8).to(torch::kInt64);
  return shard;
}

// Checks that `bytes`, the contents of `path`, are whole records whose label
// bytes are in range.
absl::Status CheckCifarRecords(const std::string& path,
                               const std::string& bytes,
                               const CifarRecords& layout) {
  const size_t label_bytes = layout.labels.size();
  const size_t record = label_bytes + kCifarPixelBytes;
  if (bytes.size() % record != 0) {
    return Invalid(
        path, absl::StrCat(bytes.size(), " bytes are not whole ", layout.title,
                           " records of ", record, " bytes (", label_bytes,
                           " label byte", label_bytes > 1 ? "s" : "",
                           " then ", kCifarPixelBytes, " pixel bytes)"));
  }
  for (size_t at = 0; at < bytes.size(); at += record) {
    for (size_t i = 0; i < label_bytes; ++i) {
      const int64_t label = static_cast<unsigned char>(bytes[at + i]);
      if (label >= layout.labels[i].classes) {
        return Invalid(
            path, absl::StrCat("record ", at / record, "'s ",
                               layout.labels[i].name, " byte is ", label, "; ",
                               layout.title, " ", layout.labels[i].name,
                               "s are 0 to ", layout.labels[i].classes - 1));
      }
    }
  }
  return absl::OkStatus();
}

// Reads every batch file whole and checks it, so that a corrupt file is found
// whatever the slice; converts only the slice.
absl::StatusOr<Shard> LoadCifar(const ShardSpec& spec) {
  const CifarRecords& layout = spec.cifar;
  if (spec.record_files.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(spec.path, ": a ", layout.title,
                     " shard needs at least one batch file"));
  }
  std::string records;
  for (const std::string& path : spec.record_files) {
    CURVD_ASSIGN_OR_RETURN(std::string bytes, ReadMaybeGzipped(path));
    CURVD_RETURN_IF_ERROR(CheckCifarRecords(path, bytes, layout));
    if (records.size() + bytes.size() > kMaxIdxBytes) {
      return Invalid(path, absl::StrCat("the batch files hold more than ",
                                        kMaxIdxBytes, " bytes together"));
    }
    records += bytes;
  }
  const int64_t label_bytes = static_cast<int64_t>(layout.labels.size());
  const int64_t record = label_bytes + kCifarPixelBytes;
  CURVD_ASSIGN_OR_RETURN(
      auto range, Slice(spec, static_cast<int64_t>(records.size()) / record));
  const auto [begin, count] = range;
  const torch::Tensor rows = torch::from_blob(records.data() + begin * record,
                                              {count, record}, torch::kUInt8);
  const auto channel = [](const std::array<float, 3>& values) {
    return torch::tensor({values[0], values[1], values[2]}).view({1, 3, 1, 1});
  };
  Shard shard;
  shard.inputs = rows.narrow(1, label_bytes, kCifarPixelBytes)
                     .reshape({count, kCifarChannels, kCifarImageSide,
                               kCifarImageSide})
                     .to(torch::kFloat32)
                     .div_(255.0)
                     .sub_(channel(layout.mean))
                     .div_(channel(layout.stddev));
  shard.targets = rows.select(1, static_cast<int64_t>(layout.target_label))
                      .to(torch::kInt64);
  return shard;
}

absl::StatusOr<torch::Tensor> ShardTensor(
    const ShardSpec& spec, const std::vector<SafetensorsTensor>& file,
    const std::string& name) {
  for (const SafetensorsTensor& t : file) {
    if (t.name != name) continue;
    if (t.shape.empty()) {
      return Invalid(
          spec.path,
          absl::StrCat("'", name,
                       "' is a scalar; it needs a sample dimension"));
    }
    CURVD_ASSIGN_OR_RETURN(torch::Tensor tensor, TensorFromSafetensors(t));
    return tensor;
  }
  return Invalid(spec.path,
                 absl::StrCat("shard has no tensor named '", name,
                              "' (it needs \"inputs\" and \"targets\")"));
}

// Half precision is widened: the objective works in float32 or float64, and
// CPU kernels for half are incomplete in LibTorch 1.13.
torch::Tensor WidenHalf(torch::Tensor t) {
  return t.scalar_type() == torch::kFloat16 ||
                 t.scalar_type() == torch::kBFloat16
             ? t.to(torch::kFloat32)
             : t;
}

// Floating inputs as they are (half widened); integer inputs are token ids
// for an embedding, widened losslessly to the int64 that torch's embedding
// takes and never cast to float, whatever the measurement's precision. BOOL is
// refused: it is neither features nor ids.
absl::StatusOr<torch::Tensor> ShardInputs(const ShardSpec& spec,
                                          torch::Tensor inputs) {
  if (inputs.is_floating_point()) return WidenHalf(std::move(inputs));
  if (inputs.scalar_type() == torch::kBool) {
    return Invalid(spec.path,
                   "inputs must be floating point (F16, BF16, F32, F64) or "
                   "integer token ids (I64, I32, I16, I8, U8), not BOOL");
  }
  return inputs.to(torch::kInt64);
}

absl::StatusOr<Shard> LoadSafetensorsShard(const ShardSpec& spec) {
  CURVD_ASSIGN_OR_RETURN(std::vector<SafetensorsTensor> file,
                         ReadSafetensorsFile(spec.path));
  Shard shard;
  CURVD_ASSIGN_OR_RETURN(shard.inputs, ShardTensor(spec, file, "inputs"));
  CURVD_ASSIGN_OR_RETURN(shard.targets, ShardTensor(spec, file, "targets"));
  file.clear();
  CURVD_ASSIGN_OR_RETURN(shard.inputs, ShardInputs(spec, shard.inputs));
  if (shard.targets.is_floating_point()) {
    shard.targets = WidenHalf(shard.targets);
  } else if (shard.targets.scalar_type() == torch::kBool ||
             shard.targets.dim() != 1) {
    return Invalid(
        spec.path,
        "integer targets must be class indices: one dimension, not BOOL");
  } else {
    shard.targets = shard.targets.to(torch::kInt64);
  }
  if (shard.inputs.size(0) != shard.targets.size(0)) {
    return Invalid(spec.path, absl::StrCat("inputs have ", shard.inputs.size(0),
                                           " samples but targets have ",
                                           shard.targets.size(0)));
  }
  CURVD_ASSIGN_OR_RETURN(auto range, Slice(spec, shard.inputs.size(0)));
  if (range.second != shard.inputs.size(0)) {
    // clone() releases the rows outside the slice.
    shard.inputs = shard.inputs.narrow(0, range.first, range.second).clone();
    shard.targets = shard.targets.narrow(0, range.first, range.second).clone();
  }
  return shard;
}

absl::StatusOr<int64_t> PositiveParam(const ShardSpec& spec,
                                      const std::string& key) {
  auto it = spec.params.find(key);
  int64_t value = 0;
  if (it == spec.params.end() || !absl::SimpleAtoi(it->second, &value) ||
      value < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("builtin ", spec.generator,
                     " needs a positive integer parameter ", key));
  }
  return value;
}

// X ~ N(0, 1) of shape [n, d]; targets X W* + 0.1 noise with W* ~ N(0, 1/d) of
// shape [d, outputs], so targets have roughly unit variance whatever d is. W*,
// X and the noise come from one generator seeded by `seed`, in that order: a
// slice of a shard is the same rows as in the whole shard.
absl::StatusOr<Shard> GenerateGaussianRegression(const ShardSpec& spec) {
  CURVD_ASSIGN_OR_RETURN(const int64_t n, PositiveParam(spec, "n"));
  CURVD_ASSIGN_OR_RETURN(const int64_t d, PositiveParam(spec, "d"));
  CURVD_ASSIGN_OR_RETURN(const int64_t outputs, PositiveParam(spec, "outputs"));
  uint64_t seed = 0;
  if (auto it = spec.params.find("seed");
      it != spec.params.end() && !absl::SimpleAtoi(it->second, &seed)) {
    return absl::InvalidArgumentError(absl::StrCat("builtin ", spec.generator,
                                                   " seed '", it->second,
                                                   "' is not an integer"));
  }
  if (n > kMaxGeneratedElements / d || n > kMaxGeneratedElements / outputs) {
    return absl::InvalidArgumentError(absl::StrCat(
        "builtin ", spec.generator, " of n=", n, ", d=", d, ", outputs=",
        outputs, " exceeds ", kMaxGeneratedElements, " elements per tensor"));
  }
  CURVD_ASSIGN_OR_RETURN(auto range, Slice(spec, n));
  at::Generator generator = at::detail::createCPUGenerator(seed);
  const auto options = torch::TensorOptions().dtype(torch::kFloat32);
  const torch::Tensor w = torch::randn({d, outputs}, generator, options) /
                          std::sqrt(static_cast<double>(d));
  Shard shard;
  shard.inputs = torch::randn({n, d}, generator, options);
  shard.targets =
      shard.inputs.mm(w) + 0.1 * torch::randn({n, outputs}, generator, options);
  if (range.second != n) {
    shard.inputs = shard.inputs.narrow(0, range.first, range.second).clone();
    shard.targets = shard.targets.narrow(0, range.first, range.second).clone();
  }
  return shard;
}

// The pairs of core/api/modular_addition.h as the grokking Transformer takes
// them: inputs float32 [N, 3] rows (a, b, p), the token ids of "a b =" (float32
// holds every id exactly), targets int64 (a + b) mod p.
absl::StatusOr<Shard> GenerateModularAddition(const ShardSpec& spec) {
  std::map<std::string, std::string> params = spec.params;
  absl::StatusOr<ModularAdditionSpec> parsed =
      TakeModularAdditionParams(params);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "builtin ", spec.generator, ": ", parsed.status().message()));
  }
  if (!params.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("builtin ", spec.generator,
                                                   ": unknown parameter '",
                                                   params.begin()->first, "'"));
  }
  const std::vector<int64_t> pairs = ModularAdditionPairs(*parsed);
  const int64_t n = static_cast<int64_t>(pairs.size());
  CURVD_ASSIGN_OR_RETURN(auto range, Slice(spec, n));
  const int64_t p = parsed->p;
  Shard shard;
  shard.inputs = torch::empty({range.second, 3}, torch::kFloat32);
  shard.targets = torch::empty({range.second}, torch::kInt64);
  float* inputs = shard.inputs.data_ptr<float>();
  int64_t* targets = shard.targets.data_ptr<int64_t>();
  for (int64_t row = 0; row < range.second; ++row) {
    const int64_t pair = pairs[range.first + row];
    const int64_t a = pair / p;
    const int64_t b = pair % p;
    inputs[3 * row] = static_cast<float>(a);
    inputs[3 * row + 1] = static_cast<float>(b);
    inputs[3 * row + 2] = static_cast<float>(p);
    targets[row] = (a + b) % p;
  }
  return shard;
}

absl::StatusOr<Shard> LoadShardOrThrow(const ShardSpec& spec) {
  switch (spec.kind) {
    case ShardSpec::Kind::kSafetensors:
      return LoadSafetensorsShard(spec);
    case ShardSpec::Kind::kIdx:
      return LoadIdx(spec);
    case ShardSpec::Kind::kCifar:
      return LoadCifar(spec);
    case ShardSpec::Kind::kBuiltin:
      if (spec.generator == "gaussian_regression")
        return GenerateGaussianRegression(spec);
      if (spec.generator == kModularAdditionGenerator)
        return GenerateModularAddition(spec);
      return absl::InvalidArgumentError(
          absl::StrCat("unknown builtin generator '", spec.generator, "'"));
  }
  return absl::InvalidArgumentError("unknown shard kind");
}

}  // namespace

absl::StatusOr<Shard> LoadShard(const ShardSpec& spec) {
  // Allocation failures for a large shard surface here rather than as a
  // crash; StatusFromException tells them from other torch errors.
  return CatchTorchExceptions([&] { return LoadShardOrThrow(spec); },
                              "cannot load shard: ");
}

}  // namespace curvd::core
