#!/bin/sh
# /init of the auxspec VM guest (busybox). Mounts the basics, loads the modules in
# /modules (named NN-name.ko, in load order; the test PMU is among them), sets
# perf_event_paranoid, and runs the agent on the virtio-serial port named "auxspec", which
# carries the host <-> agent JSON lines. The console (ttyS0) carries kernel messages and
# progress lines. Two agents:
# - AUXSPEC_AGENT_KIND=c: the static C agent /bin/auxspec-agent --guest (runtime/agent.c), which
#   owns the channel itself: no 9p shares, no Node in the guest;
# - otherwise: the host's /usr and the project are mounted over 9p (read-only) and the Node
#   shim (hwtest/vm/guest/shim.mjs) runs the TypeScript agent.
/bin/busybox --install -s /bin
export PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin
export HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o mode=1777 tmpfs /tmp
mkdir -p /dev/shm /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
. /auxspec.env

say() { echo "auxspec-init: $*" > /dev/console; }
fail() { say "FATAL: $*"; sleep 1; poweroff -f; }

say "kernel $(uname -r) up after $(cut -d' ' -f1 /proc/uptime)s"
for m in /modules/*.ko; do
  insmod "$m" || say "insmod $m failed"
done
if [ "$AUXSPEC_AGENT_KIND" != c ]; then
  opts=trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144
  mount -t 9p -o "$opts" hostusr /usr || fail "cannot mount the host /usr over 9p"
  mkdir -p "$AUXSPEC_PROJECT"
  mount -t 9p -o "$opts" project "$AUXSPEC_PROJECT" || fail "cannot mount the project over 9p"
fi
# Debian guests default to 3 (unprivileged perf_event_open refused); the harness expects 2.
echo 2 > /proc/sys/kernel/perf_event_paranoid
[ -d /sys/bus/event_source/devices/auxspec_pmu ] || say "auxspec_pmu is not registered"
say "modules (and shares) ready after $(cut -d' ' -f1 /proc/uptime)s"

port=
for p in /sys/class/virtio-ports/*; do
  [ "$(cat "$p/name" 2>/dev/null)" = auxspec ] && port=/dev/${p##*/}
done
[ -n "$port" ] && [ -c "$port" ] || fail "no virtio-serial port named auxspec"
exec 0<>"$port" 1>&0
if [ "$AUXSPEC_AGENT_KIND" = c ]; then
  # shellcheck disable=SC2086 # the flags are words
  /bin/auxspec-agent --guest $AUXSPEC_AGENT_ARGS 2>/dev/console
  say "agent exited ($?) after $(cut -d' ' -f1 /proc/uptime)s"
else
  cd "$AUXSPEC_PROJECT"
  node "$AUXSPEC_PROJECT/hwtest/vm/guest/shim.mjs" 2>/dev/console
  say "shim exited ($?) after $(cut -d' ' -f1 /proc/uptime)s"
fi
exec 0</dev/null 1>/dev/console
sync
poweroff -f
