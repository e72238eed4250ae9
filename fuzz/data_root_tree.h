// A data root for the path fuzz targets, made once per process in a temporary
// directory and removed at exit: files, directories, a FIFO, and symlinks that
// stay inside the root or lead out of it (relative, absolute, dangling, a
// loop), beside an outside/ directory that nothing resolved may reach.
#ifndef CURVD_FUZZ_DATA_ROOT_TREE_H_
#define CURVD_FUZZ_DATA_ROOT_TREE_H_

#include <string>

namespace curvd::fuzz {

struct DataRootTree {
  std::string root;   // the root's real path
  std::string alias;  // a symlink to the root: the name the roots list gives
};

// The tree, made on the first call (abort()s when it cannot be); thread-unsafe.
const DataRootTree& TheDataRootTree();

// `text` with every "$ROOT" replaced by the alias and every "$REAL" by the
// real root, so that a corpus names paths inside a root made at run time.
std::string InRoot(const std::string& text);

// Whether `path` is the real root or below it, and is its own realpath: an
// existing file or directory named without symlinks, "." or "..".
bool CanonicalInsideRoot(const std::string& path);

}  // namespace curvd::fuzz

#endif  // CURVD_FUZZ_DATA_ROOT_TREE_H_
