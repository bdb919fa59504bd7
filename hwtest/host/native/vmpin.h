/* SPDX-License-Identifier: GPL-2.0 */
/* Shared by auxprobe.c (loaded by the koffi executor) and exec.c (the C twin), so both read VmPin alike. */
#ifndef AUXSPEC_VMPIN_H
#define AUXSPEC_VMPIN_H
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * VmPin in kB from an open /proc/self/status fd. The kernel prints pinned_vm unsigned
 * (fs/proc/task_mmu.c task_mem, SEQ_PUT_DEC), so a negative pinned_vm shows as a huge
 * value: it is returned as the signed kB count it stands for. Failure: LONG_MIN.
 */
static inline long vmpin_kb_from(int fd) {
  static char buf[16384];
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  if (n < 0) return LONG_MIN;
  buf[n] = 0;
  char *p = strstr(buf, "\nVmPin:");
  if (!p) return LONG_MIN;
  p += 7;
  while (*p == ' ' || *p == '\t') p++;
  return (long)strtoull(p, NULL, 10);
}
#endif
