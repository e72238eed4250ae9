#include "core/data/shard.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>
#include <zlib.h>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "core/api/data_roots.h"
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
// A shard's safetensors header names two tensors; this leaves room for any
// __metadata__ a writer adds.
constexpr uint64_t kMaxShardHeaderBytes = uint64_t{1} << 20;
// The same bound ParseShardUri applies, repeated because a ShardSpec can also
// be built directly.
constexpr int64_t kMaxGeneratedElements = int64_t{1} << 28;

absl::Status Invalid(const std::string& path, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

// A file of a shard read front to back, decompressed when it starts with the
// gzip magic 1f 8b; opened beneath the spec's data roots.
class ShardFile {
 public:
  static absl::StatusOr<ShardFile> Open(const ShardSpec& spec,
                                        const std::string& path) {
    CURVD_ASSIGN_OR_RETURN(FileDescriptor fd,
                           OpenDataFile(path, spec.data_roots));
    ShardFile file(path);
    CURVD_ASSIGN_OR_RETURN(file.size_, FileSize(fd.get(), path));
    unsigned char magic[2] = {0, 0};
    if (file.size_ >= 2) {
      CURVD_RETURN_IF_ERROR(ReadExactly(fd.get(), 0, 2, magic, path));
    }
    if (magic[0] == 0x1f && magic[1] == 0x8b) {
      // gzdopen owns the descriptor it is given.
      file.gz_.reset(gzdopen(fd.release(), "rb"));
      if (file.gz_ == nullptr) return absl::NotFoundError("cannot open " + path);
    } else {
      file.fd_ = std::move(fd);
    }
    return file;
  }

  bool gzipped() const { return gz_ != nullptr; }
  // The bytes on disk (compressed, when gzipped).
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }

  // Reads up to `size` bytes into `out`; fewer only at the end of the data.
  absl::StatusOr<uint64_t> Read(uint64_t size, void* out) {
    char* at = static_cast<char*>(out);
    uint64_t done = 0;
    while (done < size) {
      const uint64_t want = std::min<uint64_t>(size - done, kReadChunkBytes);
      int64_t n = 0;
      if (gzipped()) {
        n = gzread(gz_.get(), at + done, static_cast<unsigned>(want));
      } else {
        n = pread(fd_.get(), at + done, want, static_cast<off_t>(offset_));
        if (n < 0 && errno == EINTR) continue;
      }
      if (n < 0) return ReadError();
      if (n == 0) break;
      done += static_cast<uint64_t>(n);
      offset_ += static_cast<uint64_t>(n);
    }
    if (done < size && gzipped()) CURVD_RETURN_IF_ERROR(GzipError());
    return done;
  }

  // Reads and drops up to `size` bytes; returns how many there were.
  absl::StatusOr<uint64_t> Skip(uint64_t size) {
    if (!gzipped()) {
      const uint64_t skipped = std::min(size, size_ - std::min(offset_, size_));
      offset_ += skipped;
      return skipped;
    }
    std::vector<char> scratch(std::min<uint64_t>(size, kReadChunkBytes));
    uint64_t done = 0;
    while (done < size) {
      CURVD_ASSIGN_OR_RETURN(
          const uint64_t n,
          Read(std::min<uint64_t>(size - done, scratch.size()), scratch.data()));
      done += n;
      if (n == 0) break;
    }
    return done;
  }

  // Reads what is left, whole, charging `budget` as it grows, so that a gzip
  // bomb stops at the budget rather than at the memory's end.
  absl::StatusOr<std::string> ReadRest(uint64_t cap, MemoryBudget& budget,
                                       const std::string& what) {
    std::string out;
    while (true) {
      const size_t at = out.size();
      const uint64_t chunk = gzipped() ? kReadChunkBytes : size_ - offset_;
      CURVD_RETURN_IF_ERROR(budget.Charge(what, static_cast<int64_t>(chunk)));
      out.resize(at + chunk);
      CURVD_ASSIGN_OR_RETURN(const uint64_t n, Read(chunk, out.data() + at));
      out.resize(at + n);
      if (n < chunk || !gzipped()) break;
      if (out.size() > cap) {
        return Invalid(path_, absl::StrCat("decompresses to more than ", cap,
                                           " bytes"));
      }
    }
    return out;
  }

 private:
  explicit ShardFile(std::string path) : path_(std::move(path)) {}

  absl::Status ReadError() {
    if (gzipped()) return GzipError();
    return absl::DataLossError(
        absl::StrCat("error reading ", path_, ": ", std::strerror(errno)));
  }
  absl::Status GzipError() {
    int error = Z_OK;
    const char* message = gzerror(gz_.get(), &error);
    if (error == Z_OK || error == Z_STREAM_END) return absl::OkStatus();
    return Invalid(path_,
                   absl::StrCat("corrupt or truncated gzip data: ", message));
  }

  struct GzClose {
    void operator()(gzFile file) const { gzclose(file); }
  };
  std::string path_;
  FileDescriptor fd_;
  std::unique_ptr<gzFile_s, GzClose> gz_;
  uint64_t size_ = 0;
  uint64_t offset_ = 0;  // of the next raw read
};

uint32_t BigEndian32(const unsigned char* bytes) {
  uint32_t value = 0;
  for (size_t i = 0; i < 4; ++i) value = (value << 8) | bytes[i];
  return value;
}

// An idx file whose header has been read: its dimensions and the data bytes
// they need.
struct IdxHeader {
  std::vector<uint64_t> dims;
  uint64_t data_bytes = 0;
};

// "truncated" or "oversized idx WHAT file: dimensions [...] need N data bytes
// but it has M" (M empty: more).
absl::Status IdxSizeMismatch(const std::string& path, const char* what,
                             const IdxHeader& header, uint64_t has,
                             bool more = false) {
  return Invalid(
      path, absl::StrCat(more || header.data_bytes < has ? "oversized"
                                                         : "truncated",
                         " idx ", what, " file: dimensions [",
                         absl::StrJoin(header.dims, ", "), "] need ",
                         header.data_bytes, " data bytes but it has ",
                         more ? "more" : absl::StrCat(has)));
}

// Reads and checks an idx file's magic and dimensions, and, when the file is
// not compressed, that its size matches them. Nothing past the header is
// read.
absl::StatusOr<IdxHeader> ReadIdxHeader(ShardFile& file, uint32_t magic,
                                        const char* what) {
  const std::string& path = file.path();
  const size_t ndims = magic & 0xff;
  const size_t header_bytes = 4 + 4 * ndims;
  std::vector<unsigned char> header(header_bytes);
  CURVD_ASSIGN_OR_RETURN(const uint64_t got,
                         file.Read(header_bytes, header.data()));
  if (got < header_bytes) {
    return Invalid(path, absl::StrCat("truncated idx ", what, " file: ", got,
                                      " bytes, shorter than its header"));
  }
  if (BigEndian32(header.data()) != magic) {
    return Invalid(
        path, absl::StrCat("not an idx ", what, " file: magic 0x",
                           absl::Hex(BigEndian32(header.data()), absl::kZeroPad8),
                           ", expected 0x", absl::Hex(magic, absl::kZeroPad8)));
  }
  IdxHeader out;
  out.data_bytes = 1;
  for (size_t i = 0; i < ndims; ++i) {
    out.dims.push_back(BigEndian32(header.data() + 4 + 4 * i));
    if (__builtin_mul_overflow(out.data_bytes, out.dims.back(),
                               &out.data_bytes)) {
      out.data_bytes = kMaxIdxBytes + 1;
    }
  }
  if (!file.gzipped() && out.data_bytes != file.size() - header_bytes) {
    return IdxSizeMismatch(path, what, out, file.size() - header_bytes);
  }
  if (out.data_bytes > kMaxIdxBytes) {
    return Invalid(path, absl::StrCat("idx ", what, " file: dimensions [",
                                      absl::StrJoin(out.dims, ", "),
                                      "] need more than ", kMaxIdxBytes,
                                      " data bytes"));
  }
  return out;
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

// Records [begin, begin + count) of the idx file's data, each `record_bytes`,
// as uint8 [count, record_bytes]. The rest of the data is read past, never
// kept, to check that there is as much as the header declares and no more:
// decompression stops one byte past what the dimensions need.
absl::StatusOr<torch::Tensor> ReadIdxRecords(ShardFile& file,
                                             const IdxHeader& header,
                                             const char* what, int64_t begin,
                                             int64_t count,
                                             int64_t record_bytes) {
  torch::Tensor out = torch::empty({count, record_bytes}, torch::kUInt8);
  const uint64_t before = static_cast<uint64_t>(begin * record_bytes);
  const uint64_t wanted = static_cast<uint64_t>(count * record_bytes);
  CURVD_ASSIGN_OR_RETURN(uint64_t seen, file.Skip(before));
  CURVD_ASSIGN_OR_RETURN(const uint64_t read,
                         file.Read(wanted, out.data_ptr<uint8_t>()));
  seen += read;
  if (seen == before + wanted) {
    CURVD_ASSIGN_OR_RETURN(const uint64_t after,
                           file.Skip(header.data_bytes - seen));
    seen += after;
  }
  if (seen < header.data_bytes)
    return IdxSizeMismatch(file.path(), what, header, seen);
  char extra = 0;
  CURVD_ASSIGN_OR_RETURN(const uint64_t more, file.Read(1, &extra));
  if (more > 0) return IdxSizeMismatch(file.path(), what, header, 0, true);
  return out;
}

absl::StatusOr<Shard> LoadIdx(const ShardSpec& spec, MemoryBudget& budget) {
  CURVD_ASSIGN_OR_RETURN(ShardFile images, ShardFile::Open(spec, spec.path));
  CURVD_ASSIGN_OR_RETURN(IdxHeader image_header,
                         ReadIdxHeader(images, kIdxImagesMagic, "images"));
  CURVD_ASSIGN_OR_RETURN(ShardFile labels,
                         ShardFile::Open(spec, spec.labels_path));
  CURVD_ASSIGN_OR_RETURN(IdxHeader label_header,
                         ReadIdxHeader(labels, kIdxLabelsMagic, "labels"));
  if (image_header.dims[0] != label_header.dims[0]) {
    return absl::InvalidArgumentError(
        absl::StrCat("label count mismatch: ", spec.path, " has ",
                     image_header.dims[0], " images but ", spec.labels_path,
                     " has ", label_header.dims[0], " labels"));
  }
  CURVD_ASSIGN_OR_RETURN(
      auto range, Slice(spec, static_cast<int64_t>(image_header.dims[0])));
  const auto [begin, count] = range;
  const int64_t pixels =
      static_cast<int64_t>(image_header.dims[1] * image_header.dims[2]);
  // Only the slice is kept and converted, so a small slice of a large file
  // stays small.
  CURVD_RETURN_IF_ERROR(budget.Charge(
      absl::StrCat("the shard's ", count, " images of ", pixels, " pixels"),
      count * pixels * (1 + static_cast<int64_t>(sizeof(float)))));
  CURVD_RETURN_IF_ERROR(
      budget.Charge(absl::StrCat("the shard's ", count, " labels"),
                    count * (1 + static_cast<int64_t>(sizeof(int64_t)))));
  CURVD_ASSIGN_OR_RETURN(
      torch::Tensor image_bytes,
      ReadIdxRecords(images, image_header, "images", begin, count, pixels));
  CURVD_ASSIGN_OR_RETURN(
      torch::Tensor label_bytes,
      ReadIdxRecords(labels, label_header, "labels", begin, count, 1));
  Shard shard;
  shard.inputs = image_bytes.to(torch::kFloat32).div_(255.0);
  shard.targets = label_bytes.view({count}).to(torch::kInt64);
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
absl::StatusOr<Shard> LoadCifar(const ShardSpec& spec, MemoryBudget& budget) {
  const CifarRecords& layout = spec.cifar;
  if (spec.record_files.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(spec.path, ": a ", layout.title,
                     " shard needs at least one batch file"));
  }
  std::string records;
  for (const std::string& path : spec.record_files) {
    CURVD_ASSIGN_OR_RETURN(ShardFile file, ShardFile::Open(spec, path));
    CURVD_ASSIGN_OR_RETURN(
        std::string bytes,
        file.ReadRest(kMaxIdxBytes, budget,
                      absl::StrCat("the shard's batch file ", path)));
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
  CURVD_RETURN_IF_ERROR(budget.Charge(
      absl::StrCat("the shard's ", count, " images"),
      count * kCifarPixelBytes * static_cast<int64_t>(sizeof(float))));
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

// The shard file's tensor `name`, which needs a sample dimension, and its
// torch dtype.
absl::StatusOr<std::pair<const SafetensorsEntry*, torch::ScalarType>>
ShardEntry(const ShardSpec& spec, const std::vector<SafetensorsEntry>& file,
           const std::string& name) {
  for (const SafetensorsEntry& t : file) {
    if (t.name != name) continue;
    if (t.shape.empty()) {
      return Invalid(
          spec.path,
          absl::StrCat("'", name,
                       "' is a scalar; it needs a sample dimension"));
    }
    CURVD_ASSIGN_OR_RETURN(const torch::ScalarType dtype,
                           TorchDtypeOf(t.dtype, t.name));
    return std::make_pair(&t, dtype);
  }
  return Invalid(spec.path,
                 absl::StrCat("shard has no tensor named '", name,
                              "' (it needs \"inputs\" and \"targets\")"));
}

// The bytes `count` rows of `entry` take as stored and once converted to
// `dtype`.
int64_t RowBytes(const SafetensorsEntry& entry, int64_t count,
                 torch::ScalarType stored, torch::ScalarType dtype) {
  const int64_t rows = std::max<int64_t>(entry.shape[0], 1);
  const int64_t stored_bytes = static_cast<int64_t>(entry.bytes) / rows * count;
  return stored_bytes + stored_bytes / c10::elementSize(stored) *
                            static_cast<int64_t>(c10::elementSize(dtype));
}

// Half precision is widened: the objective works in float32 or float64, and
// CPU kernels for half are incomplete in LibTorch 1.13.
torch::ScalarType WidenedDtype(torch::ScalarType floating) {
  return floating == torch::kFloat16 || floating == torch::kBFloat16
             ? torch::kFloat32
             : floating;
}

// The dtype a shard's inputs of `stored` dtype take: floating as they are
// (half widened); integer inputs are token ids for an embedding, widened
// losslessly to the int64 that torch's embedding takes and never cast to
// float, whatever the measurement's precision. BOOL is refused: it is neither
// features nor ids.
absl::StatusOr<torch::ScalarType> InputsDtype(const ShardSpec& spec,
                                              torch::ScalarType stored) {
  if (c10::isFloatingType(stored)) return WidenedDtype(stored);
  if (stored == torch::kBool) {
    return Invalid(spec.path,
                   "inputs must be floating point (F16, BF16, F32, F64) or "
                   "integer token ids (I64, I32, I16, I8, U8), not BOOL");
  }
  return torch::kInt64;
}

// Floating targets as they are (half widened); integer ones are class indices,
// int64 of one dimension.
absl::StatusOr<torch::ScalarType> TargetsDtype(const ShardSpec& spec,
                                               const SafetensorsEntry& entry,
                                               torch::ScalarType stored) {
  if (c10::isFloatingType(stored)) return WidenedDtype(stored);
  if (stored == torch::kBool || entry.shape.size() != 1) {
    return Invalid(
        spec.path,
        "integer targets must be class indices: one dimension, not BOOL");
  }
  return torch::kInt64;
}

// Reads the header, checks it, then only the slice's rows of each tensor,
// straight into tensors: the slice is the one copy of the data in memory
// before conversion.
absl::StatusOr<Shard> LoadSafetensorsShard(const ShardSpec& spec,
                                           MemoryBudget& budget) {
  CURVD_ASSIGN_OR_RETURN(FileDescriptor fd,
                         OpenDataFile(spec.path, spec.data_roots));
  CURVD_ASSIGN_OR_RETURN(
      std::vector<SafetensorsEntry> file,
      ReadSafetensorsIndex(fd.get(), spec.path, kMaxShardHeaderBytes));
  CURVD_ASSIGN_OR_RETURN(auto inputs, ShardEntry(spec, file, "inputs"));
  CURVD_ASSIGN_OR_RETURN(auto targets, ShardEntry(spec, file, "targets"));
  CURVD_ASSIGN_OR_RETURN(const torch::ScalarType inputs_dtype,
                         InputsDtype(spec, inputs.second));
  CURVD_ASSIGN_OR_RETURN(const torch::ScalarType targets_dtype,
                         TargetsDtype(spec, *targets.first, targets.second));
  const int64_t n = inputs.first->shape[0];
  if (n != targets.first->shape[0]) {
    return Invalid(spec.path, absl::StrCat("inputs have ", n,
                                           " samples but targets have ",
                                           targets.first->shape[0]));
  }
  CURVD_ASSIGN_OR_RETURN(auto range, Slice(spec, n));
  const auto [begin, count] = range;
  CURVD_RETURN_IF_ERROR(budget.Charge(
      absl::StrCat("the shard's ", count, " inputs"),
      RowBytes(*inputs.first, count, inputs.second, inputs_dtype)));
  CURVD_RETURN_IF_ERROR(budget.Charge(
      absl::StrCat("the shard's ", count, " targets"),
      RowBytes(*targets.first, count, targets.second, targets_dtype)));
  Shard shard;
  CURVD_ASSIGN_OR_RETURN(
      shard.inputs,
      ReadSafetensorsRows(fd.get(), *inputs.first, begin, count, spec.path));
  CURVD_ASSIGN_OR_RETURN(
      shard.targets,
      ReadSafetensorsRows(fd.get(), *targets.first, begin, count, spec.path));
  shard.inputs = shard.inputs.to(inputs_dtype);
  shard.targets = shard.targets.to(targets_dtype);
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
absl::StatusOr<Shard> GenerateGaussianRegression(const ShardSpec& spec,
                                                 MemoryBudget& budget) {
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
  CURVD_RETURN_IF_ERROR(budget.Charge(
      absl::StrCat("the generated shard of n=", n, ", d=", d,
                   ", outputs=", outputs),
      (n * d + 2 * n * outputs + d * outputs) *
          static_cast<int64_t>(sizeof(float))));
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
absl::StatusOr<Shard> GenerateModularAddition(const ShardSpec& spec,
                                              MemoryBudget& budget) {
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
  CURVD_RETURN_IF_ERROR(budget.Charge(
      absl::StrCat("the shard's ", range.second, " pairs"),
      range.second * static_cast<int64_t>(3 * sizeof(float) + sizeof(int64_t))));
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

absl::StatusOr<Shard> LoadShardOrThrow(const ShardSpec& spec,
                                       MemoryBudget& budget) {
  switch (spec.kind) {
    case ShardSpec::Kind::kSafetensors:
      return LoadSafetensorsShard(spec, budget);
    case ShardSpec::Kind::kIdx:
      return LoadIdx(spec, budget);
    case ShardSpec::Kind::kCifar:
      return LoadCifar(spec, budget);
    case ShardSpec::Kind::kBuiltin:
      if (spec.generator == "gaussian_regression")
        return GenerateGaussianRegression(spec, budget);
      if (spec.generator == kModularAdditionGenerator)
        return GenerateModularAddition(spec, budget);
      return absl::InvalidArgumentError(
          absl::StrCat("unknown builtin generator '", spec.generator, "'"));
  }
  return absl::InvalidArgumentError("unknown shard kind");
}

}  // namespace

absl::StatusOr<Shard> LoadShard(const ShardSpec& spec, MemoryBudget& budget) {
  // Allocation failures for a large shard surface here rather than as a
  // crash; StatusFromException tells them from other torch errors.
  return CatchTorchExceptions([&] { return LoadShardOrThrow(spec, budget); },
                              "cannot load shard: ");
}

absl::StatusOr<Shard> LoadShard(const ShardSpec& spec) {
  MemoryBudget unlimited(0);
  return LoadShard(spec, unlimited);
}

}  // namespace curvd::core
