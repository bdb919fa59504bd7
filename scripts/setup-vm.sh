#!/usr/bin/env bash
# Installs what the VM backend (hwtest/vm/) needs to boot Debian kernels under QEMU TCG:
# qemu-system-x86 and busybox-static. gcc, make, xz and dpkg are expected on a Debian host.
# Idempotent: does nothing when everything is present. `apt-get update` only when a package
# cannot be found in the current lists.
set -euo pipefail

need=()
command -v qemu-system-x86_64 >/dev/null 2>&1 || need+=(qemu-system-x86)
[ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null | grep -qx cpio || need+=(busybox-static)
for tool in gcc make xz dpkg; do
  command -v "$tool" >/dev/null 2>&1 || echo "setup-vm: warning: '$tool' is missing (the module build or kernel extraction needs it)" >&2
done

if [ ${#need[@]} -eq 0 ]; then
  echo "setup-vm: qemu-system-x86_64 and busybox-static are present"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup-vm: cannot install ${need[*]}: no apt-get on this machine. Install QEMU (qemu-system-x86_64) and a static busybox with your package manager." >&2
  exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    exec sudo -n bash "$0" "$@"
  fi
  echo "setup-vm: cannot install ${need[*]}: not root (run: sudo apt-get install -y --no-install-recommends ${need[*]})" >&2
  exit 2
fi

export DEBIAN_FRONTEND=noninteractive
for p in "${need[@]}"; do
  if ! apt-cache show "$p" >/dev/null 2>&1; then
    echo "setup-vm: apt-get update (package lists do not know $p)"
    apt-get update -q
    break
  fi
done
echo "setup-vm: apt-get install ${need[*]}"
apt-get install -y -q --no-install-recommends "${need[@]}"
command -v qemu-system-x86_64 >/dev/null && [ -x /bin/busybox ] && echo "setup-vm: done"
