import { invalidArgument } from './errors.js'

/** The bytes as a Buffer, without copying. */
export const buf = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength)

/** The bytes in hex. */
export const hex = (b: Uint8Array): string => buf(b).toString('hex')

/** A 32-byte key given as bytes or 64 hex characters, as a Buffer. */
export function toKey (key: Uint8Array | string, name: string): Buffer {
  if (typeof key === 'string') {
    if (!/^[0-9a-f]{64}$/i.test(key)) throw invalidArgument(`${name} must be 32 bytes or 64 hex characters`)
    return Buffer.from(key, 'hex')
  }
  if (!(key instanceof Uint8Array) || key.byteLength !== 32) throw invalidArgument(`${name} must be 32 bytes or 64 hex characters`)
  return Buffer.from(key)
}
