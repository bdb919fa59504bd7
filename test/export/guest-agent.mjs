// A guest agent for test/export/vm.test.ts (plain JavaScript, started by the VM guest's shim
// in place of hwtest/host/agent.ts). It answers each request whose config carries
// `ksft: { dir, rmmod }` by running the exported kselftests in `dir` through the selftests'
// own runner (make run_tests: lib.mk + kselftest/runner.sh), after `rmmod auxspec_pmu` when
// rmmod is set, and returns the runner's KTAP in the trace (`ktap`).
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import os from "node:os";

// The guest's /dev is a bare devtmpfs: no /dev/stdout, /dev/fd (udev makes them on a real
// system). runner.sh appends every test's output to /dev/stdout; without the link it would
// create a plain file there and the log would hold only the verdicts.
for (const [name, target] of [["fd", "/proc/self/fd"], ["stdin", "/proc/self/fd/0"], ["stdout", "/proc/self/fd/1"], ["stderr", "/proc/self/fd/2"]]) {
  spawnSync("sh", ["-c", `[ -L /dev/${name} ] || { rm -f /dev/${name}; ln -s ${target} /dev/${name}; }`]);
}

const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on("line", (line) => {
  if (!line.trim()) return;
  const req = JSON.parse(line);
  const k = req.config?.ksft;
  let ktap = "";
  let note = "";
  if (k?.rmmod) {
    const r = spawnSync("rmmod", ["auxspec_pmu"], { encoding: "utf8" });
    note = `rmmod auxspec_pmu: status ${r.status} ${r.stderr.trim()}`;
  }
  if (k?.dir) {
    // runner.sh writes to /dev/stdout (reopened, O_APPEND): a file, not a pipe, opened for appending
    // too, or the shell's own writes overwrite what the tests print.
    spawnSync("rm", ["-f", "/tmp/ktap.txt"]);
    spawnSync("sh", ["-c", `make -s -C "${k.dir}" run_tests >> /tmp/ktap.txt 2>&1`], { stdio: "ignore" });
    try { ktap = readFileSync("/tmp/ktap.txt", "utf8"); } catch (e) { ktap = `cannot read the runner's output: ${e.message}`; }
  }
  process.stdout.write(JSON.stringify({
    id: req.id,
    trace: { backend: "ksft", kernel: os.release(), steps: [], audit: null, ktap, note, pmu: spawnSync("ls", ["/sys/bus/event_source/devices"], { encoding: "utf8" }).stdout.trim() },
  }) + "\n");
});
