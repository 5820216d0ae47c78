/**
 * CRIU's checkpoint images, read for a lazy restore: which tasks there are (pstree.img), which of
 * their memory areas the restorer left to userfaultfd (mm-PID.img), and where each lazy page's
 * bytes are (pagemap-PID.img, pages-N.img).
 *
 * An image file is a magic header (IMG_COMMON_MAGIC, then the image's own magic) and records,
 * each a 32-bit little-endian length and a protobuf message. The messages are decoded with
 * protobufjs from CRIU's own definitions (proto/criu/, CRIU 4.1.1, MIT): protobufjs loads .proto
 * files at run time with no generated code to keep in step, decodes proto2 (which CRIU uses)
 * with its defaults and 64-bit fields, and is the most used protobuf library for JavaScript
 * (gRPC's and Google Cloud's Node clients use it).
 *
 * pages-N.img is raw: the pages of every pagemap entry that has PE_PRESENT, in entry order.
 */
import * as fs from 'fs';
import * as path from 'path';
import type * as protobuf from 'protobufjs';
import { readRegularFile } from '../base/files';
import { PageSource, SparseRun } from '../sources/page-source';
import { CriuError } from './criu-errors';

const IMG_COMMON_MAGIC = 0x54564319;
/** pstree, mm and pagemap images: a few records per task or VMA, far below this. */
const MAX_METADATA_IMAGE = 64 * 1024 * 1024;
const MAGIC = { pstree: 0x50273030, mm: 0x57492820, pagemap: 0x56084025 } as const;

/** Pagemap entry flags (criu/include/pagemap.h). */
const PE_PARENT = 1 << 0;
const PE_LAZY = 1 << 1;
const PE_PRESENT = 1 << 2;

/** What makes a VMA lazy (criu/include/vma.h vma_entry_can_be_lazy; Linux x86-64 and arm64 values). */
const MAP_PRIVATE = 0x02;
const MAP_ANONYMOUS = 0x20;
const MAP_LOCKED = 0x2000;
const MAP_HUGETLB = 0x40000;
const VMA_AREA_REGULAR = 1 << 0;
const VMA_AREA_VSYSCALL = 1 << 2;
const VMA_AREA_VDSO = 1 << 3;
const VMA_AREA_VVAR = 1 << 12;

/** One memory area the restorer registered with the task's userfaultfd, and its lazy pages. */
export interface LazyArea {
  start: bigint;
  length: number;
  /** Where its pages' bytes are in the pages file; the rest of the area reads as zeros. */
  runs: SparseRun[];
  /** Pages with bytes (the sum of the runs). */
  pages: number;
}

export interface TaskImages {
  pid: number;
  /** N of pages-N.img. */
  pagesId: number;
  areas: LazyArea[];
  /** Pages the daemon has to serve (PE_LAZY entries). */
  lazyPages: number;
}

export interface CriuImages {
  /** By pid, every task of pstree.img with its images. */
  tasks: Map<number, TaskImages>;
  /** Each pages-N.img the tasks read, by N: where its bytes come from, and how many there are. */
  pages: Map<number, { source: PageSource; size: number }>;
}

/** Where the images are: a directory, and optionally URLs for the pages files. */
export interface ImageStore {
  /** For messages: the directory. */
  readonly label: string;
  /** The image's bytes; null when there is no such image. */
  read(name: string): Promise<Uint8Array | null>;
  /** The source of a pages file's bytes, and its size; null when there is no such file. */
  pages(name: string): Promise<{ source: PageSource; size: number } | null>;
}

/**
 * Images in `dir`; pages files from `pagesUrls` where one is given: by name
 * ('pages-1.img' -> URL), or a prefix (a URL ending in '/') the name is appended to.
 */
export function imageStore(dir: string, pagesUrls: string[] = []): ImageStore {
  const byName = new Map<string, string>();
  let prefix: string | null = null;
  for (const u of pagesUrls) {
    const eq = u.indexOf('=');
    if (eq > 0 && !u.slice(0, eq).includes('/')) byName.set(u.slice(0, eq), u.slice(eq + 1));
    else prefix = u.endsWith('/') ? u : `${u}/`;
  }
  const urlOf = (name: string): string | null => byName.get(name) ?? (prefix === null ? null : prefix + name);
  return {
    label: dir,
    async read(name) {
      try {
        // A regular file of bounded size (lib/base/files.ts): a FIFO or /dev/zero planted in the
        // image directory must not hang or bloat the daemon.
        return readRegularFile(path.join(dir, name), MAX_METADATA_IMAGE, (size) => new CriuError('ERR_CRIU_IMAGE_CORRUPT',
          `${path.join(dir, name)} is ${size} bytes: more than a metadata image can be (${MAX_METADATA_IMAGE})`));
      } catch (e) {
        if (e instanceof CriuError) throw e;
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw new CriuError('ERR_CRIU_IMAGE_MISSING', `${path.join(dir, name)} cannot be read: ${(e as Error).message}`);
      }
    },
    async pages(name) {
      const url = urlOf(name);
      if (url === null) {
        const file = path.join(dir, name);
        try {
          const st = await fs.promises.stat(file);
          if (!st.isFile()) throw new Error('not a regular file');
          // mmap: the fill copies straight from the page cache (one copy, not two: faster than
          // pread for bulk, bench/criu-restore.js), and sources over a mapping are thread-safe.
          return { source: PageSource.file(file, { mode: 'mmap' }), size: st.size };
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
          throw new CriuError('ERR_CRIU_IMAGE_MISSING', `${file} cannot be read: ${(e as Error).message}`);
        }
      }
      const source = PageSource.http(url);
      try {
        return { source, size: (await source.ready()).size };
      } catch (e) {
        throw new CriuError('ERR_CRIU_IMAGE_MISSING', `${name} cannot be read from its URL: ${(e as Error).message}`);
      }
    },
  };
}

let messages: { pstree: protobuf.Type; mm: protobuf.Type; head: protobuf.Type; entry: protobuf.Type } | null = null;

/** CRIU's message types, loaded once from proto/criu/ (shipped in the package). */
function types(): NonNullable<typeof messages> {
  if (messages !== null) return messages;
  const dir = protoDir();
  // Loaded here, on the first images read: the rest of the command line never needs it.
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on first use
  const pb = require('protobufjs') as typeof protobuf;
  const root = new pb.Root();
  // opts.proto imports google/protobuf/descriptor.proto: protobufjs ships it.
  const google = path.dirname(require.resolve('protobufjs/package.json'));
  root.resolvePath = (_origin, target) => path.join(target.startsWith('google/') ? google : dir, target);
  root.loadSync(['pstree.proto', 'mm.proto', 'pagemap.proto'], { keepCase: true });
  root.resolveAll();
  messages = {
    pstree: root.lookupType('pstree_entry'), mm: root.lookupType('mm_entry'),
    head: root.lookupType('pagemap_head'), entry: root.lookupType('pagemap_entry'),
  };
  return messages;
}

/** proto/criu, from dist/tools/ (the package) or lib/tools/ (ts-node, tests of the sources). */
function protoDir(): string {
  for (let d = __dirname, i = 0; i < 4; i++, d = path.dirname(d)) {
    const candidate = path.join(d, 'proto', 'criu');
    if (fs.existsSync(path.join(candidate, 'pagemap.proto'))) return candidate;
  }
  throw new CriuError('ERR_CRIU_IMAGE_CORRUPT', `CRIU's message definitions (proto/criu) are missing from ${__dirname}/..`);
}

/** The records of an image, checked against its magic. */
export function records(bytes: Uint8Array, magic: number, name: string): Uint8Array[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength < 8 || view.getUint32(0, true) !== IMG_COMMON_MAGIC || view.getUint32(4, true) !== magic) {
    throw new CriuError('ERR_CRIU_IMAGE_CORRUPT', `${name} is not a CRIU image of its kind (magic ` +
      `${bytes.byteLength < 8 ? 'missing' : `0x${view.getUint32(0, true).toString(16)} 0x${view.getUint32(4, true).toString(16)}`})`);
  }
  const out: Uint8Array[] = [];
  for (let o = 8; o < bytes.byteLength;) {
    if (o + 4 > bytes.byteLength) throw new CriuError('ERR_CRIU_IMAGE_CORRUPT', `${name}: a record's length is cut off at byte ${o}`);
    const n = view.getUint32(o, true);
    if (o + 4 + n > bytes.byteLength) {
      throw new CriuError('ERR_CRIU_IMAGE_CORRUPT', `${name}: the record at byte ${o} says ${n} bytes, past the end of the file`);
    }
    out.push(bytes.subarray(o + 4, o + 4 + n));
    o += 4 + n;
  }
  return out;
}

function decode<T>(type: protobuf.Type, record: Uint8Array, name: string): T {
  try {
    return type.toObject(type.decode(record), { longs: String, defaults: false }) as T;
  } catch (e) {
    throw new CriuError('ERR_CRIU_IMAGE_CORRUPT', `${name}: a record is not a ${type.name}: ${(e as Error).message}`);
  }
}

async function image(store: ImageStore, name: string): Promise<Uint8Array> {
  const bytes = await store.read(name);
  if (bytes === null) throw new CriuError('ERR_CRIU_IMAGE_MISSING', `${path.join(store.label, name)} is missing`);
  return bytes;
}

interface PstreeEntry { pid: number; ppid: number; threads?: number[] }
interface VmaEntry { start: string; end: string; flags: number; status: number }
interface PagemapEntry { vaddr: string; nr_pages: number; in_parent?: boolean; flags?: number }

/** A VMA the restorer registers with the task's userfaultfd (vma_entry_can_be_lazy). */
function isLazy(v: VmaEntry): boolean {
  const is = (bit: number): boolean => (v.status & bit) === bit;
  return (v.flags & MAP_ANONYMOUS) !== 0 && (v.flags & MAP_PRIVATE) !== 0 && (v.flags & MAP_LOCKED) === 0 &&
    (v.flags & MAP_HUGETLB) === 0 && is(VMA_AREA_REGULAR) && !is(VMA_AREA_VDSO) && !is(VMA_AREA_VVAR) &&
    !is(VMA_AREA_VSYSCALL);
}

/** Every task's lazy areas, checked against its pages file. Nothing is served yet. */
export async function loadImages(store: ImageStore, pageSize: number): Promise<CriuImages> {
  const T = types();
  const pstree = records(await image(store, 'pstree.img'), MAGIC.pstree, 'pstree.img')
    .map((r) => decode<PstreeEntry>(T.pstree, r, 'pstree.img'));
  if (pstree.length === 0) throw new CriuError('ERR_CRIU_IMAGE_CORRUPT', 'pstree.img lists no task');
  const tasks = new Map<number, TaskImages>();
  const pagesFiles = new Map<number, { source: PageSource; size: number }>();
  for (const p of pstree) {
    const task = await loadTask(store, T, p.pid, pageSize);
    tasks.set(p.pid, task);
    if (!pagesFiles.has(task.pagesId)) {
      const name = `pages-${task.pagesId}.img`;
      const pages = await store.pages(name);
      if (pages === null) throw new CriuError('ERR_CRIU_IMAGE_MISSING', `${path.join(store.label, name)} is missing`);
      pagesFiles.set(task.pagesId, pages);
    }
    const need = task.areas.reduce((end, a) => a.runs.reduce((e, r) => Math.max(e, r.sourceOffset + r.length), end), 0);
    const size = pagesFiles.get(task.pagesId)!.size;
    if (need > size) {
      throw new CriuError('ERR_CRIU_IMAGE_CORRUPT', `pages-${task.pagesId}.img has ${size} bytes; ` +
        `pagemap-${p.pid}.img places lazy pages up to byte ${need}`);
    }
  }
  return { tasks, pages: pagesFiles };
}

async function loadTask(store: ImageStore, T: NonNullable<typeof messages>, pid: number, pageSize: number): Promise<TaskImages> {
  const mmName = `mm-${pid}.img`;
  const mmRecords = records(await image(store, mmName), MAGIC.mm, mmName);
  if (mmRecords.length !== 1) throw new CriuError('ERR_CRIU_IMAGE_CORRUPT', `${mmName} holds ${mmRecords.length} records, not one`);
  const mm = decode<{ vmas?: VmaEntry[] }>(T.mm, mmRecords[0], mmName);
  const vmas = (mm.vmas ?? []).filter(isLazy).map((v) => ({ start: BigInt(v.start), end: BigInt(v.end) }));
  const pmName = `pagemap-${pid}.img`;
  const pm = records(await image(store, pmName), MAGIC.pagemap, pmName);
  if (pm.length === 0) throw new CriuError('ERR_CRIU_IMAGE_CORRUPT', `${pmName} has no head record`);
  const head = decode<{ pages_id?: number }>(T.head, pm[0], pmName);
  if (head.pages_id === undefined) throw new CriuError('ERR_CRIU_IMAGE_CORRUPT', `${pmName}: its head has no pages_id`);
  const areas: LazyArea[] = vmas.map((v) => ({ start: v.start, length: Number(v.end - v.start), runs: [], pages: 0 }));
  let fileOffset = 0;
  let lazyPages = 0;
  let prevEnd = 0n;
  for (const rec of pm.slice(1)) {
    const e = decode<PagemapEntry>(T.entry, rec, pmName);
    // Images of CRIU before flags: a hole in the parent's image, or present pages.
    const flags = e.flags ?? (e.in_parent ? PE_PARENT : PE_PRESENT);
    const vaddr = BigInt(e.vaddr);
    const bytes = e.nr_pages * pageSize;
    if (vaddr % BigInt(pageSize) !== 0n || e.nr_pages === 0 || vaddr < prevEnd) {
      throw new CriuError('ERR_CRIU_IMAGE_CORRUPT', `${pmName}: entry at 0x${vaddr.toString(16)} (${e.nr_pages} pages) ` +
        'is not page aligned, empty, or out of order');
    }
    prevEnd = vaddr + BigInt(bytes);
    if ((flags & PE_LAZY) !== 0) {
      if ((flags & PE_PARENT) !== 0 || (flags & PE_PRESENT) === 0) {
        throw new CriuError('ERR_CRIU_UNSUPPORTED', `${pmName}: lazy pages at 0x${vaddr.toString(16)} are in a parent image ` +
          '(a pre-dump or incremental dump): not supported');
      }
      placeRun(areas, vaddr, bytes, fileOffset, pmName);
      lazyPages += e.nr_pages;
    }
    if ((flags & PE_PRESENT) !== 0) fileOffset += bytes;
  }
  for (const a of areas) a.pages = a.runs.reduce((n, r) => n + r.length / pageSize, 0);
  return { pid, pagesId: head.pages_id, areas, lazyPages };
}

/** A lazy entry's pages into the areas that hold them (CRIU splits an entry at VMA boundaries too). */
function placeRun(areas: LazyArea[], vaddr: bigint, bytes: number, fileOffset: number, name: string): void {
  let at = vaddr;
  const end = vaddr + BigInt(bytes);
  while (at < end) {
    const a = areas.find((x) => at >= x.start && at < x.start + BigInt(x.length));
    if (a === undefined) {
      throw new CriuError('ERR_CRIU_IMAGE_CORRUPT', `${name}: lazy pages at 0x${at.toString(16)} are outside every lazy VMA of the task`);
    }
    const aEnd = a.start + BigInt(a.length);
    const n = Number((end < aEnd ? end : aEnd) - at);
    const run = { offset: Number(at - a.start), length: n, sourceOffset: fileOffset + Number(at - vaddr) };
    const last = a.runs[a.runs.length - 1];
    // CRIU writes an entry per 1 MiB or so: one run for pages that follow each other in both.
    if (last && last.offset + last.length === run.offset && last.sourceOffset + last.length === run.sourceOffset) last.length += n;
    else a.runs.push(run);
    at += BigInt(n);
  }
}
