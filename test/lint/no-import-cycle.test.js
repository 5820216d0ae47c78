// The lint rule that keeps lib/ free of import circles: it flags a file on a circle, type
// imports and module augmentations included, and passes a tree whose imports only go down.
const fs = require('fs');
const os = require('os');
const path = require('path');
const { RuleTester } = require('eslint');
const tseslint = require('typescript-eslint');
const rule = require('../../scripts/lint/no-import-cycle');

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'uffd-cycle-'));
const files = {
  // A circle of type imports only (the shape issue 30 removed from lib/core/).
  'a.ts': "import type { B } from './b';\nexport interface A { b: B }\n",
  'b.ts': "import type { A } from './a';\nexport interface B { a: A }\n",
  // A circle closed by a module augmentation.
  'c.ts': "import type { E } from './e';\nexport class C { e?: E }\n",
  'e.ts': "export interface E { n: number }\ndeclare module './c' { interface C { x: number } }\n",
  // Three files in a line, and one importing down into the folder: no circle.
  'top.ts': "import { mid } from './base/mid';\nexport const top = mid;\n",
  'base/mid.ts': "import { low } from './low';\nexport const mid = low;\n",
  'base/low.ts': "import * as fs from 'fs';\nexport const low = fs.constants;\n",
  // A longer circle through a folder's index.
  'x.ts': "export { y } from './sub';\n",
  'sub/index.ts': "import { z } from '../z';\nexport const y = z;\n",
  'z.ts': "import { y } from './x';\nexport const z = 1; void y;\n",
};
for (const [name, text] of Object.entries(files)) {
  fs.mkdirSync(path.dirname(path.join(root, name)), { recursive: true });
  fs.writeFileSync(path.join(root, name), text);
}
after(() => fs.rmSync(root, { recursive: true, force: true }));

const tester = new RuleTester({ languageOptions: { parser: tseslint.parser, sourceType: 'module' } });
const at = (name) => ({ filename: path.join(root, name), code: files[name], options: [{ root }] });
const circle = (...names) => [{ messageId: 'circle', data: { circle: names.map((n) => path.relative(process.cwd(), path.join(root, n))).join(' -> ') } }];

tester.run('no-import-cycle', rule, {
  valid: [at('top.ts'), at('base/mid.ts'), at('base/low.ts'),
    // A file outside the folder checked is not looked at.
    { filename: path.join(os.tmpdir(), 'elsewhere.ts'), code: "import './elsewhere';\n", options: [{ root }] }],
  invalid: [
    { ...at('a.ts'), errors: circle('a.ts', 'b.ts', 'a.ts') },
    { ...at('b.ts'), errors: circle('b.ts', 'a.ts', 'b.ts') },
    { ...at('e.ts'), errors: circle('e.ts', 'c.ts', 'e.ts') },
    { ...at('z.ts'), errors: circle('z.ts', 'x.ts', 'sub/index.ts', 'z.ts') },
    // The text being linted counts, not the file on disk: an import added in the editor.
    { filename: path.join(root, 'base/low.ts'), code: "import { top } from '../top';\nexport const low = top;\n",
      options: [{ root }], errors: circle('base/low.ts', 'top.ts', 'base/mid.ts', 'base/low.ts') },
  ],
});
