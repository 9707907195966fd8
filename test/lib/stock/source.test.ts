/**
 * The stock image file (scripts/lib/stock/source.ts): a path beside the definition, or a URL
 * downloaded once into the cache; checked against base.sha256 either way, nothing half-written.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserError } from '../../../scripts/lib/errors.ts';
import { stockFileName, stockImageFile } from '../../../scripts/lib/stock/source.ts';

const content = Buffer.from('a stock image, in miniature\n'.repeat(1000));
const sha256 = createHash('sha256').update(content).digest('hex');
let dir: string;
let server: Server;
let base: string;
let requests = 0;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stock-source-'));
  await mkdir(join(dir, 'defs'));
  await writeFile(join(dir, 'stock.img.xz'), content);
  server = createServer((req, res) => {
    requests++;
    if (req.url === '/images/stock.img.xz') res.end(content);
    else if (req.url === '/images/truncated.img.xz') res.end(content.subarray(0, 100));
    else res.writeHead(404, 'Not Found').end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.close();
  await rm(dir, { recursive: true, force: true });
});

describe('stockImageFile', () => {
  const definition = () => join(dir, 'defs', 'pi.yaml');
  const say = () => {};

  it('finds a path relative to the definition and checks its sha256', async () => {
    expect(await stockImageFile('../stock.img.xz', sha256, definition(), say)).toBe(join(dir, 'stock.img.xz'));
  });

  it('refuses a file whose sha256 differs, naming both sums', async () => {
    const wrong = '0'.repeat(64);
    const attempt = stockImageFile('../stock.img.xz', wrong, definition(), say);
    await expect(attempt).rejects.toThrow(UserError);
    await expect(attempt).rejects.toThrow(`its sha256 is ${sha256}, but base.sha256 says ${wrong}`);
  });

  it('says where it looked for a file that is not there', async () => {
    await expect(stockImageFile('nowhere.img', sha256, definition(), say)).rejects.toThrow(`no such file (looked at ${join(dir, 'defs', 'nowhere.img')})`);
  });

  it('downloads a URL once into the cache, then reuses it', async () => {
    const cache = join(dir, 'cache-once');
    const before = requests;
    const file = await stockImageFile(`${base}/images/stock.img.xz`, sha256, definition(), say, cache);
    expect(file).toBe(join(cache, sha256, 'stock.img.xz'));
    expect(await stockImageFile(`${base}/images/stock.img.xz`, sha256, definition(), say, cache)).toBe(file);
    expect(requests - before).toBe(1);
  });

  it('keeps nothing of a download whose sha256 differs, or that the server refuses', async () => {
    const cache = join(dir, 'cache-bad');
    await expect(stockImageFile(`${base}/images/truncated.img.xz`, sha256, definition(), say, cache)).rejects.toThrow(/its sha256 is [0-9a-f]{64}, but base.sha256 says/);
    await expect(stockImageFile(`${base}/images/missing.img.xz`, sha256, definition(), say, cache)).rejects.toThrow('the server answered 404 Not Found');
    expect(await readdir(join(cache, sha256))).toEqual([]);
  });
});

it('names the file by its URL path, without the query', () => {
  expect(stockFileName('https://example.org/a/ubuntu.img.xz?download=1')).toBe('ubuntu.img.xz');
  expect(stockFileName('../images/raspios.img')).toBe('raspios.img');
});
