#include "fuzz/data_root_tree.h"

#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_replace.h"
#include "fuzz/fuzz_check.h"

namespace curvd::fuzz {
namespace {

std::string base_dir;  // what the atexit handler removes

void RemoveTree() {
  std::error_code ignored;
  std::filesystem::remove_all(base_dir, ignored);
}

void File(const std::string& path) {
  std::ofstream(path) << "curvd fuzz";
  FUZZ_CHECK(std::filesystem::is_regular_file(path));
}

void Link(const std::string& target, const std::string& path) {
  FUZZ_CHECK(symlink(target.c_str(), path.c_str()) == 0);
}

DataRootTree MakeTree() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp != nullptr ? tmp : "/tmp") +
                        "/curvd-fuzz-XXXXXX";
  FUZZ_CHECK(mkdtemp(pattern.data()) != nullptr);
  char real[PATH_MAX];
  FUZZ_CHECK(realpath(pattern.c_str(), real) != nullptr);
  base_dir = real;
  std::atexit(RemoveTree);
  const std::string root = base_dir + "/root";
  const std::string outside = base_dir + "/outside";
  for (const std::string& dir :
       {root, outside, outside + "/dir", root + "/d", root + "/cifar",
        root + "/cifar100", root + "/cifar_out"}) {
    FUZZ_CHECK(mkdir(dir.c_str(), 0755) == 0);
  }
  File(outside + "/secret");
  File(root + "/a.safetensors");
  File(root + "/train-images-idx3-ubyte");
  File(root + "/train-labels-idx1-ubyte");
  File(root + "/d/f");
  for (const char* name : {"data_batch_1.bin", "data_batch_2.bin",
                           "data_batch_3.bin", "data_batch_4.bin",
                           "data_batch_5.bin", "test_batch.bin"}) {
    File(root + "/cifar/" + name);
    Link(outside + "/secret", root + "/cifar_out/" + name);
  }
  File(root + "/cifar100/train.bin");
  File(root + "/cifar100/test.bin");
  FUZZ_CHECK(mkfifo((root + "/p").c_str(), 0644) == 0);
  Link("d/f", root + "/in_rel");
  Link(root + "/d", root + "/in_abs");
  Link("..", root + "/d/back");
  Link("../../outside/secret", root + "/d/escape");
  Link("../outside/secret", root + "/out_rel");
  Link(outside, root + "/out_abs");
  Link(root + "/d", outside + "/dir/back_in");
  Link("../outside/dir/back_in", root + "/round_trip");
  Link("loop", root + "/loop");
  Link("nope", root + "/dangling");
  Link("../outside/nope", root + "/dangling_out");
  Link("/", root + "/slash");
  Link(root, base_dir + "/alias");
  return {root, base_dir + "/alias"};
}

}  // namespace

const DataRootTree& TheDataRootTree() {
  static const DataRootTree tree = MakeTree();
  return tree;
}

std::string InRoot(const std::string& text) {
  const DataRootTree& tree = TheDataRootTree();
  return absl::StrReplaceAll(text, {{"$ROOT", tree.alias}, {"$REAL", tree.root}});
}

bool CanonicalInsideRoot(const std::string& path) {
  const std::string& root = TheDataRootTree().root;
  if (path != root && !absl::StartsWith(path, root + "/")) return false;
  char real[PATH_MAX];
  return realpath(path.c_str(), real) != nullptr && path == real;
}

}  // namespace curvd::fuzz
