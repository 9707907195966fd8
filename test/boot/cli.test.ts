/**
 * `pibond boot`'s options, refused before anything starts: no engine, no image read.
 */
import { describe, expect, it } from 'vitest';
import { main } from '../../scripts/boot/cli.ts';

describe('pibond boot options', () => {
  it('refuses a --cache-volume that is not a Docker volume name, naming the option and what one is', async () => {
    await expect(main(['out/none.img', '--cache-volume', 'my cache'])).rejects.toThrow(
      '--cache-volume "my cache" is not a Docker volume name: it must be two or more letters, digits, "_", "." or "-", starting with a letter or digit (like pibond-cache)',
    );
  });

  it('documents --cache-volume and its default in --help', async () => {
    const written: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((chunk: string) => (written.push(chunk), true));
    try {
      expect(await main(['--help'])).toBe(0);
    } finally {
      process.stdout.write = write;
    }
    expect(written.join('')).toMatch(/--cache-volume NAME\n\s+the Docker volume that keeps the builder's kernel[^]*\(default: pibond-cache/);
  });
});
