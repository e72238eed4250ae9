// The peak resident memory a piece of work adds to this process, read from
// /proc/self/status after the peak is reset through /proc/self/clear_refs:
// tests hold loaders to refusing before they allocate.
#ifndef CURVD_TESTS_CORE_PEAK_MEMORY_H_
#define CURVD_TESTS_CORE_PEAK_MEMORY_H_

#include <cstdint>
#include <fstream>
#include <string>

namespace curvd::core::testing {

// The value in bytes of `field` ("VmRSS", "VmHWM") of /proc/self/status, or
// -1.
inline int64_t ProcStatusBytes(const std::string& field) {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind(field + ":", 0) == 0)
      return std::stoll(line.substr(field.size() + 1)) * 1024;  // kB
  }
  return -1;
}

// How far the peak resident memory rose above the resident memory before
// `work` ran, in bytes; -1 where the kernel cannot reset the peak.
template <typename Work>
int64_t PeakRssGrowth(Work&& work) {
  {
    std::ofstream clear("/proc/self/clear_refs");
    clear << "5";  // resets VmHWM to the current VmRSS
    clear.flush();
    if (!clear.good()) return -1;
  }
  const int64_t before = ProcStatusBytes("VmRSS");
  work();
  const int64_t peak = ProcStatusBytes("VmHWM");
  return before < 0 || peak < 0 ? -1 : peak - before;
}

}  // namespace curvd::core::testing

#endif  // CURVD_TESTS_CORE_PEAK_MEMORY_H_
