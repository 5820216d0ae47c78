// ESLint rule (registered in eslint.config.js for test/**): a test file never decides from probe
// data whether a test runs. describeNative (with { features }), requireFeature, requireLacking
// and requirePrivileged in test/helpers.js make that choice, and print why a test did not run.
// Reading probe data is fine otherwise: asserting what probe() returns, choosing an expected value.
'use strict';

/** The helpers' probe results, under the names test/helpers.js exports them. */
const PROBE_NAMES = new Set(['nativeProbe', 'simulatorProbe']);
/** Calls that register tests: made in one branch of a probe test, they run or skip on it. */
const REGISTER = new Set(['it', 'specify', 'describe', 'context', 'describeBackends', 'describeNative', 'xit', 'xdescribe']);
/** Functions whose callback is mocha's: an early return there skips what follows, silently. */
const MOCHA = new Set([...REGISTER, 'before', 'beforeEach', 'after', 'afterEach']);

/** True for `probe(…)`, `x.probe(…)`, a probe name, a name bound to one, and member chains on them. */
function isProbeValue(node, bound) {
  for (;;) {
    if (node.type === 'ChainExpression') node = node.expression;
    else if (node.type === 'MemberExpression') node = node.object;
    else if (node.type === 'CallExpression') {
      const c = node.callee;
      if ((c.type === 'Identifier' && c.name === 'probe') || (c.type === 'MemberExpression' && !c.computed && c.property.name === 'probe')) return true;
      node = c;
    } else return node.type === 'Identifier' && (PROBE_NAMES.has(node.name) || bound.has(node.name));
  }
}

/** Every node under `node` (itself included), nested functions too. */
function* walk(node, keys) {
  yield node;
  for (const key of keys[node.type] || []) {
    const child = node[key];
    for (const c of Array.isArray(child) ? child : [child]) {
      if (c && typeof c.type === 'string') yield* walk(c, keys);
    }
  }
}

const some = (node, keys, test) => {
  for (const n of walk(node, keys)) if (test(n)) return true;
  return false;
};

const calleeName = (call) => (call.callee.type === 'Identifier' ? call.callee.name : null);

/** A skip (skipWithReason, this.skip(), it.skip, describe.skip) or a test registered. */
function isSkipOrRegister(n) {
  if (n.type === 'MemberExpression' && !n.computed && n.property.name === 'skip') return true;
  if (n.type === 'Identifier' && (n.name === 'skipWithReason' || n.name === 'xit' || n.name === 'xdescribe')) return true;
  return n.type === 'CallExpression' && REGISTER.has(calleeName(n));
}

/** True when `node` is directly in a function that mocha calls (a describe body, a hook, a test). */
function inMochaCallback(node) {
  for (let p = node.parent; p; p = p.parent) {
    if (p.type === 'FunctionExpression' || p.type === 'ArrowFunctionExpression') {
      return p.parent.type === 'CallExpression' && MOCHA.has(calleeName(p.parent));
    }
    if (p.type === 'FunctionDeclaration') return false;
  }
  return false;
}

module.exports = {
  meta: {
    type: 'problem',
    docs: { description: 'test files gate on the kernel only through the helpers in test/helpers.js' },
    schema: [],
    messages: {
      gate: 'decides from probe data whether to run: use describeNative(title, { features }, body), requireFeature, requireLacking or requirePrivileged from test/helpers.js (they print why)',
    },
  },
  create(context) {
    const keys = context.sourceCode.visitorKeys;
    const bound = new Set(); // names bound to a probe value: `const p = probe(…)`
    const branches = []; // [condition, [branches]] seen, checked once every binding is known
    const readsProbe = (node) => some(node, keys, (n) => isProbeValue(n, bound));
    const acts = (node) => some(node, keys, isSkipOrRegister) ||
      some(node, keys, (n) => n.type === 'ReturnStatement' && inMochaCallback(n));
    return {
      VariableDeclarator(node) {
        if (!node.init || !isProbeValue(node.init, bound)) return;
        for (const n of walk(node.id, keys)) if (n.type === 'Identifier') bound.add(n.name);
      },
      IfStatement(node) { branches.push([node, node.test, [node.consequent, node.alternate]]); },
      ConditionalExpression(node) { branches.push([node, node.test, [node.consequent, node.alternate]]); },
      LogicalExpression(node) { branches.push([node, node.left, [node.right]]); },
      'Program:exit'() {
        for (const [node, condition, arms] of branches) {
          if (readsProbe(condition) && arms.some((a) => a && acts(a))) context.report({ node, messageId: 'gate' });
        }
      },
    };
  },
};
