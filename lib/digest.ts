/**
 * The view digest: a homomorphic set hash. Each entry contributes sha256(len(key) ‖ key ‖ value),
 * read as a 256-bit number; the digest is their sum modulo 2^256. Adding or removing one entry is
 * one addition or subtraction, so the fold keeps the digest current without a scan, and two views
 * with the same entries always share it, whatever order the entries arrived in.
 */
import { hash } from 'node:crypto'

const MOD = 1n << 256n

export function entryDigest (key: Uint8Array, value: Uint8Array): bigint {
  const input = Buffer.allocUnsafe(4 + key.byteLength + value.byteLength)
  input.writeUInt32BE(key.byteLength, 0)
  input.set(key, 4)
  input.set(value, 4 + key.byteLength)
  return BigInt('0x' + hash('sha256', input, 'hex'))
}

/** The digest after replacing `before` with `after` for one key (either may be absent). */
export function replaceEntry (digest: bigint, key: Uint8Array, before: Uint8Array | null | undefined, after: Uint8Array | null | undefined): bigint {
  let d = digest
  if (before != null) d -= entryDigest(key, before)
  if (after != null) d += entryDigest(key, after)
  return ((d % MOD) + MOD) % MOD
}

export function digestToBuffer (d: bigint): Buffer {
  return Buffer.from(d.toString(16).padStart(64, '0'), 'hex')
}

export function digestFromBuffer (b: Uint8Array): bigint {
  return BigInt('0x' + Buffer.from(b).toString('hex'))
}
