declare module 'hyperbee' {
  import type Hypercore from 'hypercore'
  import type { Readable } from 'node:stream'
  export interface BeeNode { seq: number, key: Buffer, value: Buffer }
  export interface DiffNode { left: BeeNode | null, right: BeeNode | null }
  export interface Range { gt?: Uint8Array, gte?: Uint8Array, lt?: Uint8Array, lte?: Uint8Array, limit?: number, reverse?: boolean }
  export interface BeeBatch {
    put (key: Uint8Array, value: Uint8Array): Promise<void>
    del (key: Uint8Array): Promise<void>
    flush (): Promise<void>
    close (): Promise<void>
  }
  class Hyperbee {
    constructor (core: Hypercore, opts?: { keyEncoding?: string, valueEncoding?: string, checkout?: number, extension?: boolean })
    core: Hypercore
    version: number
    ready (): Promise<void>
    close (): Promise<void>
    get (key: Uint8Array, opts?: { wait?: boolean }): Promise<BeeNode | null>
    getBySeq (seq: number, opts?: { wait?: boolean }): Promise<{ key: Buffer, value: Buffer } | null>
    put (key: Uint8Array, value: Uint8Array): Promise<void>
    del (key: Uint8Array): Promise<void>
    batch (opts?: object): BeeBatch
    checkout (version: number, opts?: { reuseSession?: boolean }): Hyperbee
    snapshot (): Hyperbee
    createReadStream (range?: Range, opts?: object): Readable & AsyncIterable<BeeNode>
    createDiffStream (right: number | Hyperbee, range?: Range, opts?: object): Readable & AsyncIterable<DiffNode>
    createHistoryStream (opts?: object): Readable & AsyncIterable<BeeNode & { type: 'put' | 'del' }>
  }
  export default Hyperbee
}
