#!/usr/bin/env node
// Reads the sanitizer logs of scripts/sanitize.sh (one file per process) and sorts each report:
// the addon's own, or Node's/V8's. Node is not instrumented, so a report can come from it only
// through an intercepted call (malloc, strcmp, pthread_*) made by node itself, with our frames
// at most further down the stack (a V8 call made inside our callback). A report is the addon's
// when, in one of its stacks, the first frame outside the sanitizer runtime and the C/C++
// runtimes (libc, libstdc++, libgcc, ld.so) lies in userfaultfd.node. Prints a summary;
// exits 1 when the addon has a report.
// A data race on a file descriptor whose creation stack (TSan's "Location is file descriptor N
// created by ...") holds a function listed in tsan.supp is counted as that suppression's: TSan
// matches suppressions against the two accesses only, and the earlier access of such a race is
// the libuv call that made the fd (its close, a raw system call, is never seen), often too old
// for TSan to restore its stack.
//   node scripts/sanitize-report.js <log dir>
'use strict';
const fs = require('fs');
const path = require('path');

const dir = process.argv[2];
const RUNTIME = /\((?:lib[at]san|libc|libstdc\+\+|libgcc_s|ld-linux[^ ]*)\.so[^)]*\)|\(<unknown module>\)/;

/** Splits a log into reports: each from a WARNING/ERROR line to the next separator or SUMMARY. */
function reports(text) {
  const out = [];
  let cur = null;
  for (const line of text.split('\n')) {
    if (/^(WARNING: ThreadSanitizer|==\d+==ERROR: )/.test(line)) { cur = [line]; out.push(cur); continue; }
    if (cur) cur.push(line);
    if (cur && /^SUMMARY: /.test(line)) cur = null;
  }
  return out;
}

/** The stacks of a report: runs of "#N" frame lines. */
function stacks(lines) {
  const out = [];
  let cur = null;
  for (const l of lines) {
    if (/^\s+#\d+ /.test(l)) {
      if (!cur) { cur = []; out.push(cur); }
      cur.push(l);
    } else cur = null;
  }
  return out;
}

const FD_MAKERS = fs.readFileSync(path.join(__dirname, 'sanitize-suppressions', 'tsan.supp'), 'utf8')
  .split('\n').map((l) => l.match(/^race:(\S+)$/)).filter(Boolean).map((m) => m[1]);

/** A race on an fd number that libuv made and closed unseen, reused by the kernel for ours. */
function reusedFd(lines) {
  const at = lines.findIndex((l) => /^\s+Location is file descriptor \d+ created by/.test(l));
  if (at < 0) return false;
  const made = stacks(lines.slice(at + 1))[0] || [];
  return made.some((f) => FD_MAKERS.some((fn) => f.includes(` ${fn} `)));
}

// The system calls that hand out a new fd number (TSan's interceptors of them write the fd's
// entry in its table).
const FD_CREATE = /^\s+#0 (?:eventfd|epoll_create1?|memfd_create|userfaultfd|socket|socketpair|open|open64|openat|openat64|pipe2?|dup[23]?|accept4?|signalfd|timerfd_create|inotify_init1?) /;

/**
 * A data race whose access is the creation of an fd: the kernel hands out only a free number, so
 * the earlier access was to the same number before an unseen close (libuv's raw close(2)), the
 * case above with the fd's old creation too old for TSan to name ("failed to restore the stack").
 */
function createdFd(lines) {
  if (!/^WARNING: ThreadSanitizer: data race/.test(lines[0])) return false;
  const first = stacks(lines)[0] || [];
  return first.length > 0 && FD_CREATE.test(first[0]);
}

function ours(lines) {
  return stacks(lines).some((s) => {
    const first = s.find((f) => !RUNTIME.test(f));
    return first !== undefined && /userfaultfd\.node|\/native\//.test(first);
  });
}

const files = fs.existsSync(dir) ? fs.readdirSync(dir).map((f) => path.join(dir, f)) : [];
const counts = { ours: 0, node: 0, fds: 0 };
const kinds = new Map();
for (const f of files) {
  for (const r of reports(fs.readFileSync(f, 'utf8'))) {
    const summary = (r.find((l) => l.startsWith('SUMMARY: ')) || r[0]).replace(/\(\/[^)]*\+0x[0-9a-f]+\)/, '');
    if (reusedFd(r) || createdFd(r)) {
      counts.fds++;
    } else if (ours(r)) {
      counts.ours++;
      console.log(`\n--- the addon's report (${path.basename(f)}):\n${r.join('\n')}`);
    } else {
      counts.node++;
      kinds.set(summary, (kinds.get(summary) || 0) + 1);
    }
  }
}
for (const [k, n] of kinds) console.log(`node/V8's own (not counted): ${n} x ${k}`);
console.log(`sanitizer logs: ${files.length} files; the addon's reports: ${counts.ours}; node/V8's own: ${counts.node}; ` +
  `reused fd numbers (tsan.supp, or a race on an fd's creation): ${counts.fds}`);
process.exitCode = counts.ours > 0 ? 1 : 0;
