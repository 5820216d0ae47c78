/**
 * Every open uffd of this thread, both backends, closed at exit: libuv joins its thread pool
 * at exit, and a pool thread waiting on a fault would hold the process forever. Held weakly:
 * a uffd dropped without close() is still collected (its native finalizer closes the fd).
 * Part of Userfaultfd's lifetime (core/userfaultfd.ts).
 */

/** A uffd, as the exit hook sees it. */
interface Closable {
  close(): void;
}

const openUffds = new Set<WeakRef<Closable>>();
const collected = new FinalizationRegistry<WeakRef<Closable>>((ref) => openUffds.delete(ref));
let exitHookInstalled = false;

export function closeAtExit(u: Closable): WeakRef<Closable> {
  const ref = new WeakRef(u);
  openUffds.add(ref);
  collected.register(u, ref, ref);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const r of [...openUffds]) r.deref()?.close();
    });
  }
  return ref;
}

export function forget(ref: WeakRef<Closable>): void {
  openUffds.delete(ref);
  collected.unregister(ref);
}

