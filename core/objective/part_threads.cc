#include "core/objective/part_threads.h"

#include <utility>

namespace curvd::core {

PartThreads::PartThreads(int count) : errors_(count > 0 ? count : 1) {
  for (int lane = 1; lane < count; ++lane) {
    threads_.emplace_back([this, lane] { Serve(lane); });
  }
}

PartThreads::~PartThreads() {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (std::thread& thread : threads_) thread.join();
}

void PartThreads::Serve(int lane) {
  uint64_t served = 0;
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    wake_.wait(lock, [&] { return stopping_ || generation_ != served; });
    if (stopping_) return;
    served = generation_;
    absl::FunctionRef<void(int)>& body = *body_;
    lock.unlock();
    std::exception_ptr error;
    try {
      body(lane);
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    errors_[lane] = std::move(error);
    if (--running_ == 0) done_.notify_one();
  }
}

void PartThreads::Run(absl::FunctionRef<void(int)> body) {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    body_ = &body;
    running_ = static_cast<int>(threads_.size());
    ++generation_;
  }
  wake_.notify_all();
  std::exception_ptr first;
  try {
    body(0);
  } catch (...) {
    first = std::current_exception();
  }
  std::unique_lock<std::mutex> lock(mutex_);
  done_.wait(lock, [&] { return running_ == 0; });
  body_ = nullptr;
  for (size_t lane = 1; lane < errors_.size() && first == nullptr; ++lane) {
    first = errors_[lane];
  }
  for (std::exception_ptr& error : errors_) error = nullptr;
  lock.unlock();
  if (first != nullptr) std::rethrow_exception(first);
}

}  // namespace curvd::core
