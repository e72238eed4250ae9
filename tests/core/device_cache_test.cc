#include "core/data/device_cache.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace curvd::core {
namespace {

struct Value {
  std::string name;
};

// Loads a Value named `name` of `bytes` bytes, counting loads in `loads`.
class Loader {
 public:
  absl::StatusOr<DeviceCache::Handle<Value>> Get(DeviceCache& cache,
                                                 const std::string& key,
                                                 int64_t bytes) {
    return cache.GetOrLoad<Value>(
        key, [&]() -> absl::StatusOr<DeviceCache::Loaded<Value>> {
          loads.push_back(key);
          return DeviceCache::Loaded<Value>{std::make_unique<Value>(Value{key}),
                                            bytes};
        });
  }
  std::vector<std::string> loads;
};

TEST(DeviceCacheTest, EvictsLeastRecentlyUsedBeyondTheBudget) {
  DeviceCache cache(100);
  Loader loader;
  for (const char* key : {"a", "b", "c"}) {
    auto handle = loader.Get(cache, key, 40);
    ASSERT_TRUE(handle.ok()) << handle.status();
    EXPECT_EQ((*handle)->name, key);
  }
  // 120 bytes over a budget of 100: "a", the least recently used, went.
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.bytes(), 80);
  ASSERT_TRUE(loader.Get(cache, "b", 40).ok());  // a hit: "c" is now oldest
  ASSERT_TRUE(loader.Get(cache, "d", 40).ok());
  ASSERT_TRUE(loader.Get(cache, "b", 40).ok());
  ASSERT_TRUE(loader.Get(cache, "c", 40).ok());
  EXPECT_EQ(loader.loads, (std::vector<std::string>{"a", "b", "c", "d", "c"}));
  EXPECT_LE(cache.bytes(), cache.budget_bytes());
}

TEST(DeviceCacheTest, PinnedEntriesStayUntilReleased) {
  DeviceCache cache(100);
  Loader loader;
  auto model = loader.Get(cache, "model", 60);
  ASSERT_TRUE(model.ok());
  {
    // Loading the shard would evict the model, were it not pinned.
    auto shard = loader.Get(cache, "shard", 60);
    ASSERT_TRUE(shard.ok());
    EXPECT_EQ((*model)->name, "model");
    EXPECT_EQ(cache.bytes(), 120);
    // Moving a handle keeps the pin.
    DeviceCache::Handle<Value> moved = std::move(*shard);
    EXPECT_EQ(moved->name, "shard");
    EXPECT_EQ(cache.size(), 2u);
  }
  // Released, the shard goes; the model, still pinned, stays.
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.bytes(), 60);
  ASSERT_TRUE(loader.Get(cache, "model", 60).ok());
  EXPECT_EQ(loader.loads, (std::vector<std::string>{"model", "shard"}));
}

TEST(DeviceCacheTest, OversizedAndUnkeyedValuesLiveWhilePinned) {
  DeviceCache cache(100);
  Loader loader;
  {
    auto big = loader.Get(cache, "big", 500);
    ASSERT_TRUE(big.ok());
    auto unkeyed = loader.Get(cache, "", 10);
    ASSERT_TRUE(unkeyed.ok());
    EXPECT_EQ(cache.bytes(), 510);
  }
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(cache.bytes(), 0);
  ASSERT_TRUE(loader.Get(cache, "", 10).ok());
  EXPECT_EQ(loader.loads, (std::vector<std::string>{"big", "", ""}));
}

TEST(DeviceCacheTest, InvalidatedValuesAreLoadedAgain) {
  DeviceCache cache(100);
  Loader loader;
  {
    auto handle = loader.Get(cache, "trained", 10);
    ASSERT_TRUE(handle.ok());
    handle->Invalidate();
    // Still usable by its holder.
    EXPECT_EQ((*handle)->name, "trained");
  }
  EXPECT_EQ(cache.size(), 0u);
  ASSERT_TRUE(loader.Get(cache, "trained", 10).ok());
  EXPECT_EQ(loader.loads, (std::vector<std::string>{"trained", "trained"}));
}

TEST(DeviceCacheTest, LoadErrorsCacheNothingAndTypesDoNotMix) {
  DeviceCache cache(100);
  auto failed = cache.GetOrLoad<Value>(
      "k", []() -> absl::StatusOr<DeviceCache::Loaded<Value>> {
        return absl::NotFoundError("no such file");
      });
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(cache.size(), 0u);

  Loader loader;
  auto value = loader.Get(cache, "k", 10);
  ASSERT_TRUE(value.ok());
  auto number = cache.GetOrLoad<int>(
      "k", []() -> absl::StatusOr<DeviceCache::Loaded<int>> {
        return DeviceCache::Loaded<int>{std::make_unique<int>(7), 4};
      });
  ASSERT_TRUE(number.ok());
  EXPECT_EQ(**number, 7);
  EXPECT_EQ((*value)->name, "k");
  EXPECT_EQ(cache.size(), 2u);
}

}  // namespace
}  // namespace curvd::core
