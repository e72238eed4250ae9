// Counts the reads of single scalars from tensors (Tensor::item, whatever the
// device) that code makes on the calling thread, through LibTorch's
// RecordFunction observers: tests hold the iterative methods to their stated
// waits for the device.
#ifndef CURVD_TESTS_CORE_HOST_READS_H_
#define CURVD_TESTS_CORE_HOST_READS_H_

#include <ATen/record_function.h>

#include <cstdint>
#include <cstring>
#include <memory>

namespace curvd::core::testing {

inline thread_local int64_t item_reads = 0;

inline std::unique_ptr<at::ObserverContext> CountItemRead(
    const at::RecordFunction& function) {
  // Tensor::item() dispatches this operator, on every device.
  if (std::strcmp(function.name(), "aten::_local_scalar_dense") == 0) {
    ++item_reads;
  }
  return nullptr;
}

// The number of Tensor::item() calls `work` makes on this thread.
template <typename Work>
int64_t ItemReads(Work&& work) {
  item_reads = 0;
  const at::CallbackHandle handle =
      at::addThreadLocalCallback(at::RecordFunctionCallback(CountItemRead));
  work();
  at::removeCallback(handle);
  return item_reads;
}

}  // namespace curvd::core::testing

#endif  // CURVD_TESTS_CORE_HOST_READS_H_
