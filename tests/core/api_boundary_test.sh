#!/usr/bin/env bash
# The torch boundary is a path (docs/adr/0008-layout.md): core/api/ is torch-free
# and includes nothing of core outside core/api/; server/ and client/ include
# nothing of core outside core/api/, and server/main.cc only core/api/engine.h.
# client/examples/ holds trainers, torch programs that link the engine on
# purpose, and is exempt.
# Usage: api_boundary_test.sh REPO_ROOT. Exit 1 and one line per violation.
set -euo pipefail
root=${1:?usage: api_boundary_test.sh REPO_ROOT}
cd "$root"
[[ -d core/api ]] || { echo "no core/api/ under $root"; exit 1; }

violations=$(
  {
    grep -HnE '#include [<"](torch|ATen|c10|caffe2)/' core/api/* || true
    grep -HnE '#include "core/' core/api/* | grep -vE '#include "core/api/' || true
    grep -rHnE --include='*.h' --include='*.cc' '#include "core/' server client \
      | grep -v '^client/examples/' | grep -vE '#include "core/api/' || true
    # The binary reaches the real engine through its factory alone.
    grep -HnE '#include "core/' server/main.cc | grep -v '"core/api/engine.h"' || true
  }
)
if [[ -n "$violations" ]]; then
  echo "torch boundary crossed (see docs/adr/0008-layout.md):"
  echo "$violations"
  exit 1
fi
echo "core/api/, server/ and client/ keep to the boundary"
