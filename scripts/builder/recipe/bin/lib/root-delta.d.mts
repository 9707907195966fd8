// Types for root-delta.mjs (plain JavaScript: it runs under the build container's Node, unbundled).
export interface ChangedEntry {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  links: number;
  path: string;
  target: string;
}

export function parseTypedListing(text: string): Map<string, string>;
export function parseChangedListing(text: string): ChangedEntry[];
export function deltaCommands(input: {
  base: Map<string, string>;
  current: Map<string, string>;
  changed: ChangedEntry[];
  root: string;
  sourceDateEpoch: number;
}): { commands: string[]; summary: { removed: number; written: number; directories: number; links: number } } | { fallback: string };
export function accessTimeCommands(paths: Iterable<string>, sourceDateEpoch: number): { commands: string[]; unquoted: string[] };
export function layCommands(input: {
  existing: Map<string, string>;
  entries: ChangedEntry[];
  removed: string[];
  root: string;
  sourceDateEpoch: number;
}): { commands: string[]; summary: { removed: number; written: number; directories: number; links: number } };
