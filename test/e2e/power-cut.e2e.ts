/**
 * Power cuts: an SD card that loses power mid-write can come back with a damaged root file system.
 * The initrd must check it before mounting it and, as cmdline.txt says fsck.repair=yes, repair it.
 * Proven on the image the e2e build made: its root file system is damaged on purpose in the boot's
 * copy-on-write overlay (the image itself is untouched), the way the kernel leaves a file system it
 * found damaged (error state set), then booted under QEMU; QEMU is then cut off too, and the root
 * file system left in the overlay must be clean.
 */
import { open, readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { prepareHost } from '../../scripts/boot/failover-test.ts';
import { inspectImage, readPartitionTable } from '../../scripts/boot/image.ts';
import { startBoot } from '../../scripts/boot/session.ts';
import { type Docker, CommandFailed, runContainer } from '../../scripts/lib/docker.ts';

const bootTimeoutMs = 15 * 60_000;

/** The damage: a file's link count, as a torn write of an inode table block can leave it. */
const damagedFile = '/etc/debian_version';
const damagedLinks = 3;

/**
 * The boot's prepareDisk snippet ($1 the image, $2 the overlay to create): damages a sparse copy
 * of the disk with debugfs, makes the overlay over the copy, then rebases it onto the image, which
 * leaves exactly the damaged clusters in the overlay. The copy lives in the container's own /tmp.
 */
function damageRootSnippet(rootOffset: number): string {
  if (!Number.isSafeInteger(rootOffset) || rootOffset <= 0) throw new Error(`bad root partition offset ${rootOffset}`);
  return `
    set -eu
    image=$1 overlay=$2
    copy=$(mktemp -d)/disk.img
    cp --sparse=always "$image" "$copy"
    root="$copy?offset=${rootOffset}"
    debugfs -w -R 'set_inode_field ${damagedFile} links_count ${damagedLinks}' "$root"
    # State 3 = valid + errors: what the kernel records when it meets a damaged structure.
    debugfs -w -R 'set_super_value state 3' "$root"
    # debugfs exits 0 even when a request fails: make sure the damage took.
    if e2fsck -fn "$root" >/dev/null 2>&1; then echo "the root file system is not damaged" >&2; exit 1; fi
    qemu-img create -q -f qcow2 -F raw -b "$copy" "$overlay"
    qemu-img rebase -q -f qcow2 -F raw -b "$image" "$overlay"
  `;
}

/** The root partition's byte offset and size, from the image's MBR. */
async function rootPartition(imagePath: string): Promise<{ offset: number; bytes: number }> {
  const file = await open(imagePath, 'r');
  try {
    const { buffer } = await file.read(Buffer.alloc(512), 0, 512, 0);
    const root = readPartitionTable(buffer, imagePath).find((partition) => partition.index === 2);
    if (!root) throw new Error(`${imagePath} has no second (root) partition`);
    return { offset: root.startSector * 512, bytes: root.sectors * 512 };
  } finally {
    await file.close();
  }
}

/** What e2fsck -p says on any file system a power cut ended, damaged or not. */
const afterAnyPowerCut = [/^e2fsck \d/, /: recovering journal$/, /: Clearing orphaned inode /, /: \d+\/\d+ files \(/];

/**
 * e2fsck -fp on the root file system as the boot left it in the overlay (work dir), in a one-shot
 * builder container, on a copy of the partition taken out of overlay + image (QEMU's raw driver
 * over the qcow2 one; not e2fsck's `file?offset=`, which loses the offset when it reopens after a
 * journal replay). The boot ended in a power cut (QEMU quit), so preen mode: it replays the
 * journal and corrects the free counts ext4 leaves stale in the superblock, silently, as a boot
 * would; anything else it reports is damage. Returns those reports.
 */
async function damageInOverlay(docker: Docker, builderImage: string, imagePath: string, workDir: string, root: { offset: number; bytes: number }) {
  const overlay = 'file.driver=qcow2,file.file.filename=/boot/overlay.qcow2,file.backing.driver=raw,file.backing.file.filename=/disk.img';
  const script = `
    qemu-img convert -O raw --image-opts "driver=raw,offset=${root.offset},size=${root.bytes},${overlay}" /tmp/root.img
    e2fsck -fp /tmp/root.img || [ $? -le 1 ]
  `;
  const output: string[] = [];
  try {
    await runContainer(docker, {
      image: builderImage,
      cmd: ['sh', '-euc', script],
      binds: [`${imagePath}:/disk.img:ro`, `${workDir}:/boot:ro`],
      sink: (line) => output.push(line),
    });
  } catch (err) {
    if (!(err instanceof CommandFailed)) throw err;
    return [...output, `(e2fsck -fp failed: ${err.message})`];
  }
  return output.filter((line) => line.trim() !== '' && !afterAnyPowerCut.some((expected) => expected.test(line)));
}

interface PowerCutEvidence {
  serial: string;
  serialLogFile: string;
  statusAnswered: boolean;
  bootError?: string;
  /** What e2fsck found on the root file system the boot left behind. */
  damageLeft: string[];
}

async function bootDamaged(imagePath: string, say: (message: string) => void): Promise<PowerCutEvidence> {
  const image = await inspectImage(imagePath);
  const root = await rootPartition(image.path);
  const { docker, builderImage } = await prepareHost(image, say);
  const serialLogFile = image.path.replace(/\.img$/, '.power-cut.serial.log');
  const session = await startBoot({ docker, builderImage, image, say, prepareDisk: damageRootSnippet(root.offset) });
  try {
    let statusAnswered = false;
    let bootError: string | undefined;
    try {
      const port = session.routers[0]?.status ?? 0;
      await session.waitForStatus(port, Date.now() + bootTimeoutMs - 120_000);
      statusAnswered = true;
    } catch (err) {
      bootError = (err as Error).message;
    }
    // The power cut: QEMU stops at once, with whatever the guest had not written yet lost.
    await session.qmp.execute('quit').catch(() => undefined);
    await Promise.race([session.exited, new Promise((resolve) => setTimeout(resolve, 30_000))]);
    await session.keepSerialLog(serialLogFile);
    const damageLeft = await damageInOverlay(docker, builderImage, image.path, session.workDir, root);
    const serial = (await readFile(serialLogFile, 'utf8')).replace(/\r/g, '');
    return { serial, serialLogFile, statusAnswered, bootError, damageLeft };
  } finally {
    await session.stop();
  }
}

export function describePowerCut(image: () => string): void {
  describe('power cut', { tags: ['slow'] }, () => {
    let evidence: PowerCutEvidence | undefined;
    const seen = () => {
      if (!evidence) throw new Error('the damaged boot did not run');
      return evidence;
    };

    it(
      'boots the image with its root file system damaged in the overlay',
      async () => {
        evidence = await bootDamaged(image(), (message) => process.stderr.write(`[power cut] ${message}\n`));
        process.stderr.write(`[power cut] serial log: ${evidence.serialLogFile}\n`);
        expect(evidence.serial, 'the serial console said nothing').not.toBe('');
      },
      bootTimeoutMs,
    );

    it('the initrd checks the root file system and repairs the damage', () => {
      const { serial, serialLogFile } = seen();
      // Only the lines about checking, so that a failure shows them and not the whole boot.
      const check = serial
        .split('\n')
        .filter((line) => /fsck|root file system|check forced|^Pass \d|ref count|WAS MODIFIED|EXT4-fs/.test(line))
        .join('\n');
      const why = `serial log: ${serialLogFile}`;
      expect(check, why).not.toMatch(/fsck not present/);
      expect(check, why).toMatch(/contains a file system with errors, check forced/);
      expect(check, why).toMatch(new RegExp(`ref count is ${damagedLinks}, should be 1\\.\\s+Fix\\? yes`));
      expect(check, why).toMatch(/FILE SYSTEM WAS MODIFIED/);
      expect(check, why).not.toMatch(/mounting fs with errors/);
    });

    it('the system still boots: the status service answers', () => {
      const { statusAnswered, bootError, serialLogFile } = seen();
      expect(statusAnswered, `${bootError ?? ''} (serial log: ${serialLogFile})`).toBe(true);
    });

    it('after the boot (and a second power cut) the root file system is clean', () => {
      expect(seen().damageLeft).toEqual([]);
    });
  });
}
