/**
 * Replication and folds under load (opt-in: `npm run bench -- --only load`; also on its own):
 *
 *   npx tsx scripts/bench/load.ts [N]        (default N = 50,000)
 *
 * Every peer is its own process (this script forked with the role `peer`), linked over loopback
 * TCP with `db.replicate()` streams: no DHT, so the figures are meshbee's and Hypercore's, not
 * peer discovery's.
 *
 * 1. Own puts, idle (the anchor): A alone puts IDLE_PUTS keys, each awaited before the next.
 * 2. Own puts during a remote catch-up: B appends N puts (batches of 1,000) while A is away; A
 *    connects to B and keeps putting, each awaited before the next, until it has folded all of
 *    B's log. Latency p50/p99/max against the idle anchor of the same run (target: p99 at most 5×).
 * 3. Bursts with replicas connecting mid-way: W, the creator of a fresh database, puts N keys
 *    one at a time, then (another database) in batches of 100, each awaited before the next; at
 *    N/4 three replicas opened by its key connect to it. For each replica, from its connect: the
 *    first length it hears of W's log, its first block, its first folded entries (and how many),
 *    how far behind it is when the burst ends, and when it has folded all of it.
 *
 * Prints markdown on stdout (machine, command, load average, versions); progress on stderr.
 * The first-block time reads the replica's Hypercore 'download' event through `db.engine` (the
 * documented internal hook); everything else uses the public API.
 */
import { fork, type ChildProcess } from 'node:child_process'
import net from 'node:net'
import os from 'node:os'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import type { Duplex } from 'node:stream'
import { machine, removeTempDirs, tempDir, versions } from './common.js'

const HERE = fileURLToPath(import.meta.url)
const IDLE_PUTS = 3000
const REPLICAS = 3
/**
 * The bursts: puts one at a time, each awaited (the writer slows down as it serves the
 * replicas), and batches of 100, which outrun the replicas' download.
 */
const BURSTS = [{ batch: 1, what: 'puts one at a time, each awaited' }, { batch: 100, what: 'batches of 100 puts, each awaited' }]

interface Summary { n: number, p50: number, p99: number, max: number, mean: number }

function summarize (ms: number[]): Summary {
  const s = [...ms].sort((a, b) => a - b)
  const q = (p: number): number => s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)]
  return { n: s.length, p50: q(0.5), p99: q(0.99), max: s[s.length - 1] ?? NaN, mean: s.reduce((a, b) => a + b, 0) / Math.max(1, s.length) }
}

const value = (i: number): string => JSON.stringify({ id: i, owner: 'load', tags: ['bench', 'meshbee'], note: 'x'.repeat(40) })
const key = (prefix: string, i: number): string => prefix + String(i).padStart(9, '0')

// ---------------------------------------------------------------- a peer (child process)

type Msg = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

async function peer (): Promise<void> {
  const { MeshDB } = await import('../../index.js')
  let db: InstanceType<typeof MeshDB<string, string>> | null = null
  const sockets: net.Socket[] = []
  let server: net.Server | null = null
  const send = (m: Msg): void => { process.send?.(m) }
  const need = (): InstanceType<typeof MeshDB<string, string>> => {
    if (db === null) throw new Error('not open')
    return db
  }
  const link = (sock: net.Socket, initiator: boolean): void => {
    sockets.push(sock)
    sock.on('error', () => {})
    const stream = need().replicate(initiator) as Duplex
    stream.on('error', () => {})
    sock.pipe(stream).pipe(sock)
  }
  const folded = (writer: string): number => need().writers().find((w) => w.key.toString('hex') === writer)?.folded ?? 0
  /** Resolves once `check` holds, re-checked on every 'update' and at least every 20 ms. */
  const until = async (check: () => boolean): Promise<void> => {
    while (!check()) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, 20)
        function done (): void { clearTimeout(t); need().off('update', done); resolve() }
        need().on('update', done)
      })
    }
  }
  let puts = 0
  const put = async (): Promise<number> => {
    const t = performance.now()
    await need().put(key('a', puts), value(puts))
    puts++
    return performance.now() - t
  }

  const handle = async (m: Msg): Promise<Msg> => {
    switch (m.c) {
      case 'open': {
        db = new MeshDB<string, string>(await tempDir('load'), m.key === undefined ? {} : { key: Buffer.from(m.key, 'hex') })
        await db.open()
        return { key: db.key.toString('hex'), writer: db.writerKey.toString('hex') }
      }
      case 'listen': {
        server = net.createServer((sock) => { link(sock, false) })
        await new Promise<void>((resolve) => { server?.listen(0, '127.0.0.1', resolve) })
        return { port: (server.address() as net.AddressInfo).port }
      }
      case 'connect': {
        const t0 = performance.now()
        const firsts: Record<string, number> = {}
        const mark = (what: string): void => { if (firsts[what] === undefined) firsts[what] = performance.now() - t0 }
        if (typeof m.watch === 'string') {
          const w = need().engine.writers.get(m.watch)
          w?.core.on('append', () => { if (firsts.length === undefined) { mark('length'); firsts.heard = w.core.length } })
          w?.core.on('download', () => { mark('block') })
          need().on('update', () => {
            const f = folded(m.watch)
            if (f > 0 && firsts.fold === undefined) { mark('fold'); firsts.folded = f }
          })
        }
        ;(globalThis as Msg).firsts = firsts
        link(net.connect(m.port, '127.0.0.1'), true)
        return {}
      }
      case 'disconnect': {
        for (const s of sockets.splice(0)) s.destroy()
        return {}
      }
      case 'addWriter': {
        await need().addWriter(Buffer.from(m.writer, 'hex'))
        return {}
      }
      case 'writable': {
        while (!need().writable) {
          await need().update()
          await until(() => need().writable)
        }
        return {}
      }
      case 'fill': {
        for (let i = 0; i < m.n; i += 1000) {
          await need().batch(Array.from({ length: Math.min(1000, m.n - i) }, (_, j) => ({ type: 'put' as const, key: key(m.prefix, i + j), value: value(i + j) })))
        }
        return { length: need().writers().find((w) => w.local)?.length ?? 0 }
      }
      case 'idle': {
        const lag = monitorEventLoopDelay({ resolution: 5 })
        lag.enable()
        const ms: number[] = []
        for (let i = 0; i < m.n; i++) ms.push(await put())
        lag.disable()
        return { summary: summarize(ms), lag: lag.percentile(99) / 1e6 }
      }
      case 'catchup': {
        // connect to the writer and put, each awaited, until its log of `length` is folded
        const before = need().stats()
        const lag = monitorEventLoopDelay({ resolution: 5 })
        lag.enable()
        const t0 = performance.now()
        link(net.connect(m.port, '127.0.0.1'), true)
        const ms: number[] = []
        while (folded(m.writer) < m.length) ms.push(await put())
        const took = performance.now() - t0
        lag.disable()
        const after = need().stats()
        return { summary: summarize(ms), ms: took, folds: after.folds - before.folds, entries: after.diffEntries - before.diffEntries, slow: ms.filter((x) => x > 50).length, lag: lag.percentile(99) / 1e6 }
      }
      case 'burst': {
        // N puts in writes of `batch` (1: a put), each awaited; reports when `at` are done, and
        // the put rate before and after
        const t0 = performance.now()
        let tAt = 0
        for (let i = 0; i < m.n; i += m.batch) {
          const n = Math.min(m.batch, m.n - i)
          if (n === 1) await need().put(key('b', i), value(i))
          else await need().batch(Array.from({ length: n }, (_, j) => ({ type: 'put' as const, key: key('b', i + j), value: value(i + j) })))
          if (i < m.at && i + n >= m.at) {
            tAt = performance.now()
            send({ e: 'at', length: need().writers().find((w) => w.local)?.length ?? 0 })
          }
        }
        const t1 = performance.now()
        return { ms: t1 - t0, before: m.at / ((tAt - t0) / 1000), after: (m.n - m.at) / ((t1 - tAt) / 1000), length: need().writers().find((w) => w.local)?.length ?? 0 }
      }
      case 'status': {
        const w = need().writers().find((x) => x.key.toString('hex') === m.writer)
        return { length: w?.length ?? 0, held: w?.held ?? 0, folded: w?.folded ?? 0, firsts: (globalThis as Msg).firsts ?? {} }
      }
      case 'until-folded': {
        const t0 = performance.now()
        await until(() => folded(m.writer) >= m.length)
        return { ms: performance.now() - t0 }
      }
      case 'close': {
        for (const s of sockets.splice(0)) s.destroy()
        server?.close()
        await db?.close()
        await removeTempDirs()
        return {}
      }
    }
    throw new Error(`unknown command ${String(m.c)}`)
  }
  process.on('message', (m: Msg) => {
    handle(m).then((r) => { send({ id: m.id, ...r }) }, (err: unknown) => { send({ id: m.id, err: (err as Error).stack ?? String(err) }) })
  })
  send({ e: 'ready' })
}

// ---------------------------------------------------------------- the run

class Peer {
  private readonly child: ChildProcess
  private next = 0
  private readonly waiting = new Map<number, { resolve: (m: Msg) => void, reject: (e: Error) => void }>()
  readonly events: Array<(m: Msg) => void> = []
  readonly ready: Promise<void>

  constructor (readonly name: string) {
    this.child = fork(HERE, ['peer'], { execArgv: ['--import', 'tsx'], env: process.env })
    let ready: () => void = () => {}
    this.ready = new Promise((resolve) => { ready = resolve })
    this.child.on('message', (m: Msg) => {
      if (m.e === 'ready') ready()
      if (m.e !== undefined) for (const f of this.events) f(m)
      const w = this.waiting.get(m.id)
      if (w === undefined) return
      this.waiting.delete(m.id)
      if (m.err !== undefined) w.reject(new Error(`${this.name}: ${String(m.err)}`))
      else w.resolve(m)
    })
  }

  async call (c: string, args: Msg = {}): Promise<Msg> {
    await this.ready
    const id = this.next++
    return await new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject })
      this.child.send({ id, c, ...args })
    })
  }

  once (e: string): Promise<Msg> {
    return new Promise((resolve) => {
      const f = (m: Msg): void => {
        if (m.e !== e) return
        this.events.splice(this.events.indexOf(f), 1)
        resolve(m)
      }
      this.events.push(f)
    })
  }

  kill (): void { this.child.kill('SIGKILL') }
}

const log = (m: string): void => { process.stderr.write(m + '\n') }
const f1 = (x: number): string => Number.isFinite(x) ? x.toFixed(1) : '—'
const f2 = (x: number): string => Number.isFinite(x) ? x.toFixed(2) : '—'
const int = (x: number): string => Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '—'
const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s.length === 0 ? NaN : s.length % 2 === 1 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2 }

async function main (): Promise<void> {
  const N = Number(process.argv[2] ?? 50_000)
  if (!Number.isSafeInteger(N) || N < 1000) throw new Error('usage: npx tsx scripts/bench/load.ts [N >= 1000]')
  const loads = [os.loadavg()[0]]
  const a = new Peer('A')
  const b = new Peer('B')
  const w = new Peer('W')
  const replicas = Array.from({ length: REPLICAS }, (_, i) => new Peer(`R${i}`))
  const all = [a, b, w, ...replicas]
  try {
    const { key } = await a.call('open')
    const { writer: bWriter } = await b.call('open', { key })
    const { port } = await b.call('listen')
    await a.call('addWriter', { writer: bWriter })
    await a.call('connect', { port })
    await b.call('writable')
    await a.call('disconnect')
    log('A and B are members')

    // 1. idle anchor
    const idleRun = await a.call('idle', { n: IDLE_PUTS })
    const idle = idleRun.summary as Summary
    const idleLag = idleRun.lag as number
    log(`idle: p50 ${f2(idle.p50)} p99 ${f2(idle.p99)} max ${f2(idle.max)} ms`)
    loads.push(os.loadavg()[0])

    // 2. catch-up while putting
    const { length: bLength } = await b.call('fill', { n: N, prefix: 'f' })
    log(`B appended ${N} puts while A was away (log length ${bLength})`)
    const cu = await a.call('catchup', { port, writer: bWriter, length: bLength })
    const during = cu.summary as Summary
    log(`catch-up ${f1(cu.ms / 1000)} s: p50 ${f2(during.p50)} p99 ${f2(during.p99)} max ${f2(during.max)} ms over ${during.n} puts`)
    await a.call('disconnect')
    loads.push(os.loadavg()[0])

    for (const p of [a, b]) await p.call('close')

    // 3. bursts on fresh databases (their creator W writes); replicas connect at N/4
    const at = Math.floor(N / 4)
    const bursts: string[] = []
    for (const { batch, what } of BURSTS) {
      const { key: wKey } = await w.call('open')
      const { port: wPort } = await w.call('listen')
      for (const r of replicas) await r.call('open', { key: wKey })
      const reached = w.once('at')
      const burst = w.call('burst', { n: N, at, batch })
      const { length: atLength } = await reached
      log(`burst (${what}) at ${at} puts (log length ${atLength}): replicas connect`)
      await Promise.all(replicas.map(async (r) => await r.call('connect', { port: wPort, watch: wKey })))
      const connected = performance.now()
      const done = await burst
      const rest = performance.now() - connected
      const atEnd = await Promise.all(replicas.map(async (r) => await r.call('status', { writer: wKey })))
      log(`burst done in ${f1(done.ms / 1000)} s (length ${done.length}); replicas folded ${atEnd.map((s) => s.folded).join(', ')}`)
      const after = await Promise.all(replicas.map(async (r) => await r.call('until-folded', { writer: wKey, length: done.length })))
      const finals = await Promise.all(replicas.map(async (r) => await r.call('status', { writer: wKey })))
      for (const p of [w, ...replicas]) await p.call('close')
      loads.push(os.loadavg()[0])
      const firstFolds = finals.map((s) => (s.firsts as Record<string, number>).fold ?? NaN)
      bursts.push(
        `${what[0].toUpperCase()}${what.slice(1)}: ${int(N)} puts in ${f1(done.ms / 1000)} s (${int(done.before)} puts/s before the replicas connect, ${int(done.after)} after); they connect at ${int(at)} puts (log length ${int(atLength)}).`,
        '',
        '| replica | first length heard, ms (length) | first block, ms | first entries folded, ms (folded to) | behind at the burst\'s end, entries (held) | all folded, ms after the burst |',
        '|---|---:|---:|---:|---:|---:|',
        ...replicas.map((r, i) => {
          const s = finals[i].firsts as Record<string, number>
          return `| ${r.name} | ${int(s.length)} (${int(s.heard)}) | ${int(s.block)} | ${s.fold === undefined ? 'after the burst' : `${int(s.fold)} (${int(s.folded)})`} | ${int(done.length - atEnd[i].folded)} (${int(atEnd[i].held)}) | ${int(after[i].ms)} |`
        }),
        '',
        `Median time to the first folded entries: ${Number.isNaN(median(firstFolds)) ? 'after the burst' : `${int(median(firstFolds))} ms`} after connecting; the burst went on for ${int(rest)} ms after they connected.`,
        ''
      )
    }

    // ---------------------------------------------------------------- report
    const ratio = during.p99 / idle.p99
    const out = [
      `Machine: ${machine()}; 1-minute load average ${loads.map((l) => l.toFixed(1)).join(' → ')} (start, after the idle puts, the catch-up and each burst)`,
      `Versions: ${versions()}`,
      `Command: \`npx tsx scripts/bench/load.ts${process.argv[2] !== undefined ? ' ' + process.argv[2] : ''}\` (N = ${int(N)}; one process per peer, linked over loopback TCP with \`db.replicate()\`)`,
      '',
      '**Own puts during a remote catch-up.** A puts one key at a time, each awaited; idle first (the anchor), then from connecting to B, which appended N puts while A was away, until A has folded them all.',
      '',
      '| own put (awaited, one at a time) | puts | p50 ms | p99 ms | max ms | puts over 50 ms |',
      '|---|---:|---:|---:|---:|---:|',
      `| idle (anchor) | ${int(idle.n)} | ${f2(idle.p50)} | ${f2(idle.p99)} | ${f2(idle.max)} | — |`,
      `| during the catch-up of ${int(N)} entries (${f1(cu.ms / 1000)} s; ${int(cu.folds)} folds, ${int(cu.entries)} entries read) | ${int(during.n)} | ${f2(during.p50)} | ${f2(during.p99)} | ${f2(during.max)} | ${int(cu.slow)} |`,
      '',
      `p99 during / idle: ${f2(ratio)} (target ≤ 5: ${ratio <= 5 ? 'met' : 'missed'}). A's event-loop delay p99: ${f1(idleLag)} ms idle, ${f1(cu.lag)} ms during the catch-up.`,
      '',
      `**Replicas connecting mid-burst.** W, the creator of a fresh database, writes ${int(N)} puts; when ${int(at)} are written, three replicas opened by its key connect to it. Times from each replica's connect.`,
      '',
      ...bursts
    ]
    process.stdout.write(out.join('\n') + '\n')
  } finally {
    await Promise.all(all.map(async (p) => await p.call('close').catch(() => {})))
    for (const p of all) p.kill()
  }
}

if (process.argv[2] === 'peer') {
  peer().catch((err: unknown) => {
    process.stderr.write(`peer failed: ${(err as Error).stack ?? String(err)}\n`)
    process.exit(1)
  })
} else {
  main().then(() => { process.exit(0) }, (err: unknown) => {
    process.stderr.write(`load failed: ${(err as Error).stack ?? String(err)}\n`)
    process.exit(1)
  })
}
