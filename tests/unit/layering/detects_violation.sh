#!/usr/bin/env bash
# Plants include-rule violations in a scratch tree and expects check_includes.sh to refuse each.
set -euo pipefail
checker=${1:?usage: detects_violation.sh CHECKER}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/libs/base" "$tmp/libs/registries" "$tmp/cli" "$tmp/operator"
echo '#include "base/error.h"' >"$tmp/libs/registries/ok.cpp"
bash "$checker" "$tmp" >/dev/null || { echo "clean tree refused"; exit 1; }

echo '#include "registries/conf.h"' >"$tmp/libs/base/bad.cpp"
if bash "$checker" "$tmp" >/dev/null; then echo "base -> registries not caught"; exit 1; fi
rm "$tmp/libs/base/bad.cpp"

echo '#include "cli/registries_cmd.h"' >"$tmp/libs/registries/bad.cpp"
if bash "$checker" "$tmp" >/dev/null; then echo "library -> binary not caught"; exit 1; fi
rm "$tmp/libs/registries/bad.cpp"

echo '#include "operator/planner.h"' >"$tmp/cli/bad.cpp"
if bash "$checker" "$tmp" >/dev/null; then echo "binary -> binary not caught"; exit 1; fi
echo "violations detected"
