#!/usr/bin/env bash
# fetch-pairs.sh: download the real binaries deltabench and delta's pair
# benchmarks run on.
#
#   examples/deltabench/fetch-pairs.sh [-d DIR] [PAIR...]
#
# Each pair is two releases of one native program published on the npm
# registry (x86-64 unless named otherwise). `npm pack` downloads a release's
# tarball, tar takes the one file we want out of it, and the file must match
# the SHA-256 pinned below: a registry or mirror that serves other bytes
# makes the script fail, never the benchmark silently change.
#
# Files land in DIR as NAME-old.EXT and NAME-new.EXT, the layout deltabench
# and OTASEAL_BENCH_DIR expect. DIR defaults to $OTASEAL_BENCH_DIR, else
# ${XDG_CACHE_HOME:-~/.cache}/otaseal-bench. A file already there with the
# pinned hash is not fetched again. PAIR names (small, smallfar, medium,
# xl2, large, arm64) restrict the download; the default is all of them.
#
# Exit status: 0 when every requested file is in place, 1 when a download,
# an extraction or a hash check failed, 2 on bad usage.
set -euo pipefail

# file | npm package spec | path inside the tarball | sha256
PINS='
small-old.watcher.node    @parcel/watcher-linux-x64-glibc@2.5.0 package/watcher.node              b95f8796eff324bd48175955e1d11774085ddff5e5ae71f75ec7f75a4fb95b8f
small-new.watcher.node    @parcel/watcher-linux-x64-glibc@2.5.1 package/watcher.node              e58979069d4f71d2e36f7dc130d6dbc671e63666fe3943fd2ed481519cbf374c
smallfar-old.watcher.node @parcel/watcher-linux-x64-glibc@2.4.1 package/watcher.node              e27c69923f28774a8789203104392064b19f8d38405a15ea8bc511aafa916211
smallfar-new.watcher.node @parcel/watcher-linux-x64-glibc@2.5.0 package/watcher.node              b95f8796eff324bd48175955e1d11774085ddff5e5ae71f75ec7f75a4fb95b8f
medium-old.esbuild        @esbuild/linux-x64@0.24.0             package/bin/esbuild               8367cdb8aa8069785db9a37da1f5cdcea5c28c449509020a85b4c54e53a37353
medium-new.esbuild        @esbuild/linux-x64@0.24.2             package/bin/esbuild               75d1eba922507d7bd02cafe0bccd6c5ff8c8a427b34a700494c8f913328ce430
xl2-old.biome             @biomejs/cli-linux-x64@1.9.3          package/biome                     8486c25c33530f69f87cf8f7c36f61800b1068d768bf92de11f08a89e451985a
xl2-new.biome             @biomejs/cli-linux-x64@1.9.4          package/biome                     ce247fb644999ef52e5111dd6fd6e471019669fc9c4a44b5699721e39b7032c3
large-old.swc.node        @swc/core-linux-x64-gnu@1.10.0        package/swc.linux-x64-gnu.node    3db4d1b960228402770f63af0522b1a48095d2cb5496da5326313a262c42b4e6
large-new.swc.node        @swc/core-linux-x64-gnu@1.10.1        package/swc.linux-x64-gnu.node    1a884955cf317b9d326f8c1faf4a87b519f6e822f98d547f35a8154e22a73492
arm64-old.esbuild         @esbuild/linux-arm64@0.24.0           package/bin/esbuild               7288683360edb081cf2ea238a7b0015ac33e764301dedf5e86aa4ec186a6f7c8
arm64-new.esbuild         @esbuild/linux-arm64@0.24.2           package/bin/esbuild               68381efed35ab17f2f5785183f1d7677ead7a14bb9eee91dead04869b6459e63
'

usage() {
  sed -n '2,21s/^# \{0,1\}//p' "$0"
}

dir="${OTASEAL_BENCH_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/otaseal-bench}"
while getopts 'd:h' opt; do
  case "$opt" in
    d) dir="$OPTARG" ;;
    h) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))

known_pairs="$(awk 'NF { sub(/-(old|new)\..*/, "", $1); print $1 }' <<<"$PINS" | sort -u)"
for want in "$@"; do
  if ! grep -qx -- "$want" <<<"$known_pairs"; then
    echo "fetch-pairs: unknown pair '$want' (known: $(tr '\n' ' ' <<<"$known_pairs"))" >&2
    exit 2
  fi
done

for tool in npm tar; do
  command -v "$tool" >/dev/null || { echo "fetch-pairs: $tool not found on PATH" >&2; exit 1; }
done
if command -v sha256sum >/dev/null; then
  sha256() { sha256sum "$1" | cut -d' ' -f1; }
elif command -v shasum >/dev/null; then
  sha256() { shasum -a 256 "$1" | cut -d' ' -f1; }
else
  echo "fetch-pairs: need sha256sum or shasum" >&2
  exit 1
fi

mkdir -p "$dir"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# tarball SPEC: packs SPEC into $work once (two pairs share a release) and
# prints the tarball's path.
tarball() {
  local spec="$1" key
  key="$work/$(tr '/@' '__' <<<"$spec").tgz"
  if [ ! -f "$key" ]; then
    local name
    name="$(cd "$work" && npm pack --silent "$spec" </dev/null | tail -n 1)"
    mv "$work/$name" "$key"
  fi
  echo "$key"
}

selected() { # pair: requested on the command line, or no pairs given
  [ "$#" -gt 1 ] || return 0
  local pair="$1" want
  shift
  for want in "$@"; do
    [ "$want" = "$pair" ] && return 0
  done
  return 1
}

failed=0
while read -r file spec inner pin; do
  [ -n "$file" ] || continue
  pair="${file%%-old.*}"
  pair="${pair%%-new.*}"
  selected "$pair" "$@" || continue
  dest="$dir/$file"
  if [ -f "$dest" ] && [ "$(sha256 "$dest")" = "$pin" ]; then
    echo "ok       $file (already present)"
    continue
  fi
  echo "fetching $file from $spec" >&2
  tgz="$(tarball "$spec")"
  if ! tar -xzf "$tgz" -O "$inner" >"$work/file"; then
    echo "fetch-pairs: $spec has no $inner" >&2
    failed=1
    continue
  fi
  got="$(sha256 "$work/file")"
  if [ "$got" != "$pin" ]; then
    # Leave nothing behind: a wrong file in the cache would be benchmarked.
    rm -f "$dest"
    echo "fetch-pairs: SHA-256 MISMATCH for $file ($spec $inner)" >&2
    echo "  want $pin" >&2
    echo "  got  $got" >&2
    failed=1
    continue
  fi
  chmod 0644 "$work/file"
  mv "$work/file" "$dest"
  echo "ok       $file"
done <<<"$PINS"

if [ "$failed" -ne 0 ]; then
  echo "fetch-pairs: some files failed; see above" >&2
  exit 1
fi
echo "pairs are in $dir (export OTASEAL_BENCH_DIR=$dir for delta's pair benchmarks)"
