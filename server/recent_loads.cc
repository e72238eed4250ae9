#include "server/recent_loads.h"

#include <algorithm>

namespace curvd::server {
namespace {

// Moves `key` to the front of `keys`, dropping the oldest beyond `capacity`.
void Touch(std::vector<std::string>& keys, const std::string& key,
           size_t capacity) {
  if (key.empty()) return;
  auto found = std::find(keys.begin(), keys.end(), key);
  if (found == keys.end()) {
    keys.insert(keys.begin(), key);
    if (keys.size() > capacity) keys.pop_back();
  } else {
    std::rotate(keys.begin(), found, found + 1);
  }
}

bool Holds(const std::vector<std::string>& keys, const std::string& key) {
  return !key.empty() && std::find(keys.begin(), keys.end(), key) != keys.end();
}

}  // namespace

void RecentLoads::Record(const std::string& model_key,
                         const std::string& shard_key) {
  Touch(models_, model_key, capacity_);
  Touch(shards_, shard_key, capacity_);
}

bool RecentLoads::HoldsModel(const std::string& model_key) const {
  return Holds(models_, model_key);
}

int RecentLoads::Warmth(const std::string& model_key,
                        const std::string& shard_key) const {
  return 2 * HoldsModel(model_key) + Holds(shards_, shard_key);
}

}  // namespace curvd::server
