// Types for modules.mjs (plain JavaScript: it runs under the build container's Node, unbundled).
export interface KernelModule {
  path: string;
  deps: string[];
}

export function parseModulesDep(text: string): Map<string, KernelModule>;
export function parseBuiltin(text: string): Set<string>;
export function moduleName(path: string): string;
export function parseSoftdeps(text: string): Map<string, string[]>;
export function parseAliases(text: string): Map<string, string[]>;
export function loadOrder(
  wanted: readonly string[],
  modules: Map<string, KernelModule>,
  builtin: Set<string>,
  soft?: { softdeps?: Map<string, string[]>; aliases?: Map<string, string[]> },
): string[];
