#!/usr/bin/env bash
# The kselftest framework of a real kernel tree, for building and running auxspec's exported
# kselftests (npm run export -- --kselftest): Debian bookworm's linux-source-6.1, fetched
# with `apt-get download` (no apt sources are changed, nothing is installed) into
# .cache/ksft, and only what the selftests' lib.mk needs is extracted:
#   tools/testing/selftests/{kselftest.h,kselftest_harness.h,lib.mk,kselftest/,perf_events/,
#   run_kselftest.sh,Makefile} and scripts/subarch.include.
# Prints the tree's root (…/linux-source-6.1) on stdout. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="$PWD/.cache/ksft"
tree="$cache/linux-source-6.1"
if [ -f "$tree/tools/testing/selftests/lib.mk" ] && [ -f "$tree/tools/testing/selftests/kselftest/runner.sh" ]; then
  echo "$tree"; exit 0
fi
mkdir -p "$cache"
cd "$cache"
deb=$(ls linux-source-6.1_*_all.deb 2>/dev/null | head -1 || true)
if [ -z "$deb" ]; then
  command -v apt-get >/dev/null || { echo "ksft-headers: no apt-get here; put linux-source-6.1_*_all.deb in $cache" >&2; exit 2; }
  apt-get download linux-source-6.1 >&2 2>/dev/null || apt-get download linux-source-6.1 >&2
  deb=$(ls linux-source-6.1_*_all.deb | head -1)
fi
dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/src/linux-source-6.1.tar.xz | tar -xJf - --wildcards \
  'linux-source-6.1/tools/testing/selftests/kselftest*' \
  'linux-source-6.1/tools/testing/selftests/lib.mk' \
  'linux-source-6.1/tools/testing/selftests/run_kselftest.sh' \
  'linux-source-6.1/tools/testing/selftests/Makefile' \
  'linux-source-6.1/tools/testing/selftests/perf_events/*' \
  'linux-source-6.1/scripts/subarch.include' >&2
echo "$tree"
