/**
 * The runner's sync workload (scripts/bench/index.ts runs it as a child process; it also runs on
 * its own): write-to-visible latency between two peers over Hyperswarm on a local DHT testnet
 * (nothing leaves the machine), meshbee beside raw Hyperbee replication in the same run.
 *
 *   npx tsx scripts/bench/sync.ts [N]        (default N = 300 measured writes, after 20 warm-up)
 *
 * meshbee: peers a and b (b opened by a's key), each db.join() on its own DHT node of the testnet.
 *   For each write: t0, a.put(key, value), then on b's 'update' events until b.get(key) returns
 *   the value: t1. The next write starts only after that. Latency = t1 - t0: a's append and local
 *   fold, replication, b's fold into its view.
 * raw Hyperbee (the anchor): two Corestores, each on its own Hyperswarm on the same testnet,
 *   replicating every connection; b's core downloads eagerly (as meshbee does). For each write:
 *   t0, beeA.put(key, value), then on b's core 'append' events until beeB.get(key) returns the
 *   value: t1.
 *
 * Both run in this one process, each with its own temp dirs and DHT nodes, their writes
 * interleaved one at a time (so both see the same machine load). The last column is the time until
 * the local write alone resolved (meshbee: append + local fold; Hyperbee: put).
 * Prints a markdown table (with the machine and this command) to stdout; progress to stderr.
 *
 * Note: importing meshbee loads lib/hypercore-patch.ts, which patches Hypercore for the whole
 * process (the replicator's extra sync messages, and `missingNodes` in one read batch), so the
 * Hyperbee anchor runs with both too: the comparison credits meshbee with neither.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import Corestore from 'corestore'
import Hyperbee from 'hyperbee'
import createTestnet from 'hyperdht/testnet.js'
import Hyperswarm from 'hyperswarm'
import type { Duplex } from 'node:stream'
import { MeshDB } from '../../index.js'

const N = Number(process.argv[2] ?? 300)
const WARMUP = 20
if (!Number.isSafeInteger(N) || N < 1) {
  process.stderr.write('usage: npx tsx scripts/bench/sync.ts [N]\n')
  process.exit(2)
}

const dirs: string[] = []
async function tempDir (name: string): Promise<string> {
  const dir = await mkdtemp(join(os.tmpdir(), `meshbee-bench-sync-${name}-`))
  dirs.push(dir)
  return dir
}

const log = (m: string): void => { process.stderr.write(m + '\n') }

/** Resolves once `check` holds, re-checking on every `event` of `emitter` (and once at once). */
async function when (emitter: NodeJS.EventEmitter, event: string, check: () => Promise<boolean>, timeout = 30_000): Promise<void> {
  let wake: () => void = () => {}
  const on = (): void => wake()
  emitter.on(event, on)
  const timer = setTimeout(() => wake(), timeout)
  const deadline = Date.now() + timeout
  try {
    while (true) {
      const woke = new Promise<void>((resolve) => { wake = resolve })
      if (await check()) return
      if (Date.now() > deadline) throw new Error(`timed out waiting on '${event}'`)
      await woke
    }
  } finally {
    clearTimeout(timer)
    emitter.off(event, on)
  }
}

interface Summary { n: number, p50: number, p95: number, p99: number, mean: number, max: number }

function summarize (ms: number[]): Summary {
  const s = [...ms].sort((a, b) => a - b)
  const q = (p: number): number => s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)]
  return { n: s.length, p50: q(0.5), p95: q(0.95), p99: q(0.99), mean: s.reduce((a, b) => a + b, 0) / s.length, max: s[s.length - 1] }
}

/** One pipeline: `write(i)` resolves once write i is visible on the other peer. */
interface Pipeline {
  name: string
  /** Returns [ms until visible on the other peer, ms until the local write resolved]. */
  write: (i: number) => Promise<[number, number]>
  close: () => Promise<void>
}

/** Times one write: t0, the local write, then the wait until the other peer sees it. */
async function timed (local: () => Promise<void>, seen: Promise<void>): Promise<[number, number]> {
  const t0 = performance.now()
  await local()
  const t1 = performance.now()
  await seen
  return [performance.now() - t0, t1 - t0]
}

const key = (i: number): string => `key/${String(i).padStart(6, '0')}`
const value = (i: number): string => `value-${i}-`.padEnd(100, 'x')

async function meshbee (testnet: Awaited<ReturnType<typeof createTestnet>>): Promise<Pipeline> {
  const a = new MeshDB(await tempDir('a'))
  await a.open()
  const b = new MeshDB(await tempDir('b'), { key: a.key })
  await b.open()
  await a.join({ swarm: { dht: testnet.createNode() } })
  await b.join({ swarm: { dht: testnet.createNode() } })
  log('meshbee: joined')
  await when(b, 'peer-add', async () => b.peers > 0)
  log('meshbee: connected')
  return {
    name: 'meshbee',
    write: async (i) => {
      const k = key(i)
      const v = value(i)
      return await timed(async () => { await a.put(k, v) }, when(b, 'update', async () => (await b.get(k)) === v))
    },
    close: async () => {
      await a.close()
      await b.close()
    }
  }
}

async function hyperbee (testnet: Awaited<ReturnType<typeof createTestnet>>): Promise<Pipeline> {
  const storeA = new Corestore(await tempDir('raw-a'))
  const storeB = new Corestore(await tempDir('raw-b'))
  const coreA = storeA.get({ name: 'bench' })
  await coreA.ready()
  const coreB = storeB.get({ key: coreA.key })
  await coreB.ready()
  const beeA = new Hyperbee(coreA, { keyEncoding: 'utf-8', valueEncoding: 'utf-8' })
  const beeB = new Hyperbee(coreB, { keyEncoding: 'utf-8', valueEncoding: 'utf-8' })
  await beeA.ready()
  await beeB.ready()
  coreB.download({ start: 0, end: -1 })

  const swarms = [new Hyperswarm({ dht: testnet.createNode() }), new Hyperswarm({ dht: testnet.createNode() })]
  swarms[0].on('connection', (conn: Duplex) => { storeA.replicate(conn).on('error', () => {}) })
  swarms[1].on('connection', (conn: Duplex) => { storeB.replicate(conn).on('error', () => {}) })
  for (const sw of swarms) await sw.join(coreA.discoveryKey, { client: true, server: true }).flushed()
  log('hyperbee: joined')
  await when(swarms[1], 'update', async () => swarms[1].connections.size > 0)
  log('hyperbee: connected')
  // with utf-8 encodings a node's value is a string
  const text = (node: { value: unknown } | null): unknown => node?.value
  return {
    name: 'hyperbee',
    write: async (i) => {
      const k = key(i)
      const v = value(i)
      return await timed(async () => { await beeA.put(Buffer.from(k), Buffer.from(v)) },
        when(coreB, 'append', async () => text(await beeB.get(Buffer.from(k))) === v))
    },
    close: async () => {
      for (const sw of swarms) await sw.destroy()
      await beeA.close()
      await beeB.close()
      await storeA.close()
      await storeB.close()
    }
  }
}

const fmt = (x: number): string => x.toFixed(2)

const testnet = await createTestnet(3)
const pipelines: Pipeline[] = []
const results = new Map<string, { total: number[], local: number[] }>()
try {
  log('testnet up')
  pipelines.push(await hyperbee(testnet), await meshbee(testnet))
  for (const p of pipelines) results.set(p.name, { total: [], local: [] })
  // Interleaved, one write at a time: both pipelines see the same machine load over the run.
  for (let i = 0; i < WARMUP + N; i++) {
    for (const p of pipelines) {
      const [total, local] = await p.write(i)
      if (i < WARMUP) continue
      const r = results.get(p.name) as { total: number[], local: number[] }
      r.total.push(total)
      r.local.push(local)
    }
    if ((i + 1) % 100 === 0) log(`${i + 1}/${WARMUP + N}`)
  }
} catch (err) {
  // A write that never became visible: report it and leave without waiting on the peers.
  log(`failed: ${(err as Error).stack ?? String(err)}`)
  for (const d of dirs) await rm(d, { recursive: true, force: true })
  process.exit(1)
} finally {
  for (const p of pipelines) await p.close()
  await testnet.destroy()
  for (const d of dirs) await rm(d, { recursive: true, force: true })
}

const cpus = os.cpus()
const names: Record<string, string> = {
  meshbee: 'meshbee: `a.put` → `b.get` returns it (in b\'s view, after b\'s fold)',
  hyperbee: 'raw Hyperbee (anchor): `beeA.put` → `beeB.get` returns it'
}
const rows = ['meshbee', 'hyperbee'].map((n) => {
  const r = results.get(n) as { total: number[], local: number[] }
  return [names[n], summarize(r.total), summarize(r.local)] as const
})
const out = [
  `Machine: ${cpus[0]?.model ?? 'unknown cpu'}, ${cpus.length} cores, Node ${process.version}, ${os.platform()} ${os.release()}; load average at the end ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`,
  `Command: \`npx tsx scripts/bench/sync.ts${process.argv[2] !== undefined ? ' ' + process.argv[2] : ''}\` (${N} measured writes per pipeline after ${WARMUP} warm-up, each awaited until visible on the other peer before the next, the two pipelines interleaved; local hyperdht testnet, one process; Hypercore carries meshbee's patches (lib/hypercore-patch.ts) in both pipelines)`,
  '',
  '| write → visible on the other peer | writes | p50 ms | p95 ms | p99 ms | mean ms | max ms | local write alone p50 / p95 ms |',
  '|---|---:|---:|---:|---:|---:|---:|---:|',
  ...rows.map(([name, s, l]) => `| ${name} | ${s.n} | ${fmt(s.p50)} | ${fmt(s.p95)} | ${fmt(s.p99)} | ${fmt(s.mean)} | ${fmt(s.max)} | ${fmt(l.p50)} / ${fmt(l.p95)} |`)
]
process.stdout.write(out.join('\n') + '\n')
