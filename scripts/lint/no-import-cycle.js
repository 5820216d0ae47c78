// ESLint rule (registered in eslint.config.js for lib/**): no file of lib/ is on an import
// circle. Every import counts: `import type`, `export … from`, require(), import() and a
// `declare module './x'` augmentation. A circle of types is still a circle a reader must hold
// in their head, and it is how the value circles start (eslint-plugin-import's no-cycle skips
// type imports, so it would not have seen the circle issue 30 removed: backend.ts took the
// Region and Userfaultfd types from the files that import it). The files' imports are read
// with the TypeScript compiler's preProcessFile (typescript is already a devDependency).
'use strict';
const fs = require('fs');
const path = require('path');

let ts = null;
const graphs = new Map(); // root -> { key, edges }

function tsFiles(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return tsFiles(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

/** The .ts file a relative specifier names, or null (a package, or a file outside the tree). */
function resolve(from, spec) {
  if (!spec.startsWith('.')) return null;
  const base = path.resolve(path.dirname(from), spec.replace(/\.js$/, ''));
  for (const p of [`${base}.ts`, path.join(base, 'index.ts')]) if (fs.existsSync(p)) return p;
  return null;
}

function importsOf(file, text) {
  ts ??= require('typescript');
  const { importedFiles } = ts.preProcessFile(text, true, true);
  return [...new Set(importedFiles.map((f) => resolve(file, f.fileName)).filter((p) => p !== null))];
}

/** Every file's imports under `root`, read again when a file changed (an editor lints on). */
function graphOf(root) {
  const files = tsFiles(root);
  const key = files.map((f) => `${f}:${fs.statSync(f).mtimeMs}`).join('\n');
  const cached = graphs.get(root);
  if (cached && cached.key === key) return cached.edges;
  const edges = new Map(files.map((f) => [f, importsOf(f, fs.readFileSync(f, 'utf8'))]));
  graphs.set(root, { key, edges });
  return edges;
}

/** The shortest circle from `file` back to itself, as a list of files, or null. */
function circleThrough(file, edges) {
  const parent = new Map();
  const queue = [file];
  while (queue.length > 0) {
    const at = queue.shift();
    for (const next of edges.get(at) || []) {
      if (next === file) {
        const circle = [file];
        for (let p = at; p !== file; p = parent.get(p)) circle.splice(1, 0, p);
        return [...circle, file];
      }
      if (!parent.has(next)) {
        parent.set(next, at);
        queue.push(next);
      }
    }
  }
  return null;
}

module.exports = {
  meta: {
    type: 'problem',
    docs: { description: 'no import circle among the files of a folder (lib/)' },
    schema: [{ type: 'object', properties: { root: { type: 'string' } }, additionalProperties: false }],
    messages: {
      circle: 'Import circle: {{circle}}. Move what both sides share down a part (docs/development.md, "Layout").',
    },
  },
  create(context) {
    const cwd = context.cwd;
    const root = path.resolve(cwd, (context.options[0] && context.options[0].root) || 'lib');
    const file = path.resolve(context.filename);
    return {
      Program(program) {
        if (!file.startsWith(root + path.sep)) return;
        const edges = new Map(graphOf(root));
        edges.set(file, importsOf(file, context.sourceCode.text)); // the text being linted
        const circle = circleThrough(file, edges);
        if (circle === null) return;
        const first = circle[1];
        // Reported at the import that starts the circle, else at the top of the file.
        const at = program.body.find((n) => {
          const spec = n.source ? n.source.value : n.type === 'TSModuleDeclaration' && n.id.type === 'Literal' ? n.id.value : null;
          return typeof spec === 'string' && resolve(file, spec) === first;
        }) || program;
        context.report({ node: at, messageId: 'circle', data: { circle: circle.map((f) => path.relative(cwd, f)).join(' -> ') } });
      },
    };
  },
};
