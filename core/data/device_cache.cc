#include "core/data/device_cache.h"

#include <iterator>

namespace curvd::core {

void DeviceCache::Trim() {
  for (auto it = entries_.begin(); it != entries_.end();) {
    it = it->key.empty() && it->pins == 0 ? Erase(it) : std::next(it);
  }
  auto it = entries_.end();
  while (bytes_ > budget_bytes_ && it != entries_.begin()) {
    --it;
    if (it->pins == 0) it = Erase(it);
  }
}

void DeviceCache::Forget(Entries::iterator entry) {
  if (entry->key.empty()) return;
  index_.erase(entry->key);
  entry->key.clear();
}

DeviceCache::Entries::iterator DeviceCache::Erase(Entries::iterator entry) {
  Forget(entry);
  bytes_ -= entry->bytes;
  return entries_.erase(entry);
}

}  // namespace curvd::core
