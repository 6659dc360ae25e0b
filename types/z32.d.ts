declare module 'z32' {
  /** z-base32 text of the bytes. */
  export function encode (buf: Uint8Array | string): string
  /** The bytes of z-base32 text; throws on a character outside the alphabet. */
  export function decode (s: string): Buffer
  export const ALPHABET: string
}
