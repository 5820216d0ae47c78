/**
 * The length framing of the fd-passing messages (lib/tools/fdpass.ts, and the shared image
 * handshake of lib/tools/image-client.ts): "\0UFD", the payload's length (u32, little-endian),
 * the payload. A peer hanging up mid-message is then seen as such.
 */
export const MAGIC = [0x00, 0x55, 0x46, 0x44]; // "\0UFD"
export const HEADER = 8;

/** The message carrying `body`. */
export function frame(body: Uint8Array): Buffer {
  const m = Buffer.alloc(HEADER + body.byteLength);
  m.set(MAGIC, 0);
  m.writeUInt32LE(body.byteLength, 4);
  m.set(body, HEADER);
  return m;
}
