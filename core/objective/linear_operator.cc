#include "core/objective/linear_operator.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <mutex>
#include <vector>

namespace curvd::core {

at::Generator SeededGenerator(uint64_t seed) {
  return at::detail::createCPUGenerator(seed);
}

at::Generator DeviceGenerator(const torch::Device& device, uint64_t seed) {
  at::Generator source = at::globalContext().defaultGenerator(device);
  at::Generator generator;
  {
    const std::lock_guard<std::mutex> lock(source.mutex());
    generator = source.clone();
  }
  generator.set_current_seed(seed);
  return generator;
}

namespace {

constexpr uint64_t kGamma = 0x9E3779B97F4A7C15ULL;
constexpr uint64_t kMultiplier1 = 0xBF58476D1CE4E5B9ULL;
constexpr uint64_t kMultiplier2 = 0x94D049BB133111EBULL;
constexpr double kTwoPi = 6.283185307179586476925;

// The int64 with the bits of `x`: torch has no uint64 arithmetic, but int64
// addition and multiplication wrap like uint64 ones, bit for bit.
int64_t Bits(uint64_t x) { return static_cast<int64_t>(x); }

// x >> s as uint64 words (torch shifts int64 arithmetically, copying the sign).
torch::Tensor ShiftRightLogical(const torch::Tensor& x, int s) {
  return torch::bitwise_and(torch::bitwise_right_shift(x, s),
                            Bits(~uint64_t{0} >> s));
}

// splitmix64's output function, elementwise.
torch::Tensor Mix(torch::Tensor z) {
  z = torch::bitwise_xor(z, ShiftRightLogical(z, 30)).mul_(Bits(kMultiplier1));
  z = torch::bitwise_xor(z, ShiftRightLogical(z, 27)).mul_(Bits(kMultiplier2));
  return torch::bitwise_xor(z, ShiftRightLogical(z, 31));
}

// The keys of the next `count` probes of `generator`.
std::vector<uint64_t> DrawKeys(int64_t count, at::Generator& generator) {
  std::vector<uint64_t> keys(count);
  auto* cpu = at::check_generator<at::CPUGeneratorImpl>(generator);
  const std::lock_guard<std::mutex> lock(generator.mutex());
  for (uint64_t& key : keys) key = cpu->random64();
  return keys;
}

// [count, words]: row r is the stream of a fresh key from `generator`.
torch::Tensor KeyedWords(int64_t count, int64_t words, at::Generator& generator,
                         const torch::Device& device) {
  const std::vector<uint64_t> keys = DrawKeys(count, generator);
  std::vector<torch::Tensor> rows;
  rows.reserve(count);
  for (uint64_t key : keys) rows.push_back(SplitMix64Words(key, words, device));
  return torch::stack(rows);
}

// Entry 64 w + 8 c + b is bit b of byte c of word w, as 0 or 1 in uint8: the
// words are cut into bytes first so that the expansion to one number per entry
// is made in single bytes.
torch::Tensor RademacherBits(const torch::Tensor& words, int64_t size) {
  const torch::TensorOptions int64 = words.options();
  const torch::Tensor bytes =
      torch::bitwise_and(
          torch::bitwise_right_shift(words.unsqueeze(2),
                                     torch::arange(0, 64, 8, int64)),
          0xFF)
          .to(torch::kUInt8);
  const torch::Tensor bits = torch::bitwise_and(
      torch::bitwise_right_shift(bytes.unsqueeze(3),
                                 torch::arange(8, int64.dtype(torch::kUInt8))),
      1);
  return bits.reshape({words.size(0), -1}).narrow(1, 0, size);
}

// Box-Muller on consecutive word pairs, in float64: words 2p and 2p + 1 give
// the uniforms u1, u2 in [0, 1) of their top 53 bits, and entries 2p and
// 2p + 1 are r cos(2 pi u2) and r sin(2 pi u2), r = sqrt(-2 log(1 - u1)).
torch::Tensor GaussianFromWords(const torch::Tensor& words, int64_t size) {
  const torch::Tensor uniform =
      ShiftRightLogical(words, 11).to(torch::kFloat64).mul_(0x1.0p-53);
  const torch::Tensor pairs = uniform.reshape({words.size(0), -1, 2});
  const torch::Tensor radius =
      torch::sqrt(torch::log1p(-pairs.select(2, 0)).mul_(-2));
  const torch::Tensor angle = pairs.select(2, 1).mul(kTwoPi);
  return torch::stack({radius * torch::cos(angle), radius * torch::sin(angle)},
                      2)
      .reshape({words.size(0), -1})
      .narrow(1, 0, size);
}

}  // namespace

torch::Tensor SplitMix64Words(uint64_t key, int64_t count,
                              const torch::Device& device) {
  // Adding the key as a scalar: nothing but kernel arguments crosses to the
  // device.
  return Mix(torch::arange(1, count + 1,
                           torch::TensorOptions(device).dtype(torch::kInt64))
                 .mul_(Bits(kGamma))
                 .add_(Bits(key)));
}

void SkipProbes(int64_t count, at::Generator& generator) {
  DrawKeys(count, generator);
}

torch::Tensor RandomProbe(int64_t size, ProbeDistribution distribution,
                          at::Generator& generator,
                          const torch::TensorOptions& options) {
  return RandomProbes(1, size, distribution, generator, options).squeeze(0);
}

torch::Tensor RandomProbes(int64_t count, int64_t size,
                           ProbeDistribution distribution,
                           at::Generator& generator,
                           const torch::TensorOptions& options) {
  const torch::Device device = options.device();
  if (distribution == ProbeDistribution::kGaussian) {
    const int64_t words = 2 * ((size + 1) / 2);
    return GaussianFromWords(KeyedWords(count, words, generator, device), size)
        .to(options.dtype());
  }
  const int64_t words = (size + 63) / 64;
  return RademacherBits(KeyedWords(count, words, generator, device), size)
      .to(options.dtype())
      .mul_(2)
      .sub_(1);
}

}  // namespace curvd::core
