// Kernel modules by name, as modules.dep and modules.builtin list them: what a set of modules
// needs, and the order to load it in. Pure functions, unit-tested (test/boot/boot-kernel.test.ts).

/**
 * modules.dep's lines ("kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/jbd2/jbd2.ko") as a
 * map from module name (ext4) to {path, deps: [names]}. A module's name is its file name without
 * .ko (and a compression suffix), with "-" read as "_", as modprobe reads it.
 */
export function parseModulesDep(text) {
  const modules = new Map();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const path = line.slice(0, colon).trim();
    const deps = line.slice(colon + 1).trim().split(/\s+/).filter(Boolean);
    modules.set(moduleName(path), { path, deps: deps.map(moduleName) });
  }
  return modules;
}

/** The names modules.builtin lists (one path per line), as a set. */
export function parseBuiltin(text) {
  return new Set(text.split('\n').filter(Boolean).map(moduleName));
}

export function moduleName(path) {
  return path.split('/').pop().replace(/\.ko(\.(xz|zst|gz))?$/, '').replaceAll('-', '_');
}

/**
 * modules.softdep's "pre:" modules (what modprobe loads first, without a symbol needing it: ext4's
 * crc32c, asked for by name when a file system has checksums) as a map from module name to names.
 */
export function parseSoftdeps(text) {
  const soft = new Map();
  for (const line of text.split('\n')) {
    const match = /^softdep\s+(\S+)\s+(.*)$/.exec(line.trim());
    if (!match) continue;
    const pre = /(?:^|\s)pre:\s*(.*?)(?:\s+post:.*)?$/.exec(match[2])?.[1] ?? '';
    soft.set(moduleName(match[1]), pre.split(/\s+/).filter(Boolean));
  }
  return soft;
}

/** modules.alias's lines ("alias crypto-crc32c crc32c_generic") as a map from alias to module names. */
export function parseAliases(text) {
  const aliases = new Map();
  for (const line of text.split('\n')) {
    const match = /^alias\s+(\S+)\s+(\S+)$/.exec(line.trim());
    if (!match) continue;
    aliases.set(match[1], [...(aliases.get(match[1]) ?? []), moduleName(match[2])]);
  }
  return aliases;
}

/**
 * The modules `wanted` need, in an order that loads each after its dependencies and its soft
 * "pre:" dependencies, as modules.dep paths. A wanted module built into the kernel needs nothing;
 * one that is neither a module nor built in is an error that names it. A soft dependency that is
 * neither is skipped: it is soft.
 */
export function loadOrder(wanted, modules, builtin, { softdeps = new Map(), aliases = new Map() } = {}) {
  const order = [];
  const seen = new Set();
  const visit = (name, from) => {
    const key = name.replaceAll('-', '_');
    if (seen.has(key) || builtin.has(key)) return;
    const module = modules.get(key);
    if (!module) throw new Error(`no kernel module ${name}${from ? ` (needed by ${from})` : ''}, and it is not built in`);
    seen.add(key);
    for (const soft of softdeps.get(key) ?? []) {
      for (const target of aliases.get(soft) ?? [moduleName(soft)]) if (modules.has(target)) visit(target, key);
    }
    for (const dep of module.deps) visit(dep, key);
    order.push(module.path);
  };
  for (const name of wanted) visit(name);
  return order;
}
