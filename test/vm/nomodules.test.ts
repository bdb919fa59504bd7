import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cacheRoot, namesInKernelImage, NO_MODULES_NOTE } from "../../hwtest/vm/provision.ts";

// A kernel without linux-modules-R (6.19, 7.0, 7.1) boots with the C agent when its image shows
// virtio_pci and virtio_console built in. Checked on a cached image when one is there.
describe("kernels without a modules package", () => {
  it("the note names the package and the C agent", () => {
    expect(NO_MODULES_NOTE("7.0.13+deb13-amd64")).toMatch(/no linux-modules-7\.0\.13\+deb13-amd64.*C agent only/);
  });

  const root = cacheRoot();
  const cached = existsSync(root) ? readdirSync(root).filter((d) => /^(6\.1[2-9]|7\.)/.test(d) && existsSync(join(root, d, "vmlinuz"))) : [];
  it.runIf(cached.length > 0)("a Debian image names its built-in virtio drivers, not its modular 9p", () => {
    const found = namesInKernelImage(join(root, cached[0], "vmlinuz"), ["virtio_pci", "virtio_console", "9pnet_virtio"]);
    expect(found).not.toBeNull();
    expect([...found!].sort()).toEqual(["virtio_console", "virtio_pci"]);
  });
});
