// The recipe as the form holds it, and back (docs/recipes.md is the format).
//
// Pure functions, no DOM. The form manages the fields below; any other key of
// an imported or typed recipe ("format", "distribution", an unknown key) is
// kept as it is, so that the JSON view, the export and the server's checks
// see what the user wrote.

export const RELEASES = ['trixie', 'bookworm'];
export const VARIANTS = ['live', 'busybox'];
export const COMPRESSIONS = ['zstd', 'xz'];

const MANAGED = new Set(['name', 'release', 'variant', 'packages', 'overlays', 'hooks', 'boot',
  'hostname', 'compression']);

// The form's values for an empty recipe (the current format's defaults: trixie).
export function emptyValues() {
  return {
    name: '', release: 'trixie', variant: 'live', packages: [], overlays: [], hooks: [],
    boot: {bios: true, uefi: true, cmdline: ''}, hostname: '', compression: 'zstd',
  };
}

function text(v, fallback = '') {
  if (v === undefined || v === null) return fallback;
  return typeof v === 'string' ? v : JSON.stringify(v);
}

function list(v) {
  return Array.isArray(v) ? v : [];
}

function object(v) {
  return v && typeof v === 'object' && !Array.isArray(v) ? v : {};
}

// A parsed recipe document -> {values, extras}: the form's values (defaults
// where the document says nothing, other types shown as their JSON) and the
// keys the form does not manage.
export function toForm(doc) {
  const d = object(doc);
  const boot = object(d.boot);
  const values = {
    name: text(d.name),
    release: text(d.release, d.format === 1 ? 'bookworm' : 'trixie'),
    variant: text(d.variant, 'live'),
    packages: list(d.packages).map((p) => text(p)),
    overlays: list(d.overlays).map((o) => ({
      path: text(object(o).path), mode: text(object(o).mode, '0644'), content: text(object(o).content),
    })),
    hooks: list(d.hooks).map((k) => ({name: text(object(k).name), script: text(object(k).script)})),
    boot: {
      bios: boot.bios === undefined ? true : boot.bios === true,
      uefi: boot.uefi === undefined ? true : boot.uefi === true,
      cmdline: text(boot.cmdline),
    },
    hostname: text(d.hostname),
    compression: text(d.compression, 'zstd'),
  };
  const extras = {};
  for (const [key, value] of Object.entries(d)) {
    if (!MANAGED.has(key)) extras[key] = value;
  }
  return {values, extras};
}

// The form's values (and the extras) -> {recipe, packageIndex}. Blank
// package rows are left out; packageIndex[i] is the form row of the recipe's
// packages[i], so that an error about packages[i] lands on its row. An empty
// host name is left out (it defaults to the name).
export function fromForm(values, extras = {}) {
  const packageIndex = [];
  const packages = [];
  values.packages.forEach((p, row) => {
    const name = p.trim();
    if (name) {
      packages.push(name);
      packageIndex.push(row);
    }
  });
  const recipe = {name: values.name, release: values.release, variant: values.variant, packages,
    overlays: values.overlays.map((o) => ({path: o.path, mode: o.mode, content: o.content})),
    hooks: values.hooks.map((k) => ({name: k.name, script: k.script})),
    boot: {bios: values.boot.bios, uefi: values.boot.uefi, cmdline: values.boot.cmdline}};
  if (values.hostname) recipe.hostname = values.hostname;
  recipe.compression = values.compression;
  return {recipe: {...recipe, ...extras}, packageIndex};
}

// "recipe.packages[3]" or "packages[3]" -> ['packages', 3]; "boot.cmdline"
// -> ['boot', 'cmdline']; "" -> [].
export function parseField(field) {
  if (typeof field !== 'string') return [];
  const path = field.replace(/^recipe(\.|$)/, '');
  const parts = [];
  for (const m of path.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) {
    parts.push(m[2] !== undefined ? Number(m[2]) : m[1]);
  }
  return parts;
}

// A download name for a recipe: its name when it is a plain one.
export function fileName(recipe) {
  const name = recipe && typeof recipe.name === 'string' ? recipe.name : '';
  return /^[a-z0-9][a-z0-9-]{0,62}$/.test(name) ? `${name}.json` : 'recipe.json';
}
