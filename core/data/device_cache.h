// Models and shards kept on one device between measurements. Internal to core;
// holds values of any type and does not include torch.
#ifndef CURVD_CORE_DATA_DEVICE_CACHE_H_
#define CURVD_CORE_DATA_DEVICE_CACHE_H_

#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <typeinfo>
#include <unordered_map>
#include <utility>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"

namespace curvd::core {

// Values by content key, evicted least recently used first whenever the bytes
// held exceed a budget. A value is pinned while a Handle to it lives: a pinned
// value is never evicted, so the model of a measurement stays while its shard
// is loaded. A value larger than the budget is still loaded and handed out,
// and evicted once its last handle goes. Thread-compatible: one engine, one
// thread; handles must not outlive the cache.
class DeviceCache {
 private:
  struct Entry {
    std::string key;  // empty: never found again, dropped when unpinned
    std::shared_ptr<void> value;
    int64_t bytes = 0;
    int pins = 0;
  };
  using Entries = std::list<Entry>;  // most recently used first

 public:
  // A loaded value and the device bytes it occupies.
  template <typename T>
  struct Loaded {
    std::unique_ptr<T> value;
    int64_t bytes = 0;
  };

  // Pins one entry for its lifetime. Movable, not copyable.
  template <typename T>
  class Handle {
   public:
    Handle() = default;
    Handle(Handle&& other) noexcept { *this = std::move(other); }
    Handle& operator=(Handle&& other) noexcept {
      Release();
      cache_ = std::exchange(other.cache_, nullptr);
      entry_ = other.entry_;
      value_ = std::exchange(other.value_, nullptr);
      return *this;
    }
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    ~Handle() { Release(); }

    T* get() const { return value_; }
    T* operator->() const { return value_; }
    T& operator*() const { return *value_; }

    // The value no longer matches its key (a forward pass in train mode moved
    // BatchNorm statistics): later lookups load it again, and this copy goes
    // when its last handle does.
    void Invalidate() { cache_->Forget(entry_); }

   private:
    friend class DeviceCache;
    Handle(DeviceCache* cache, Entries::iterator entry)
        : cache_(cache),
          entry_(entry),
          value_(static_cast<T*>(entry->value.get())) {
      ++entry_->pins;
    }
    void Release() {
      if (cache_ == nullptr) return;
      --entry_->pins;
      cache_->Trim();
      cache_ = nullptr;
    }

    DeviceCache* cache_ = nullptr;
    Entries::iterator entry_;
    T* value_ = nullptr;
  };

  // `budget_bytes` >= 0.
  explicit DeviceCache(int64_t budget_bytes) : budget_bytes_(budget_bytes) {}
  DeviceCache(const DeviceCache&) = delete;
  DeviceCache& operator=(const DeviceCache&) = delete;

  // The value of type T under `key`, pinned: the cached one (now the most
  // recently used) or, if there is none, the one `load` returns, which is
  // cached and may evict unpinned others. Keys of different types never match.
  // An empty key loads a value that is never shared. Errors of `load` are
  // returned as they are and nothing is cached.
  template <typename T>
  absl::StatusOr<Handle<T>> GetOrLoad(
      const std::string& key,
      absl::FunctionRef<absl::StatusOr<Loaded<T>>()> load) {
    const std::string typed_key =
        key.empty() ? "" : std::string(typeid(T).name()) + "|" + key;
    if (auto found = index_.find(typed_key); found != index_.end()) {
      entries_.splice(entries_.begin(), entries_, found->second);
      return Handle<T>(this, found->second);
    }
    absl::StatusOr<Loaded<T>> loaded = load();
    if (!loaded.ok()) return loaded.status();
    entries_.push_front(Entry{
        typed_key, std::shared_ptr<T>(std::move(loaded->value)), loaded->bytes,
        /*pins=*/0});
    bytes_ += loaded->bytes;
    if (!typed_key.empty()) index_[typed_key] = entries_.begin();
    Handle<T> handle(this, entries_.begin());
    Trim();
    return handle;
  }

  int64_t bytes() const { return bytes_; }
  int64_t budget_bytes() const { return budget_bytes_; }
  size_t size() const { return entries_.size(); }

 private:
  // Drops unpinned entries that cannot be found again, then unpinned ones from
  // the least recently used end while over budget.
  void Trim();
  // Removes the entry from the index: it is never found again.
  void Forget(Entries::iterator entry);
  // Drops the entry; returns the one after it.
  Entries::iterator Erase(Entries::iterator entry);

  const int64_t budget_bytes_;
  int64_t bytes_ = 0;
  Entries entries_;
  std::unordered_map<std::string, Entries::iterator> index_;
};

}  // namespace curvd::core

#endif  // CURVD_CORE_DATA_DEVICE_CACHE_H_
