/**
 * The change feed (lib/changes.ts, lib/watch.ts): `watch` reports every change of the view once,
 * in commit order, with the value before and after; `initial` starts from the range's entries
 * with no gap and nothing twice; `changes({ since })` resumes after a restart; a reader that
 * falls behind fails with a code instead of losing changes.
 */
import { expect } from 'chai'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { MeshDB } from '../index.js'
import type { ChangeIterator, FeedChange, WatchChange } from '../lib/types.js'
import { cleanup, connect, createPeers, meshSync, rejects, tempDir, until } from './helpers/peers.js'

type DB = MeshDB<string, any>

/** Reads a stream in the background into `events` until it ends or fails. */
function collect<T> (it: ChangeIterator<T>): { events: T[], done: Promise<unknown> } {
  const events: T[] = []
  const done = (async () => {
    try {
      for await (const e of it) events.push(e)
    } catch (err) {
      return err
    }
    return null
  })()
  return { events, done }
}

/** The events replayed onto an empty map; each event's `previous` must be what the map held (nothing missed, nothing twice). */
function replay (events: Array<WatchChange<string, any>>, checkPrevious = true): Map<string, string> {
  const m = new Map<string, string>()
  for (const e of events) {
    const before = m.get(e.key)
    if (checkPrevious) expect(e.previous === undefined ? undefined : JSON.stringify(e.previous), `previous of ${e.type} ${e.key} at seq ${e.seq}`).to.equal(before)
    if (e.type === 'put') m.set(e.key, JSON.stringify(e.value))
    else m.delete(e.key)
  }
  return m
}

async function viewOf (db: DB, range: { gte?: string, lt?: string } = {}): Promise<Map<string, string>> {
  const m = new Map<string, string>()
  for await (const [k, v] of db.iterator(range)) m.set(k, JSON.stringify(v))
  return m
}

const sameMap = (a: Map<string, string>, b: Map<string, string>): boolean => a.size === b.size && [...a].every(([k, v]) => b.get(k) === v)

describe('watch and the change feed', function () {
  this.timeout(60_000)
  let dbs: DB[] = []
  afterEach(async () => { await cleanup(...dbs); dbs = [] })

  it('watchers started before concurrent partitioned writes and a removal see every change once: replayed, they equal each final view', async () => {
    const [a, b, c] = dbs = await createPeers(3, () => ({ valueEncoding: 'json' }))
    const all = [a, b, c].map((db) => collect(db.watch()))
    const ranged = [a, b, c].map((db) => collect(db.watch({ gte: 'k', lt: 's' })))
    // partitioned: each writes alone
    await a.put('k0', 'a'); await a.patch('doc', { x: 1, y: 'a' }); await a.sadd('set', 'm1'); await a.put('k1', 1)
    await b.put('k0', 'b'); await b.patch('doc', { y: 'b' }); await b.sadd('set', 'm2'); await b.del('k1')
    await c.put('k2', 'c'); await c.srem('set', 'm1'); await c.put('k3', { deep: [1] })
    await meshSync([a, b, c])
    await a.srem('set', 'm2'); await b.patch('doc', { x: undefined })
    // c writes while cut off, then a removes it: c's later writes fall back everywhere
    await c.put('k2', 'late'); await c.put('k4', 'late')
    await meshSync([a, b])
    await a.removeWriter(c.writerKey)
    await meshSync([a, b, c])
    expect(await a.get('k2')).to.equal('c')
    expect(await c.get('k4')).to.equal(undefined)

    for (const [i, db] of [a, b, c].entries()) {
      const final = await viewOf(db)
      await until([db], () => sameMap(replay(all[i].events, false), final), () => `watcher ${i}: ${JSON.stringify([...replay(all[i].events, false)])} vs ${JSON.stringify([...final])}`)
      replay(all[i].events) // every previous was what the replay held
      const seqs = all[i].events.map((e) => e.seq)
      expect(seqs, 'commit order').to.deep.equal([...seqs].sort((x, y) => x - y))
      const finalRange = await viewOf(db, { gte: 'k', lt: 's' })
      await until([db], () => sameMap(replay(ranged[i].events, false), finalRange), () => 'ranged watcher')
      replay(ranged[i].events)
      expect(ranged[i].events.every((e) => e.key >= 'k' && e.key < 's')).to.equal(true)
    }
    // own writes are 'local', what came by a fold 'remote'
    expect(all[0].events.find((e) => e.key === 'k1')?.origin).to.equal('local')
    expect(all[1].events.find((e) => e.key === 'k2')?.origin).to.equal('remote')
    await a.close()
    expect((await all[0].done as { code?: string })?.code, 'a watcher of a closed database fails').to.equal('MESHBEE_CLOSED')
  })

  it('initial: true across a concurrent catch-up yields each key once, then every change with no gap', async () => {
    const [a, b, c] = dbs = await createPeers(3, () => ({ valueEncoding: 'json' }))
    // two writers' diffs, each more than a commit's worth: the catch-up commits after each
    for (const [w, db] of [a, c].entries()) {
      for (let i = 0; i < 1500; i += 500) await db.write([...Array(500).keys()].map((j) => ({ type: 'put' as const, key: 'k' + String(w * 1500 + i + j).padStart(5, '0'), value: i + j })))
    }
    await b.put('k00001', 'b')
    const cut = [connect(a, b), connect(c, b)]
    // start once the catch-up has committed its first part, while it goes on
    await new Promise((resolve) => b.once('update', resolve))
    const w = collect(b.watch({}, { initial: true }))
    await b.put('k00002', 'b-during')
    await until([a, b, c], async () => b.writers().every((x) => x.folded === x.length) && (await b.get('k02999')) === 1499 && (await b.get('k01499')) === 1499)
    for (const x of cut) x()
    const final = await viewOf(b)
    await until([b], () => sameMap(replay(w.events, false), final), () => `${w.events.length} events`)
    const start = w.events[0].seq
    const initial = w.events.filter((e) => e.seq === start)
    expect(new Set(initial.map((e) => e.key)).size, 'no key twice in the initial entries').to.equal(initial.length)
    const later = w.events.slice(initial.length)
    expect(later.every((e) => e.seq > start), 'then only later commits').to.equal(true)
    expect(later.some((e) => e.origin === 'remote'), 'the catch-up went on after the watch started').to.equal(true)
    replay(w.events) // each later change's previous is what the initial entries and the changes before it said
  })

  it('changes({ since }) after a restart yields exactly the keys changed since, once each, with their values now', async () => {
    const dir = await tempDir()
    let db: DB = new MeshDB(dir, { valueEncoding: 'json' })
    dbs = [db]
    await db.put('a', 1)
    await db.put('b', 2)
    const feed: Array<FeedChange<string, any>> = []
    for await (const c of db.changes()) feed.push(c)
    expect(feed.map((c) => [c.key, c.value, c.type])).to.deep.equal([['a', 1, 'put'], ['b', 2, 'put']])
    const since = feed[feed.length - 1].seq
    await db.close()
    db = new MeshDB(dir, { valueEncoding: 'json' })
    dbs.push(db)
    await db.put('c', 3)
    await db.put('a', 10)
    await db.del('b')
    await db.put('a', 11)
    const after: Array<FeedChange<string, any>> = []
    for await (const c of db.changes({ since })) after.push(c)
    expect(after.map((c) => [c.key, c.value, c.type])).to.deep.equal([['c', 3, 'put'], ['b', undefined, 'del'], ['a', 11, 'put']])
    // seqs only grow, across the restart too (they may jump: see lib/changes.ts `open`)
    expect(after.every((c, i) => c.seq > since && (i === 0 || c.seq > after[i - 1].seq))).to.equal(true)
    const ranged: string[] = []
    for await (const c of db.changes({ since, gte: 'b' })) ranged.push(c.key)
    expect(ranged).to.deep.equal(['c', 'b'])

    // a view created anew (lost): the feed cannot list what a reader missed before (b's deletion
    // among it), so a reader from before is told to read it all again
    const last = after[after.length - 1].seq
    await db.close()
    await rm(join(dir, 'view'), { recursive: true, force: true })
    db = new MeshDB(dir, { valueEncoding: 'json' })
    dbs.push(db)
    const err = await rejects((async () => { for await (const _ of db.changes({ since: since })) break })())
    expect(err.code).to.equal('MESHBEE_FEED_RESET')
    const again: Array<FeedChange<string, any>> = []
    for await (const c of db.changes({ since: 0 })) again.push(c)
    expect(again.map((c) => c.key).sort()).to.deep.equal(['a', 'c'])
    expect(again.every((c) => c.seq > last), 'seqs go on above the old ones').to.equal(true)
  })

  it('live changes follow the feed after its history; a reader that falls behind fails with MESHBEE_WATCH_OVERFLOW and resumes from its seq', async () => {
    const db: DB = new MeshDB(await tempDir(), { valueEncoding: 'json' })
    dbs = [db]
    await db.put('a', 1)
    const live = collect(db.changes({ live: true }))
    await db.put('b', 2)
    await until([db], () => live.events.length === 2, () => JSON.stringify(live.events))
    expect(live.events.map((c) => c.key)).to.deep.equal(['a', 'b'])

    const slow = db.watch({}, { maxBuffer: 5 })
    await db.put('x0', 0)
    const first = await slow.next()
    expect(first.value?.key).to.equal('x0')
    for (let i = 1; i < 10; i++) await db.put('x' + i, i)
    const read: string[] = []
    const err = await rejects((async () => { for await (const c of slow) read.push(c.key) })())
    expect(err.code).to.equal('MESHBEE_WATCH_OVERFLOW')
    const seq = (err as unknown as { seq: number }).seq
    const rest: string[] = []
    for await (const c of db.changes({ since: seq })) rest.push(c.key)
    expect(['x0', ...read, ...rest], 'nothing lost across the overflow').to.include.members([...Array(10).keys()].map((i) => 'x' + i))

    // one commit larger than maxBuffer, to a reader that is not behind: it reads it all
    const idle = collect(db.watch({ gte: 'y', lt: 'z' }, { maxBuffer: 5 }))
    await db.batch([...Array(8).keys()].map((i) => ({ type: 'put' as const, key: 'y' + i, value: i })))
    await until([db], () => idle.events.length === 8, () => `${idle.events.length} of 8`)

    // a rebuild of the view (verify repairing it) fails live readers, and a resume from before it
    const live2 = collect(db.watch())
    const before = (await db.put('r', 1), db.engine.commit.feed.seq)
    await db.engine.view.write([db.engine.view.putValue(Buffer.from('r'), Buffer.from([0, 0x37]))]) // a row the logs do not back
    expect((await db.verify({ repair: true })).repaired).to.equal(true)
    expect(((await live2.done) as { code?: string })?.code).to.equal('MESHBEE_FEED_RESET')
    expect((await rejects((async () => { for await (const _ of db.changes({ since: before - 1 })) break })())).code).to.equal('MESHBEE_FEED_RESET')
    const all: string[] = []
    for await (const c of db.changes()) all.push(c.key)
    expect(all).to.include.members(['a', 'b', 'r', 'y0'])

    for (const bad of [{ since: -1 }, { since: 1.5 }, { maxBuffer: 0 }]) {
      expect(() => db.changes(bad as never)).to.throw().with.property('code', 'MESHBEE_INVALID_ARGUMENT')
    }
    expect(() => db.watch(null as never)).to.throw().with.property('code', 'MESHBEE_INVALID_ARGUMENT')
    live.events.length = 0
    const l = db.changes({ live: true })
    l.close()
    expect((await l.next()).done).to.equal(true)
  })
})
