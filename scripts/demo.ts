/**
 * The demo (`npm start`): a private DHT on loopback and three peers — a, b and c — each in its own
 * process. They become members, split apart, write conflicting data, meet again, and converge.
 * Prints each view before and after, the versions that lost, each peer's changes, and how long
 * convergence took. Exits 0 only if all three views ended byte-identical.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import createTestnet from 'hyperdht/testnet.js'

interface State { writable: boolean, hash: string, entries: Array<[string, unknown]>, writers: Array<{ key: string, length: number, folded: number }> }

class Peer {
  private next = 0
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void, reject: (e: Error) => void }>()
  private readonly listeners = new Set<() => void>()
  readonly ready: Promise<void>
  key = ''
  writer = ''

  constructor (readonly name: string, readonly child: ChildProcess) {
    this.ready = new Promise((resolve) => {
      child.on('message', (m: { id?: number, result?: unknown, error?: string, event?: string }) => {
        if (m.event === 'ready') resolve()
        if (m.event !== undefined) for (const l of this.listeners) l()
        if (m.id === undefined) return
        const w = this.waiting.get(m.id)
        this.waiting.delete(m.id)
        if (m.error !== undefined) w?.reject(new Error(`${this.name}: ${m.error}`))
        else w?.resolve(m.result)
      })
    })
  }

  call<T = unknown> (cmd: string, args: object = {}): Promise<T> {
    const id = this.next++
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject })
      this.child.send({ id, cmd, ...args })
    })
  }

  onEvent (fn: () => void): () => void {
    this.listeners.add(fn)
    return () => this.listeners.delete(fn)
  }

  state (): Promise<State> { return this.call<State>('state') }
}

/** Resolves when `check` holds, re-checking on every event from the peers; fails after `ms`. */
async function until (peers: Peer[], check: () => Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms
  let wake = (): void => {}
  const offs = peers.map((p) => p.onEvent(() => wake()))
  try {
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error('timed out waiting for ' + what)
      await new Promise<void>((resolve) => {
        wake = resolve
        setTimeout(resolve, 200).unref()
      })
    }
  } finally {
    offs.forEach((off) => off())
  }
}

/**
 * Joins one peer after the other: each announces before the next looks up, so every pair finds
 * each other at once. Peers that announce and look up at the same instant can miss each other
 * until Hyperswarm's next refresh, minutes later.
 */
async function joinInTurn (peers: Peer[]): Promise<void> {
  for (const p of peers) await p.call('join')
}

const show = (v: unknown): string => v === undefined ? '—' : JSON.stringify(v)
const short = (hex: string): string => hex.slice(0, 8)

function table (title: string, head: string[], rows: string[][]): void {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
  const line = (cells: string[]): string => '| ' + cells.map((c, i) => c.padEnd(widths[i])).join(' | ') + ' |'
  console.log('\n' + title)
  console.log(line(head))
  console.log('|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|')
  for (const r of rows) console.log(line(r))
}

function viewsTable (title: string, peers: Peer[], states: State[]): void {
  const keys = [...new Set(states.flatMap((s) => s.entries.map(([k]) => k)))].sort()
  const rows = keys.map((k) => [k, ...states.map((s) => show(s.entries.find(([key]) => key === k)?.[1]))])
  rows.push(['(hash)', ...states.map((s) => s.hash.slice(0, 12))])
  table(title, ['key', ...peers.map((p) => p.name)], rows)
}

async function main (): Promise<number> {
  const root = await mkdtemp(join(tmpdir(), 'meshbee-demo-'))
  const testnet = await createTestnet(3)
  const script = fileURLToPath(new URL('./demo-peer.ts', import.meta.url))
  const peers = ['a', 'b', 'c'].map((name) => new Peer(name, fork(script, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })))
  try {
    await Promise.all(peers.map(async (p) => await p.ready))
    const [a, b, c] = peers
    console.log(`meshbee demo — three peers in three processes, a private DHT on 127.0.0.1:${testnet.bootstrap[0].port}`)

    const opened = await a.call<{ key: string, writer: string }>('open', { dir: join(root, 'a'), bootstrap: testnet.bootstrap })
    a.key = opened.key
    a.writer = opened.writer
    for (const p of [b, c]) {
      const r = await p.call<{ key: string, writer: string }>('open', { dir: join(root, p.name), key: a.key, bootstrap: testnet.bootstrap })
      p.key = r.key
      p.writer = r.writer
      await a.call('add', { key: p.writer })
    }
    console.log(`database ${short(a.key)}…; writers a=${short(a.writer)} b=${short(b.writer)} c=${short(c.writer)}`)

    // 1. meet once so that b and c learn they are members, then split apart
    await joinInTurn(peers)
    await until(peers, async () => (await Promise.all(peers.map(async (p) => await p.state()))).every((s) => s.writable), 'b and c to become writable')
    await Promise.all(peers.map(async (p) => await p.call('leave')))
    const cuts = await a.call<Array<[string, number]>>('cuts')
    console.log('all three are members; the network is now partitioned')

    // 2. conflicting writes while partitioned
    await a.call('write', { ops: [
      { op: 'put', key: 'color', value: 'red' },
      { op: 'put', key: 'note', value: 'written by a' },
      { op: 'patch', key: 'todo', value: { title: 'buy milk', done: false } },
      { op: 'sadd', key: 'tags', value: 'home' },
      { op: 'sadd', key: 'tags', value: 'urgent' }
    ] })
    await b.call('write', { ops: [
      { op: 'put', key: 'color', value: 'blue' },
      { op: 'patch', key: 'todo', value: { done: true, owner: 'bob' } },
      { op: 'sadd', key: 'tags', value: 'work' },
      { op: 'del', key: 'note' }
    ] })
    await c.call('write', { ops: [
      { op: 'put', key: 'color', value: 'green' },
      { op: 'sadd', key: 'tags', value: 'home' },
      { op: 'srem', key: 'tags', value: 'home' },
      { op: 'put', key: 'count', value: 3 }
    ] })
    viewsTable('Views while partitioned', peers, await Promise.all(peers.map(async (p) => await p.state())))

    // 3. meet again
    const started = Date.now()
    await joinInTurn(peers)
    let final: State[] = []
    await until(peers, async () => {
      final = await Promise.all(peers.map(async (p) => await p.state()))
      const done = (s: State): boolean => s.writers.every((w) => w.folded === w.length)
      const lengths = (s: State): string => JSON.stringify(s.writers.map((w) => [w.key, w.length, w.folded]))
      return final.every(done) && final.every((s) => s.hash === final[0].hash && lengths(s) === lengths(final[0]))
    }, 'the views to converge')
    const took = Date.now() - started
    viewsTable('Views after sync', peers, final)

    const rows: string[][] = []
    for (const key of ['color', 'note', 'todo', 'tags']) {
      const versions = await a.call<Array<{ writer: string, type: string, value: unknown, stamp: { wall: number, counter: number } }>>('versions', { key })
      const name = (w: string): string => peers.find((p) => p.writer === w)?.name ?? short(w)
      versions.forEach((v, i) => rows.push([key, i === 0 ? 'newest' : 'older', name(v.writer), v.type, show(v.value ?? undefined)]))
    }
    table('Per-key versions (every writer\'s latest entry; the merge rules decide the value above)', ['key', 'rank', 'writer', 'entry', 'that writer says'], rows)

    const diffRows: string[][] = []
    for (const p of peers) {
      const from = cuts.find(([k]) => k === p.writer)?.[1] ?? 0
      const changes = await a.call<Array<{ key: string, type: string, value: unknown }>>('diff', { writer: p.writer, from })
      for (const ch of changes) diffRows.push([p.name, ch.key, ch.type, show(ch.value ?? undefined)])
    }
    table('Per-peer diffs (what each writer changed while partitioned)', ['peer', 'key', 'entry', 'value'], diffRows)

    const same = final.every((s) => JSON.stringify(s.entries) === JSON.stringify(final[0].entries) && s.hash === final[0].hash)
    console.log(same
      ? `\nAll three views identical (hash ${final[0].hash.slice(0, 16)}…), ${took} ms after the peers met again.`
      : '\nThe views did NOT converge.')
    await Promise.all(peers.map(async (p) => await p.call('close')))
    return same ? 0 : 1
  } finally {
    for (const p of peers) if (p.child.exitCode === null) p.child.kill()
    await testnet.destroy()
    await rm(root, { recursive: true, force: true })
  }
}

main().then((code) => process.exit(code), (err: unknown) => {
  console.error(err)
  process.exit(1)
})
