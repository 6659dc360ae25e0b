declare module 'hypercore' {
  import { EventEmitter } from 'node:events'
  interface Download { done (): Promise<void>, destroy (): void }
  class Hypercore extends EventEmitter {
    static getProtocolMuxer (stream: unknown): any
    key: Buffer
    discoveryKey: Buffer
    length: number
    contiguousLength: number
    writable: boolean
    opened: boolean
    closed: boolean
    closing: Promise<void> | null
    ready (): Promise<void>
    close (): Promise<void>
    append (blocks: Uint8Array | Uint8Array[]): Promise<{ length: number }>
    /** Small values kept in the core's own storage beside its blocks (not replicated). */
    setUserData (key: string, value: Uint8Array | null): Promise<void>
    /** Clears stored blocks [start, end) (the Merkle tree stays); with diff, how many were held. */
    clear (start: number, end?: number, opts?: { diff?: boolean }): Promise<{ blocks: number } | null>
    getUserData (key: string): Promise<Buffer | null>
    get (index: number, opts?: { wait?: boolean, timeout?: number }): Promise<Buffer | null>
    has (start: number, end?: number): Promise<boolean>
    update (opts?: { wait?: boolean }): Promise<boolean>
    download (range?: { start?: number, end?: number, linear?: boolean }): Download
    session (opts?: object): Hypercore
    snapshot (opts?: object): Hypercore
    truncate (length: number): Promise<void>
  }
  export default Hypercore
}
