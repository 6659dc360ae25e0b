/**
 * The view digest: a homomorphic set hash. Each values row contributes sha256(len(key) ‖ key ‖ row),
 * and each item of a document or set one more term (see `partDigest`),
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

/**
 * The digest with one part's item added (`sign` 1) or removed (-1). An item contributes
 * sha256(len(part) ‖ part ‖ 0x03 ‖ item): a values row starts with its kind byte (0, 1 or 2), so
 * no item's input is ever a row's.
 */
export function partDigest (digest: bigint, part: Uint8Array, item: Uint8Array, sign: 1 | -1): bigint {
  const d = digest + BigInt(sign) * entryDigest(part, Buffer.concat([Buffer.from([3]), item]))
  return ((d % MOD) + MOD) % MOD
}

export function digestToBuffer (d: bigint): Buffer {
  return Buffer.from(d.toString(16).padStart(64, '0'), 'hex')
}

export function digestFromBuffer (b: Uint8Array): bigint {
  return BigInt('0x' + Buffer.from(b).toString('hex'))
}
