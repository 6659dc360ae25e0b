/** The parts of sodium-universal meshbee uses (libsodium's API, in-place outputs first). */
declare module 'sodium-universal' {
  const sodium: {
    crypto_stream_KEYBYTES: number
    crypto_stream_NONCEBYTES: number
    crypto_box_PUBLICKEYBYTES: number
    crypto_box_SECRETKEYBYTES: number
    crypto_box_SEALBYTES: number
    crypto_generichash: (out: Uint8Array, input: Uint8Array, key?: Uint8Array) => void
    crypto_stream_xor: (out: Uint8Array, input: Uint8Array, nonce: Uint8Array, key: Uint8Array) => void
    crypto_sign_ed25519_pk_to_curve25519: (out: Uint8Array, pk: Uint8Array) => void
    crypto_sign_ed25519_sk_to_curve25519: (out: Uint8Array, sk: Uint8Array) => void
    crypto_box_seal: (out: Uint8Array, message: Uint8Array, pk: Uint8Array) => void
    crypto_box_seal_open: (out: Uint8Array, sealed: Uint8Array, pk: Uint8Array, sk: Uint8Array) => boolean
    randombytes_buf: (out: Uint8Array) => void
    sodium_memzero: (b: Uint8Array) => void
  }
  export default sodium
}
