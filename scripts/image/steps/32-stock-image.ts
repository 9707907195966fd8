/**
 * A stock image as the base (base.image), in place of the Debian bootstrap: the file checked
 * against base.sha256, streamed into the build container and unpacked as the output image, then
 * looked into (partitions, os-release, installed packages, marker files) and recognised by the
 * rules in scripts/lib/stock/rules.ts. The definition must agree with what was found: its network
 * stack is the image's own.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { pack } from 'tar-stream';
import { execIn, putArchive, readFilesFrom } from '../../lib/docker.ts';
import { UserError } from '../../lib/errors.ts';
import { type StockFacts, detectStock, markerPaths, parseDpkgStatus } from '../../lib/stock/detect.ts';
import { stockFileName, stockImageFile } from '../../lib/stock/source.ts';
import { type Step, paths, requireContainer, runTool, verifyTools } from '../context.ts';

/** Where the stock image's facts are copied to in the container, for the build to read back. */
const factsDir = `${paths.work}/stock-facts`;

/** stock-image.mjs inspect's report. */
interface InspectReport {
  diskId?: string;
  partitions: (StockFacts['partitions'][number] & { start: number; sectors: number })[];
  files: string[];
}

export const stockImage: Step = {
  title: 'Unpack and recognise the stock image',
  async verify(ctx) {
    if (ctx.def.base.image === undefined || ctx.def.base.sha256 === undefined) throw new Error('the stock image step runs only for a definition with base.image and base.sha256');
    // A lock pins the packages pibond installs; onto a stock image it installs none.
    if (ctx.options.lock) {
      throw new UserError(
        `${ctx.options.lock.file}: a lock does not apply to a stock image (base.image): its packages are the image's own, and base.sha256 pins them. ` +
          (ctx.options.lock.from === 'option' ? 'Leave out --locked.' : 'Build with --no-lock, or move the lock away.'),
      );
    }
    await verifyTools('stock-image.mjs');
  },
  async run(ctx) {
    const { docker, container } = requireContainer(ctx);
    const { image, sha256 } = ctx.def.base;
    if (image === undefined || sha256 === undefined) throw new Error('no base.image');
    const file = await stockImageFile(image, sha256, ctx.options.definitionFile, ctx.progress.say);
    ctx.signal?.throwIfAborted();

    // In through the engine's API, so a remote engine gets it too: one tar entry, streamed.
    const name = stockFileName(image);
    const { size } = await stat(file);
    const archive = pack();
    const entry = archive.entry({ name, size, mode: 0o644, mtime: new Date(ctx.options.sourceDateEpoch * 1000) });
    createReadStream(file).on('error', (err) => archive.destroy(err)).pipe(entry).on('finish', () => archive.finalize());
    // The overlays step unpacks pibond's tree into paths.rootfs, for the lay step to write in.
    await execIn(docker, container, ['mkdir', '-p', `${paths.work}/stock`, paths.rootfs], { sink: ctx.progress.sink });
    await putArchive(container, archive as unknown as NodeJS.ReadableStream, `${paths.work}/stock`);
    const output = paths.image(ctx.def.name);
    await runTool(ctx, 'stock-image.mjs', ['unpack', { input: `${paths.work}/stock/${name}`, image: output }]);

    const lines = await runTool(ctx, 'stock-image.mjs', ['inspect', { image: output, markers: markerPaths, facts: factsDir }]);
    const report = parseInspectReport(lines);
    const copied = await readFilesFrom(container, factsDir);
    const dpkg = parseDpkgStatus(copied.get('status')?.toString('utf8') ?? '');
    const facts: StockFacts = {
      osRelease: copied.get('os-release')?.toString('utf8'),
      files: report.files,
      packages: dpkg.packages,
      architecture: dpkg.architecture,
      partitions: report.partitions,
    };
    const found = detectStock(facts, name);
    const [boot, root] = report.partitions;
    if (!report.diskId || !boot || !root) throw new Error(`stock-image.mjs found no boot and root partition in ${name}, yet it was recognised`);
    checkDefinitionFits(ctx.def.network.stack, found.stack, found.name, ctx.options.definitionFile);
    ctx.stock = { image: found, diskId: report.diskId, bootOffset: boot.start * 512, rootOffset: root.start * 512 };
    ctx.progress.say(
      `Recognised ${found.name} (${found.architecture}, network stack ${found.stack}${found.cloudInit ? ', cloud-init' : ''}, ` +
        `${found.nodejs ? `its own nodejs ${found.nodejs}` : 'no nodejs of its own'})${found.notes.length > 0 ? `; ${found.notes.join('; ')}` : ''}`,
    );
  },
};

/** The definition's stack must be the image's: pibond renders the bond for the stack that runs. */
export function checkDefinitionFits(wanted: string, found: string, imageName: string, definitionFile: string): void {
  if (wanted === found) return;
  throw new UserError(`${definitionFile}: network.stack is ${wanted}, but the base image is ${imageName}, whose network stack is ${found}: set network.stack: ${found}`);
}

export function parseInspectReport(lines: readonly string[]): InspectReport {
  const last = lines.findLast((line) => line.startsWith('{'));
  if (!last) throw new Error(`stock-image.mjs inspect printed no report; its output ended:\n  ${lines.slice(-5).join('\n  ')}`);
  return JSON.parse(last) as InspectReport;
}
