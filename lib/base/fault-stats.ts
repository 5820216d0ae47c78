/** Counters and a latency histogram, bucketed as native/uffd/fault_stats.h (8 sub-buckets per power of two). */
import type { Stats } from './types';

const SUB_BITS = 3;
const BUCKETS = (64 - SUB_BITS + 1) << SUB_BITS;

function log2(v: number): number {
  return Math.floor(Math.log2(v));
}

function bucket(v: number): number {
  if (v < 1 << SUB_BITS) return Math.max(0, Math.floor(v));
  const exp = log2(v);
  const sub = Math.floor(v / 2 ** (exp - SUB_BITS)) & ((1 << SUB_BITS) - 1);
  return ((exp - SUB_BITS + 1) << SUB_BITS) + sub;
}

function midpoint(b: number): number {
  if (b < 1 << SUB_BITS) return b;
  const exp = (b >> SUB_BITS) + SUB_BITS - 1;
  const sub = b & ((1 << SUB_BITS) - 1);
  const low = 2 ** exp + sub * 2 ** (exp - SUB_BITS);
  return low + Math.floor(2 ** (exp - SUB_BITS) / 2);
}

export class FaultStats {
  faults = 0;
  copies = 0;
  bytes = 0;
  wakeups = 0;
  prefetched = 0;
  demandFaults = 0;
  prefetchMisses = 0;
  private readonly histogram = new Float64Array(BUCKETS);

  countFault(): void {
    this.faults++;
  }
  countResolve(bytes: number): void {
    this.copies++;
    this.bytes += bytes;
  }
  countWake(): void {
    this.wakeups++;
  }
  recordLatency(ns: number): void {
    this.histogram[bucket(ns)]++;
  }

  /** The latency below which `fraction` of the recorded answers fall, in ns (0 when none). */
  percentile(fraction: number): number {
    let total = 0;
    for (const c of this.histogram) total += c;
    if (total === 0) return 0;
    const rank = Math.floor(fraction * (total - 1)) + 1;
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.histogram[i];
      if (seen >= rank) return midpoint(i);
    }
    return midpoint(BUCKETS - 1);
  }

  snapshot(): Stats {
    return {
      faults: this.faults, copies: this.copies, bytes: this.bytes, wakeups: this.wakeups,
      latencyNs: { p50: this.percentile(0.5), p99: this.percentile(0.99) },
      prefetched: this.prefetched, demandFaults: this.demandFaults, prefetchMisses: this.prefetchMisses,
    };
  }
}
