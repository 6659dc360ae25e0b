/**
 * The parent side of the multi-process sync test: starts peers as child processes
 * (test/fixtures/sync-peer.ts, `--import tsx`, IPC), sends them commands, and waits on conditions
 * that are re-checked whenever a child reports an event (never a fixed sleep).
 */
import { fork, type ChildProcess } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { fileURLToPath } from 'node:url'
import { untilEvents } from './peers.js'
import type { ChildMessage, CloseReport, Command, Dump, OpenResult, PeerEvent, Reply, WriteOp } from './sync-protocol.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const CHILD = fileURLToPath(new URL('../fixtures/sync-peer.ts', import.meta.url))

const live = new Set<PeerProcess>()

/** One peer in its own process. Emits 'event' (a {@link PeerEvent}) and 'exit' (code). */
export class PeerProcess extends EventEmitter {
  readonly child: ChildProcess
  /** The child's stderr, for failure messages. */
  stderr = ''
  exitCode: number | null = null
  exitSignal: NodeJS.Signals | null = null
  /** Resolves with the exit code (null if killed by a signal) once the process is gone. */
  readonly exited: Promise<number | null>
  key = ''
  writerKey = ''
  /** The directory of the last open. */
  dir = ''
  private nextId = 1
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void, reject: (e: Error) => void, cmd: string }>()

  constructor (readonly name: string, bootstrap: Array<{ host: string, port: number }>) {
    super()
    this.child = fork(CHILD, [JSON.stringify(bootstrap)], {
      cwd: ROOT,
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'pipe', 'ipc']
    })
    live.add(this)
    this.child.stderr?.setEncoding('utf8')
    this.child.stderr?.on('data', (d: string) => { this.stderr += d })
    this.child.on('message', (m: ChildMessage) => {
      if ('event' in m) {
        this.emit('event', m)
        return
      }
      const w = this.waiting.get(m.id)
      if (w === undefined) return
      this.waiting.delete(m.id)
      if (m.ok) w.resolve(m.result)
      else w.reject(new Error(`${this.name}: ${w.cmd} failed: ${(m as Extract<Reply, { ok: false }>).error}`))
    })
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exitCode = code
        this.exitSignal = signal
        live.delete(this)
        for (const w of this.waiting.values()) w.reject(new Error(`${this.name} exited (${code ?? signal ?? '?'}) during ${w.cmd}; stderr:\n${this.stderr}`))
        this.waiting.clear()
        resolve(code)
        this.emit('exit', code)
      })
    })
  }

  get running (): boolean {
    return this.exitCode === null && this.exitSignal === null
  }

  request<T> (cmd: Command): Promise<T> {
    if (!this.running) return Promise.reject(new Error(`${this.name} is not running`))
    const id = this.nextId++
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject, cmd: cmd.cmd })
      this.child.send({ ...cmd, id })
    })
  }

  async open (dir: string, key?: string): Promise<OpenResult> {
    const r = await this.request<OpenResult>({ cmd: 'open', dir, key })
    this.dir = dir
    this.key = r.key
    this.writerKey = r.writerKey
    return r
  }

  async join (own = false): Promise<void> { await this.request({ cmd: 'join', own }) }
  async leave (): Promise<number> { return await this.request<number>({ cmd: 'leave' }) }
  async drop (): Promise<number> { return await this.request<number>({ cmd: 'drop' }) }
  async requestJoin (): Promise<number> { return await this.request<number>({ cmd: 'requestJoin' }) }
  async autoAdd (): Promise<void> { await this.request({ cmd: 'autoAdd' }) }
  async addWriter (key: string): Promise<void> { await this.request({ cmd: 'addWriter', key }) }
  async write (ops: WriteOp[]): Promise<void> { await this.request({ cmd: 'write', ops }) }
  async get (key: string): Promise<string | null> { return await this.request<string | null>({ cmd: 'get', key }) }
  async dump (): Promise<Dump> { return await this.request<Dump>({ cmd: 'dump' }) }

  /** Closes the database and waits for the process to end by itself: its report and exit code. */
  async close (): Promise<{ report: CloseReport, code: number | null }> {
    const report = await this.request<CloseReport>({ cmd: 'close' })
    const code = await this.exited
    return { report, code }
  }

  kill (): void {
    if (this.running) this.child.kill('SIGKILL')
  }
}

/** Kills every child still running and waits until they are gone. */
export async function killAll (): Promise<void> {
  const all = [...live]
  for (const p of all) p.kill()
  await Promise.all(all.map(async (p) => await p.exited))
}

/**
 * Resolves once `check` holds. It is re-checked after every event any of `procs` reports (db
 * 'update', peer and writer changes), and at least every 250 ms as a fallback for conditions no
 * event announces. Rejects with `describe()` after `timeout` ms.
 */
export async function untilProcs (procs: PeerProcess[], check: () => Promise<boolean> | boolean, describe: () => Promise<string> | string = () => 'condition not met', timeout = 20_000): Promise<void> {
  await untilEvents(procs, ['event', 'exit'], check, describe, timeout)
}

/** Waits for the next event of kind `kind` from `p` (e.g. 'join-request'). */
export async function nextEvent (p: PeerProcess, kind: PeerEvent['event']): Promise<PeerEvent> {
  return await new Promise((resolve) => {
    const on = (e: PeerEvent): void => {
      if (e.event !== kind) return
      p.off('event', on)
      resolve(e)
    }
    p.on('event', on)
  })
}

/** Byte-identical views: the same entries in the same order, and the same digest. */
export function sameView (a: Dump, b: Dump): boolean {
  return a.hash === b.hash && a.entries.length === b.entries.length &&
    a.entries.every(([k, v], i) => k === b.entries[i][0] && v === b.entries[i][1])
}

/** Dumps every peer; true iff all views are byte-identical. Keeps the last dumps for messages. */
export class Views {
  last: Dump[] = []
  constructor (readonly procs: PeerProcess[]) {}

  async agree (): Promise<boolean> {
    this.last = await Promise.all(this.procs.map(async (p) => await p.dump()))
    return this.last.every((d) => sameView(d, this.last[0]))
  }

  describe (): string {
    return this.procs.map((p, i) => {
      const d = this.last[i]
      if (d === undefined) return `${p.name}: no dump`
      const err = p.stderr === '' ? '' : ` stderr: ${p.stderr.slice(-500)}`
      return `${p.name}: ${d.entries.length} entries, hash ${d.hash.slice(0, 12)}, peers ${d.peers}, writable ${String(d.writable)}, writers ${d.writers.map((w) => `${w.key.slice(0, 6)}:${w.folded}/${w.length}`).join(' ')}${err}`
    }).join('; ')
  }
}

/** The view as a Map of utf8 key → utf8 value. */
export function decode (d: Dump): Map<string, string> {
  return new Map(d.entries.map(([k, v]) => [Buffer.from(k, 'hex').toString('utf8'), Buffer.from(v, 'hex').toString('utf8')]))
}

/** `n` puts `${prefix}${i}` = `${value}${i}`. */
export function puts (prefix: string, n: number, value = prefix): WriteOp[] {
  return Array.from({ length: n }, (_, i) => ({ type: 'put' as const, key: `${prefix}${String(i).padStart(3, '0')}`, value: `${value}${i}` }))
}
