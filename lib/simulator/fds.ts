/** Fake file descriptor numbers for simulated uffds and memfds: the lowest free one from 1000. */
const FIRST = 1000;
const used = new Set<number>();

export function allocateFd(): number {
  let fd = FIRST;
  while (used.has(fd)) fd++;
  used.add(fd);
  return fd;
}

export function releaseFd(fd: number): void {
  used.delete(fd);
}
