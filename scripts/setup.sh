#!/usr/bin/env bash
# auxspec set-up: everything the tests and the fuzzer need, from the project's own files.
#   - Node >= 20.19 (checked), npm packages (npm ci)
#   - gcc and a static libc (C reproducers are built with gcc -static; the host executor's
#     fork-and-touch helper is a small C library)
#   - QEMU and busybox-static for the VM backend (scripts/setup-vm.sh)
# Idempotent; apt-get runs only when something is missing. AUXSPEC_NO_VM=1 skips QEMU.
set -euo pipefail
cd "$(dirname "$0")/.."

node -e 'const [a,b]=process.versions.node.split(".").map(Number); if (a<20||(a===20&&b<19)) { console.error("auxspec needs Node >= 20.19, this is "+process.version); process.exit(2) }'

need=()
command -v gcc >/dev/null 2>&1 || need+=(gcc)
command -v make >/dev/null 2>&1 || need+=(make)
[ -e /usr/lib/x86_64-linux-gnu/libc.a ] || [ -e /usr/lib/aarch64-linux-gnu/libc.a ] || need+=(libc6-dev)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${need[@]}" || { apt-get update -q && apt-get install -y --no-install-recommends "${need[@]}"; }
  else
    echo "setup: missing ${need[*]}; install them (apt-get install ${need[*]})" >&2
    exit 2
  fi
fi

if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi

# The host executor's C helpers (fork-free touch; the C twin executor for the bench), built
# into .cache/native. Built here, before any VM guest sees the project read-only.
npx tsx hwtest/host/native/build.ts

if [ "${AUXSPEC_NO_VM:-0}" != 1 ]; then
  bash scripts/setup-vm.sh
fi
echo "setup: done"
