// docs/api-summary.md is generated from the declarations (scripts/api-summary.js): it must be
// what the generator makes of the current lib/ (`npm run docs:check` fails otherwise, and so does
// this test), and it must name every public name the package exports.
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const { skipWithReason } = require('../helpers');

const ROOT = path.join(__dirname, '..', '..');

describe('docs/api-summary.md: every public name, never stale', function () {
  this.timeout(60000);
  let summarize;
  let page;
  before(function () {
    if (!fs.existsSync(path.join(ROOT, 'lib', 'index.ts'))) skipWithReason(this, 'lib/ is not here (an installed package)');
    try {
      require.resolve('typescript');
    } catch {
      skipWithReason(this, 'the typescript package is not installed (npm ci installs it)');
    }
    summarize = require('../../scripts/api-summary').summarize;
    page = fs.readFileSync(path.join(ROOT, 'docs', 'api-summary.md'), 'utf8');
  });

  it('is what scripts/api-summary.js makes of lib/ now (else: npm run docs)', function () {
    const fresh = summarize();
    if (fresh !== page) {
      const a = page.split('\n');
      const b = fresh.split('\n');
      const i = a.findIndex((line, n) => line !== b[n]);
      assert.fail(`docs/api-summary.md is stale from line ${i + 1}: run \`npm run docs\` and commit.\n` +
        `  committed: ${a[i]}\n  generated: ${b[i]}`);
    }
  });

  it('names every export, every public method of Userfaultfd and Region, and the options of serve()', function () {
    const pkg = require('../../dist');
    for (const name of Object.keys(pkg).filter((n) => n !== 'default')) {
      assert.match(page, new RegExp('`' + name + '[`.(: ]'), `${name} is missing`);
    }
    for (const [cls, proto] of [['Userfaultfd', pkg.Userfaultfd.prototype], ['Region', pkg.Region.prototype]]) {
      for (const m of Object.getOwnPropertyNames(proto).filter((n) => n !== 'constructor' && !n.startsWith('_'))) {
        const d = Object.getOwnPropertyDescriptor(proto, m);
        if (typeof d.value !== 'function' && d.get === undefined) continue;
        // Private helpers are on the prototype too; the declarations say what is public.
        const dts = fs.readFileSync(path.join(ROOT, 'dist', 'core', `${cls === 'Userfaultfd' ? 'userfaultfd' : 'region'}.d.ts`), 'utf8');
        if (new RegExp(`(private|protected) (abstract )?(readonly )?(get )?${m}\\b`).test(dts)) continue;
        assert.match(page, new RegExp('`\\.' + m + '[(`]'), `${cls}.${m} is missing`);
      }
    }
    const serve = page.split('\n').find((l) => l.startsWith('| `.serve('));
    for (const key of ['readahead', 'removed', 'pageSize', 'record', 'prefetch', 'workingSet']) assert.match(serve, new RegExp(`\\b${key}\\?`));
    for (const name of ['PageSource.http(', 'PageSource.custom(', '.dirtyPages(', '.snapshot(', '.saveWorkingSet(', '.readSync(', '`readWorkingSet(']) {
      assert.ok(page.includes(name), `${name} is missing`);
    }
  });
});
