// What one device has recently loaded, as the job queue knows it: the model
// and shard keys of the last jobs the device took.
#ifndef CURVD_SERVER_RECENT_LOADS_H_
#define CURVD_SERVER_RECENT_LOADS_H_

#include <cstddef>
#include <string>
#include <vector>

namespace curvd::server {

// The last `capacity` distinct model keys and, separately, the last `capacity`
// distinct shard keys recorded, least recently recorded out first (like the
// engine's device cache, but by count: the queue does not know the bytes, so
// this is a hint, not a promise of what the device holds). Empty keys are
// never recorded and never match. Thread-compatible.
class RecentLoads {
 public:
  // `capacity` >= 1.
  explicit RecentLoads(size_t capacity) : capacity_(capacity) {}

  // Notes that the device loads `model_key` and `shard_key` now.
  void Record(const std::string& model_key, const std::string& shard_key);

  // Whether `model_key` is among the recent models.
  bool HoldsModel(const std::string& model_key) const;

  // How much of a job the device already holds: 2 if `model_key` is among the
  // recent models, plus 1 if `shard_key` is among the recent shards; 0 to 3,
  // so the model, usually the larger load, outweighs the shard.
  int Warmth(const std::string& model_key, const std::string& shard_key) const;

 private:
  const size_t capacity_;
  std::vector<std::string> models_;  // most recent first
  std::vector<std::string> shards_;  // most recent first
};

}  // namespace curvd::server

#endif  // CURVD_SERVER_RECENT_LOADS_H_
