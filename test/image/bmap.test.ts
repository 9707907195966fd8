/** The bmap file: rendered as bmaptool expects it, read back with its checksum checked, bad files named. */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { type Bmap, blocksCount, mappedBlocksCount, mappedBytes, parseBmap, renderBmap } from '../../scripts/lib/bmap.ts';

const hash = (text: string) => createHash('sha256').update(text).digest('hex');

const sample: Bmap = {
  imageSize: 10 * 4096 + 100,
  blockSize: 4096,
  ranges: [
    { first: 0, last: 2, sha256: hash('a') },
    { first: 5, last: 5, sha256: hash('b') },
    { first: 8, last: 10, sha256: hash('c') },
  ],
};

/** The file with its BmapFileChecksum made right again after an edit, so only the edit is judged. */
function resealed(text: string): string {
  const stored = /<BmapFileChecksum> ([0-9a-f]{64}) </.exec(text)![1]!;
  const zeroed = text.replace(stored, '0'.repeat(64));
  return zeroed.replace('0'.repeat(64), hash(zeroed));
}

describe('renderBmap', () => {
  it('writes bmap 2.0 with sizes, counts, sha256 ranges and a single block as one number', () => {
    const text = renderBmap(sample);
    expect(text).toMatch(/^<\?xml version="1.0" \?>\n/);
    expect(text).toContain('<bmap version="2.0">');
    expect(text).toContain(`<ImageSize> ${10 * 4096 + 100} </ImageSize>`);
    expect(text).toContain('<BlockSize> 4096 </BlockSize>');
    expect(text).toContain('<BlocksCount> 11 </BlocksCount>');
    expect(text).toContain('<MappedBlocksCount> 7 </MappedBlocksCount>');
    expect(text).toContain('<ChecksumType> sha256 </ChecksumType>');
    expect(text).toContain(`<Range chksum="${hash('a')}"> 0-2 </Range>`);
    expect(text).toContain(`<Range chksum="${hash('b')}"> 5 </Range>`);
  });

  it('stores the sha256 of the file with that value replaced by 64 zeros', () => {
    const text = renderBmap(sample);
    const stored = /<BmapFileChecksum> ([0-9a-f]{64}) <\/BmapFileChecksum>/.exec(text)?.[1];
    expect(stored).toBeDefined();
    expect(hash(text.replace(stored!, '0'.repeat(64)))).toBe(stored);
  });

  it('gives the same bytes for the same map', () => {
    expect(renderBmap(structuredClone(sample))).toBe(renderBmap(sample));
  });

  it('refuses ranges that overlap, run backwards or go past the image', () => {
    const h = hash('x');
    expect(() => renderBmap({ ...sample, ranges: [{ first: 0, last: 3, sha256: h }, { first: 3, last: 4, sha256: h }] })).toThrow(/overlaps/);
    expect(() => renderBmap({ ...sample, ranges: [{ first: 4, last: 3, sha256: h }] })).toThrow(/ends before it starts/);
    expect(() => renderBmap({ ...sample, ranges: [{ first: 10, last: 11, sha256: h }] })).toThrow(/past the image's last block \(10\)/);
    expect(() => renderBmap({ ...sample, ranges: [{ first: 0, last: 0, sha256: 'nope' }] })).toThrow(/not a sha256/);
  });
});

describe('parseBmap', () => {
  it('reads back what renderBmap wrote', () => {
    expect(parseBmap(renderBmap(sample), 'x.bmap')).toEqual(sample);
  });

  it('reads an empty map and counts blocks and bytes', () => {
    const empty = { imageSize: 0, blockSize: 4096, ranges: [] };
    expect(parseBmap(renderBmap(empty), 'e.bmap')).toEqual(empty);
    expect(blocksCount(sample)).toBe(11);
    expect(mappedBlocksCount(sample)).toBe(7);
    // Blocks 0-2, 5 and 8-9 whole, block 10 only its first 100 bytes.
    expect(mappedBytes(sample)).toBe(6 * 4096 + 100);
  });

  it('reads a file in bmaptool create’s layout (comments, spacing)', () => {
    const body = [
      '<?xml version="1.0" ?>',
      '<!-- comment with <ImageSize> 1 </ImageSize> inside -->',
      '<bmap version="2.0">',
      '    <ImageSize> 8192 </ImageSize>',
      '    <BlockSize> 4096 </BlockSize>',
      '    <BlocksCount> 2 </BlocksCount>',
      '    <MappedBlocksCount> 1       </MappedBlocksCount>',
      '    <ChecksumType> sha256 </ChecksumType>',
      `    <BmapFileChecksum> ${'0'.repeat(64)} </BmapFileChecksum>`,
      '    <BlockMap>',
      `        <Range chksum="${hash('z')}"> 1 </Range>`,
      '    </BlockMap>',
      '</bmap>',
      '',
    ].join('\n');
    const text = body.replace('0'.repeat(64), hash(body));
    expect(parseBmap(text, 'tool.bmap')).toEqual({ imageSize: 8192, blockSize: 4096, ranges: [{ first: 1, last: 1, sha256: hash('z') }] });
  });

  it('names the file and the field of a bad bmap', () => {
    const good = renderBmap(sample);
    const cases: [string, RegExp][] = [
      ['<bmap>', /no <bmap version="\.\.\.">/],
      [resealed(good.replace('version="2.0"', 'version="1.4"')), /version "1\.4" is not supported/],
      [resealed(good.replace(/<ImageSize>[^<]*<\/ImageSize>/, '<ImageSize> big </ImageSize>')), /<ImageSize> is "big", not a whole number/],
      [resealed(good.replace(/\s*<BlockSize>[^<]*<\/BlockSize>/, '')), /no <BlockSize>/],
      [resealed(good.replace('<ChecksumType> sha256', '<ChecksumType> md5')), /<ChecksumType> is "md5"/],
      [good.replace('<BlockSize> 4096', '<BlockSize> 4097'), /<BmapFileChecksum> is [0-9a-f]{64} but the file's checksum is/],
      [resealed(good.replace('> 5 </Range>', '> five </Range>')), /<Range> "five" is not "first-last"/],
      [resealed(good.replace(/ chksum="[0-9a-f]{64}"> 5 /, '> 5 ')), /has no chksum attribute/],
      [resealed(good.replace('> 5 </Range>', '> 1 </Range>')), /range 1-1 overlaps or precedes/],
      [resealed(good.replace('<MappedBlocksCount> 7', '<MappedBlocksCount> 8')), /<MappedBlocksCount> is 8 but the ranges cover 7 blocks/],
      [resealed(good.replace('<BlocksCount> 11', '<BlocksCount> 12')), /<BlocksCount> is 12 but <ImageSize> 41060 makes 11 blocks/],
    ];
    for (const [text, message] of cases) {
      expect(() => parseBmap(text, 'out/x.img.bmap')).toThrow(/^out\/x\.img\.bmap is not a usable bmap file: /);
      expect(() => parseBmap(text, 'out/x.img.bmap')).toThrow(message);
    }
  });
});
