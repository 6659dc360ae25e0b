declare module 'hyperswarm' {
  import { EventEmitter } from 'node:events'
  class Hyperswarm extends EventEmitter {
    constructor (opts?: object)
    join (topic: Uint8Array, opts?: { client?: boolean, server?: boolean }): { flushed (): Promise<void>, destroy (): Promise<void> }
    leave (topic: Uint8Array): Promise<void>
    flush (): Promise<void>
    destroy (): Promise<void>
    connections: Set<any>
  }
  export default Hyperswarm
}
