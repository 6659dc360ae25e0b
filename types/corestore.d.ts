declare module 'corestore' {
  import type Hypercore from 'hypercore'
  import { EventEmitter } from 'node:events'
  import type { Duplex } from 'node:stream'
  class Corestore extends EventEmitter {
    constructor (storage: string, opts?: object)
    opened: boolean
    closed: boolean
    ready (): Promise<void>
    close (): Promise<void>
    get (opts: { key?: Uint8Array, name?: string, exclusive?: boolean, valueEncoding?: string } | Uint8Array): Hypercore
    session (opts?: object): Corestore
    namespace (name: string): Corestore
    replicate (isInitiatorOrStream: boolean | Duplex | object, opts?: object): Duplex
  }
  export default Corestore
}
