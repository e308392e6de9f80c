#!/usr/bin/env bash
# Fails when an #include breaks the dependency rules of DESIGN.md §3: libraries use only the
# libraries below them, never a binary's headers; binaries never include each other.
set -euo pipefail
root=${1:?usage: check_includes.sh SOURCE_DIR}
cd "$root"

# Who may use whom (direct or transitive). base uses nothing of ours.
declare -A allowed=(
  [base]=""
  [http]="base"
  [reference]="base"
  [registries]="reference base"
  [oci]="http reference registries base"
  [kube]="http base"
  [api]="kube registries http reference base"
  [cri]="base"
)
libs=" ${!allowed[*]} "
bad=0

check_file() {  # file, owner, allowed-list, may-include-own-binary-dir
  local file=$1 owner=$2 allow=$3
  local inc target
  while IFS= read -r inc; do
    target=${inc%%/*}
    [ "$target" = "$inc" ] && continue  # a header beside the file, no folder part
    if [[ "$libs" == *" $target "* ]]; then
      if [ "$target" != "$owner" ] && [[ " $allow " != *" $target "* ]]; then
        echo "$file: includes \"$inc\": $owner may not use $target"
        bad=1
      fi
    elif [ -d "$target" ] && [ "$target" != "libs" ] && [ "$target" != "tests" ]; then
      echo "$file: includes \"$inc\" from folder $target/"
      bad=1
    fi
  done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$file")
}

for dir in libs/*/; do
  lib=$(basename "$dir")
  if [ -z "${allowed[$lib]+x}" ]; then
    echo "libs/$lib: not in the dependency table of DESIGN.md §3 (update check_includes.sh)"
    bad=1
    continue
  fi
  while IFS= read -r f; do check_file "$f" "$lib" "${allowed[$lib]}"; done \
    < <(find "$dir" -name '*.h' -o -name '*.cpp' -o -name '*.cc')
done

# Binaries use any library but never another binary's folder.
for bin in operator node-agent cli; do
  [ -d "$bin" ] || continue
  while IFS= read -r f; do
    while IFS= read -r inc; do
      target=${inc%%/*}
      for other in operator node-agent cli; do
        if [ "$target" = "$other" ] && [ "$other" != "$bin" ]; then
          echo "$f: includes \"$inc\": binaries never use each other"
          bad=1
        fi
      done
    done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f")
  done < <(find "$bin" -name '*.h' -o -name '*.cpp')
done

if [ "$bad" -ne 0 ]; then
  echo "include rules broken (DESIGN.md §3)"
  exit 1
fi
echo "include rules hold for $(ls -d libs/*/ | wc -l) libraries"
