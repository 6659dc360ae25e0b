declare module 'protomux' {
  export interface Message { send (data: unknown): boolean }
  export interface Channel {
    open (handshake?: unknown): void
    close (): void
    addMessage (opts: { encoding: unknown, onmessage?: (m: any) => void }): Message
    opened: boolean
    closed: boolean
  }
  class Protomux {
    static from (stream: unknown): Protomux
    static isProtomux (x: unknown): boolean
    createChannel (opts: { protocol: string, id?: Uint8Array, unique?: boolean, onopen?: () => void, onclose?: () => void }): Channel | null
    pair (opts: { protocol: string, id?: Uint8Array }, cb: () => void): void
    unpair (opts: { protocol: string, id?: Uint8Array }): void
  }
  export default Protomux
}
