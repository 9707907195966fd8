/** Reads a tar back into its headers and contents, draining every entry, for assertions. */
import { Readable } from 'node:stream';
import { extract } from 'tar-stream';

export interface ListedEntry {
  name: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  mtime: number;
  linkname: string | null;
  content: string;
}

export async function listTar(tar: Buffer): Promise<ListedEntry[]> {
  const listed: ListedEntry[] = [];
  const reader = extract();
  Readable.from([tar]).pipe(reader);
  for await (const entry of reader) {
    const chunks: Buffer[] = [];
    for await (const chunk of entry) chunks.push(chunk as Buffer);
    const h = entry.header;
    listed.push({
      name: h.name,
      type: h.type ?? 'file',
      mode: h.mode ?? 0,
      uid: h.uid ?? -1,
      gid: h.gid ?? -1,
      uname: h.uname ?? '',
      gname: h.gname ?? '',
      mtime: (h.mtime?.getTime() ?? 0) / 1000,
      linkname: h.linkname ?? null,
      content: Buffer.concat(chunks).toString('utf8'),
    });
  }
  return listed;
}
