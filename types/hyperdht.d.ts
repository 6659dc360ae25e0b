declare module 'hyperdht' {
  import { EventEmitter } from 'node:events'
  class HyperDHT extends EventEmitter {
    constructor (opts?: { bootstrap?: Array<string | { host: string, port: number }>, firewalled?: boolean, ephemeral?: boolean, host?: string, port?: number })
    destroyed: boolean
    ready (): Promise<void>
    fullyBootstrapped (): Promise<void>
    destroy (): Promise<void>
    address (): { host: string, port: number }
  }
  export default HyperDHT
}
declare module 'hyperdht/testnet.js' {
  import type HyperDHT from 'hyperdht'
  interface Testnet {
    nodes: HyperDHT[]
    bootstrap: Array<{ host: string, port: number }>
    createNode (opts?: object): HyperDHT
    destroy (): Promise<void>
  }
  export default function createTestnet (size?: number, opts?: object): Promise<Testnet>
}
