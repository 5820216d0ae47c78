#!/usr/bin/env node
// Writes docs/api-summary.md, every public name on one page, from the declarations the package
// exports (lib/index.ts, read with the TypeScript compiler): each class's members with their
// option keys and the first sentence of their doc comment, each function, interface, type and
// constant. `npm run docs` runs it; `npm run docs:check` fails when the committed page differs.
// Usage: node scripts/api-summary.js [output file]   (default docs/api-summary.md)
'use strict';
const fs = require('fs');
const path = require('path');
const ts = require('typescript');

const root = path.join(__dirname, '..');
const lib = path.join(root, 'lib') + path.sep;

/** The summary's markdown. */
function summarize() {
  const config = ts.getParsedCommandLineOfConfigFile(path.join(root, 'tsconfig.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} });
  const program = ts.createProgram([path.join(root, 'lib', 'index.ts')], config.options);
  const checker = program.getTypeChecker();
  const entry = program.getSourceFile(path.join(root, 'lib', 'index.ts'));
  const exports = checker.getExportsOfModule(checker.getSymbolAtLocation(entry));
  const resolve = (s) => (s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s);
  const ours = (d) => path.resolve(d.getSourceFile().fileName).startsWith(lib);
  const byName = (a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

  /** The first sentence of a symbol's doc comment, on one line. */
  function doc(symbol) {
    const text = ts.displayPartsToString(symbol.getDocumentationComment(checker)).split(/\n\s*\n/)[0].replace(/\s+/g, ' ').trim();
    const end = text.search(/\.(\s|$)/);
    return end < 0 ? text : text.slice(0, end + 1);
  }
  const internal = (symbol) => symbol.getJsDocTags().some((t) => t.name === 'internal');

  /** An options interface of ours, as its keys: `{ a?, b }`. */
  function optionKeys(type) {
    const s = type.getSymbol() || type.aliasSymbol;
    if (!s || !(/Options$/.test(s.name) || s.name === '__type') || !(s.declarations || []).some(ours)) return null;
    const keys = checker.getPropertiesOfType(type).map((p) => p.name + (p.flags & ts.SymbolFlags.Optional ? '?' : ''));
    return `{ ${keys.join(', ')} }`;
  }
  function param(p) {
    const decl = p.valueDeclaration;
    const optional = decl && (decl.questionToken || decl.initializer) ? '?' : '';
    const type = checker.getNonNullableType(checker.getTypeOfSymbolAtLocation(p, decl));
    const keys = optionKeys(type);
    return keys === null ? `${p.name}${optional}` : `${p.name}${optional}: ${keys}`;
  }
  const typeText = (t) => checker.typeToString(t, undefined, ts.TypeFormatFlags.NoTruncation | ts.TypeFormatFlags.UseAliasDefinedOutsideCurrentScope);
  function signatures(name, symbol, location) {
    const type = checker.getTypeOfSymbolAtLocation(symbol, location);
    const seen = new Set();
    for (const sig of type.getCallSignatures()) {
      const ret = typeText(sig.getReturnType());
      seen.add(`\`${name}(${sig.getParameters().map(param).join(', ')})\`${ret === 'void' ? '' : ` → \`${ret}\``}`);
    }
    return [...seen];
  }
  const cell = (s) => s.replace(/\|/g, '\\|');
  const isPublic = (d) => !(ts.getCombinedModifierFlags(d) & (ts.ModifierFlags.Private | ts.ModifierFlags.Protected));

  /** The table rows of a class's public members of our own (statics first), in declaration order. */
  function members(symbol) {
    const decl = symbol.declarations.find(ts.isClassDeclaration);
    const rows = [];
    const collect = (props, prefix) => {
      for (const p of props) {
        const decls = (p.declarations || []).filter(ours);
        if (decls.length === 0 || p.name.startsWith('_') || p.name === 'prototype' || !decls.every(isPublic) || internal(p)) continue;
        const d = decls[0];
        const what = cell(doc(p));
        if (ts.isMethodDeclaration(d) || ts.isMethodSignature(d)) {
          for (const s of signatures(`${prefix}${p.name}`, p, d)) rows.push([d, `| ${cell(s)} | ${what} |`]);
        } else {
          const ro = ts.getCombinedModifierFlags(d) & ts.ModifierFlags.Readonly || ts.isGetAccessor(d) ? ' (read-only)' : '';
          const type = d.type ? d.type.getText().replace(/\s+/g, ' ') : typeText(checker.getTypeOfSymbolAtLocation(p, d));
          rows.push([d, `| \`${prefix}${p.name}\`: \`${cell(type)}\`${ro} | ${what} |`]);
        }
      }
    };
    collect(checker.getPropertiesOfType(checker.getTypeOfSymbolAtLocation(symbol, decl)), `${symbol.name}.`);
    const statics = rows.length;
    collect(checker.getPropertiesOfType(checker.getDeclaredTypeOfSymbol(symbol)), '.');
    const order = (a, b) => (a[0].getSourceFile().fileName === b[0].getSourceFile().fileName ? a[0].pos - b[0].pos : a[0].getSourceFile().fileName < b[0].getSourceFile().fileName ? -1 : 1);
    return [...rows.slice(0, statics).sort(order), ...rows.slice(statics).sort(order)].map((r) => r[1]);
  }

  const kinds = { classes: [], functions: [], interfaces: [], types: [], values: [] };
  for (const e of exports) {
    const s = resolve(e);
    if (s.flags & ts.SymbolFlags.Class) kinds.classes.push(s);
    else if (s.flags & ts.SymbolFlags.Function) kinds.functions.push(s);
    else if (s.flags & ts.SymbolFlags.Interface) kinds.interfaces.push(s);
    else if (s.flags & ts.SymbolFlags.TypeAlias) kinds.types.push(s);
    else kinds.values.push(s);
  }
  const out = [
    '# API summary', '',
    'Every public name of `userfaultfd` on one page, generated from the declarations by',
    '`npm run docs` (scripts/api-summary.js; `npm run docs:check` fails when it is stale). The full',
    'reference, with every field and option explained, is [docs/api](api/README.md).', '',
    'A range is `{ start: bigint | number, length: number }`, page aligned; a `Region` is accepted',
    'wherever a range is. Addresses are returned as `bigint`. An options object with a key it does',
    'not know is refused (`ERR_UFFD_UNKNOWN_OPTION`, docs/design.md).', '',
    '## Classes', '',
  ];
  for (const c of kinds.classes.sort(byName)) {
    out.push(`### \`${c.name}\``, '', ...(doc(c) ? [doc(c), ''] : []), '| member | what it does |', '| --- | --- |', ...members(c), '');
  }
  out.push('## Functions', '', '| function | what it does |', '| --- | --- |');
  for (const f of kinds.functions.sort(byName)) {
    for (const s of signatures(f.name, f, f.declarations[0])) out.push(`| ${cell(s)} | ${cell(doc(f))} |`);
  }
  out.push('', '## Constants', '', '| name | what it is |', '| --- | --- |');
  for (const v of kinds.values.sort(byName)) out.push(`| \`${v.name}\` | ${cell(doc(v))} |`);
  out.push('', '## Interfaces', '', '| interface | fields | what it is |', '| --- | --- | --- |');
  for (const i of kinds.interfaces.sort(byName)) {
    const fields = checker.getPropertiesOfType(checker.getDeclaredTypeOfSymbol(i))
      .map((p) => `${p.name}${p.flags & ts.SymbolFlags.Optional ? '?' : ''}`).join(', ');
    out.push(`| \`${i.name}\` | ${cell(fields)} | ${cell(doc(i))} |`);
  }
  out.push('', '## Types', '', '| type | what it is |', '| --- | --- |');
  for (const t of kinds.types.sort(byName)) {
    const d = t.declarations[0];
    const text = d.type.getText().replace(/\s+/g, ' ');
    const def = text.length <= 100 ? `\`${t.name} = ${text}\`` : `\`${t.name}\``;
    out.push(`| ${cell(def)} | ${cell(doc(t))} |`);
  }
  return out.join('\n') + '\n';
}

if (require.main === module) {
  const file = process.argv[2] || path.join(root, 'docs', 'api-summary.md');
  fs.writeFileSync(file, summarize());
}

module.exports = { summarize };
