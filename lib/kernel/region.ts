/** Region over real mapped memory (native/memory/region.cc). */
import { constants as bufferConstants } from 'buffer';
import { binding, NativeRegion } from '../base/native';
import { Region } from '../core/region';
import type { MapOptions, Protection } from '../base/types';

const PROT = { none: 0, read: 1, readwrite: 3 } as const;

export class KernelRegion extends Region {
  readonly backend = 'native' as const;
  readonly address: bigint;
  readonly length: number;
  private readonly handle: NativeRegion;
  private isUnmapped = false;

  static create(length: number, options: MapOptions): KernelRegion {
    return new KernelRegion(new binding!.Region(length, options.shared === true, options.hugetlb === true), options);
  }

  private constructor(handle: NativeRegion, options: MapOptions) {
    super(options);
    this.handle = handle;
    this.address = handle.address;
    this.length = handle.length;
  }

  get fd(): number {
    return this.isUnmapped ? -1 : this.handle.fd;
  }
  get unmapped(): boolean {
    return this.isUnmapped;
  }
  get buffer(): ArrayBuffer {
    // Node makes no external ArrayBuffer past buffer.constants.MAX_LENGTH (4 GiB on Node 20):
    // the region itself works at any size through read, write and serve.
    if (!this.isUnmapped && this.length > bufferConstants.MAX_LENGTH) throw bufferTooLarge(this.length);
    return this.noteBuffer(this.handle.buffer);
  }

  protected _read(offset: number, length: number): Promise<Buffer> {
    return this.handle.read(offset, length);
  }
  protected _write(offset: number, data: Uint8Array): Promise<void> {
    return this.handle.write(offset, data);
  }
  protected _dontneed(offset: number, length: number): void {
    this.handle.dontneed(offset, length);
  }
  protected _protect(offset: number, length: number, protection: Protection): void {
    this.handle.protect(offset, length, PROT[protection]);
  }
  protected _alias(): Region {
    const h = new binding!.Region(this.length, true, this.hugetlb, this.handle.fd);
    return new KernelRegion(h, { shared: true, hugetlb: this.hugetlb });
  }
  protected _residentPages(): number {
    return this.handle.residentPages();
  }
  protected _unmap(): void {
    this.isUnmapped = true;
    this.handle.unmap();
  }
}

function bufferTooLarge(length: number): RangeError {
  const limit = bufferConstants.MAX_LENGTH;
  const e = new RangeError(`region.buffer: a region of ${length} bytes is larger than the largest ArrayBuffer ` +
    `this Node.js makes (buffer.constants.MAX_LENGTH = ${limit} bytes); use region.read, region.write or serve()`);
  return Object.assign(e, { code: 'ERR_BUFFER_TOO_LARGE', limit });
}
