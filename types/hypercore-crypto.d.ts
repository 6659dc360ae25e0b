declare module 'hypercore-crypto' {
  export function keyPair (seed?: Uint8Array): { publicKey: Buffer, secretKey: Buffer }
  export function sign (message: Uint8Array, secretKey: Uint8Array): Buffer
  export function verify (message: Uint8Array, signature: Uint8Array, publicKey: Uint8Array): boolean
  export function hash (data: Uint8Array | Uint8Array[], out?: Uint8Array): Buffer
  export function discoveryKey (key: Uint8Array): Buffer
  export function randomBytes (n: number): Buffer
  export function namespace (name: string | Uint8Array, count: number): Buffer[]
}
