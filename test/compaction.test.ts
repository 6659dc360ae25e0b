/**
 * Compaction (lib/stability.ts, lib/compaction.ts): stable tombstones leave the view, log blocks
 * below the stable horizon leave the disk, and nothing any peer reads changes.
 */
import { expect } from 'chai'
import c from 'compact-encoding'
import { rm } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { MeshDB } from '../index.js'
import type { MeshDBOptions } from '../index.js'
import { readRecord } from '../lib/stability.js'
import { cleanup, connect, createPeers, dump, meshSync, ownLength, rejects, sameDump, tempDir, until } from './helpers/peers.js'

type DB = MeshDB<string, any>

const OPTS: MeshDBOptions<any, any> = { valueEncoding: 'json', cutsEvery: 0 }

/**
 * Rows the view keeps for keys that read as absent: their slots records, their part rows (a part
 * key is uint len ‖ user key ‖ kind ‖ name), and the tombstones held.
 */
async function deadRows (db: DB): Promise<{ slots: number, parts: number, graves: number }> {
  const view = db.engine.view
  await view.settle()
  let slots = 0
  for await (const [k] of view.slots.iterator()) if (view.getRow(k) === undefined) slots++
  let parts = 0
  for await (const [part] of view.parts.iterator()) {
    const state = { start: 0, end: part.byteLength, buffer: part }
    const len = c.uint.decode(state)
    if (view.getRow(part.subarray(state.start, state.start + len)) === undefined) parts++
  }
  let graves = 0
  for await (const _ of view.graves.iterator()) graves++ // eslint-disable-line @typescript-eslint/no-unused-vars
  return { slots, parts, graves }
}

/** One round of churn by writer `i`: overwrites, deletes, document fields set and deleted, set members added and removed. */
async function churn (db: DB, i: number, round: number, keys = 30): Promise<void> {
  const ops: Array<{ type: 'put', key: string, value: unknown } | { type: 'del', key: string }> = []
  for (let k = 0; k < keys; k++) {
    const key = `k${(k * 7 + round * 3 + i) % keys}`
    if ((k + round + i) % 4 === 0) ops.push({ type: 'del', key })
    else ops.push({ type: 'put', key, value: { round, i, k } })
  }
  await db.batch(ops)
  await db.patch(`doc${round % 3}`, { [`f${i}`]: round, [`g${(round + i) % 3}`]: undefined, h: `${i}-${round}` })
  if ((round + i) % 3 === 0) await db.del(`doc${(round + 1) % 3}`)
  await db.sadd(`set${round % 2}`, `m${(round + i) % 5}`)
  await db.srem(`set${round % 2}`, `m${(round + i + 2) % 5}`)
  if (round % 4 === i) await db.del(`set${(round + 1) % 2}`)
}

async function all<T> (it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const x of it) out.push(x)
  return out
}

async function compactAll (peers: DB[]): Promise<Array<Awaited<ReturnType<DB['compact']>>>> {
  const out = []
  for (const p of peers) out.push(await p.compact())
  return out
}

async function sameEverywhere (peers: DB[]): Promise<void> {
  const first = await dump(peers[0])
  for (const p of peers.slice(1)) {
    expect(p.hash().equals(peers[0].hash()), 'hash').to.equal(true)
    expect(sameDump(await dump(p), first), 'dump').to.equal(true)
  }
}

/** Every database a test opens, closed after it. */
const opened: DB[] = []

function track<T extends DB | DB[]> (x: T): T {
  opened.push(...(Array.isArray(x) ? x : [x]))
  return x
}

describe('compaction', function () {
  this.timeout(120_000)
  afterEach(async () => { await cleanup(...opened.splice(0)) })

  it('three writers churn keys, documents and sets: compacted peers read what an uncompacted one reads, and go on agreeing', async () => {
    const peers = track(await createPeers(3, () => OPTS) as DB[])
    const archive = track(new MeshDB<string, any>(await tempDir('archive'), { ...OPTS, key: peers[0].key, history: 'full' }))
    await archive.open()
    const all = [...peers, archive]
    const sync = async (): Promise<void> => { await meshSync(all, { writers: peers }) }
    for (let round = 0; round < 8; round++) {
      for (let i = 0; i < 3; i++) await churn(peers[i], i, round)
      await sync()
    }
    const before = archive.hash()
    // two rounds: each writer records, then every peer holds every record
    await compactAll(all)
    await sync()
    const reports = await compactAll(all)
    await sync()
    await sameEverywhere(all)
    expect(archive.hash().equals(before)).to.equal(true)
    for (const r of reports.slice(0, 3)) expect(r.blocksCleared, 'blocks cleared on a member').to.be.above(0)
    expect(reports[3].blocksCleared, 'history full clears nothing').to.equal(0)
    for (const p of all) expect(p.stats().tombstonesCollected, 'tombstones collected').to.be.above(0)
    for (const p of all) expect(p.stats().tombstones).to.equal(0)
    for (const p of all) expect(await deadRows(p)).to.deep.equal({ slots: 0, parts: 0, graves: 0 })

    // writes after compaction, to collected keys among others, merge the same on every peer
    for (let round = 8; round < 12; round++) {
      for (let i = 0; i < 3; i++) await churn(peers[i], i, round)
      await sync()
      await sameEverywhere(all)
    }
    await compactAll(all)
    await sync()
    await sameEverywhere(all)

    // a compacted peer restarts, writes on, and agrees
    await peers[0].close()
    const again = track(new MeshDB<string, any>(dirname(peers[0].engine.view.location), OPTS))
    await again.open()
    peers[0] = again
    await churn(again, 0, 12)
    await meshSync([again, peers[1], peers[2], archive], { writers: [again, peers[1], peers[2]] })
    await sameEverywhere([again, peers[1], peers[2], archive])
    const v = await again.verify()
    expect(v.problems).to.deep.equal([])
    expect(v.ok).to.equal(true)
  })

  it('a fresh peer converges from compacted peers alone', async () => {
    const peers = track(await createPeers(3, () => OPTS) as DB[])
    for (let round = 0; round < 6; round++) for (let i = 0; i < 3; i++) await churn(peers[i], i, round, 60)
    await meshSync(peers)
    await compactAll(peers)
    await meshSync(peers)
    const reports = await compactAll(peers)
    for (const r of reports) expect(r.blocksCleared).to.be.above(0)
    const fresh = track(new MeshDB<string, any>(await tempDir('fresh'), { ...OPTS, key: peers[0].key }))
    await fresh.open()
    const links = peers.map((p) => connect(p, fresh))
    try {
      await until([fresh], async () => fresh.hash().equals(peers[0].hash()), () => JSON.stringify(fresh.writers()))
    } finally {
      for (const cut of links) cut()
    }
    await sameEverywhere([...peers, fresh])
  })

  it('a fresh peer reads a short compacted log whose cleared blocks no peer holds', async () => {
    // a log shorter than a sparse catch-up's threshold downloads whole: that download stalls at
    // the first cleared block, and the peer then fetches what the latest tree needs
    const a = track(new MeshDB<string, any>(await tempDir('a'), OPTS))
    await a.open()
    for (let r = 0; r < 6; r++) await a.batch(Array.from({ length: 20 }, (_, i) => ({ type: 'put' as const, key: `k${i}`, value: r })))
    await a.del('k3')
    expect((await a.compact()).blocksCleared).to.be.above(90)
    const fresh = track(new MeshDB<string, any>(await tempDir('fresh'), { ...OPTS, key: a.key }))
    await fresh.open()
    const cut = connect(a, fresh)
    try {
      await until([fresh], async () => fresh.hash().equals(a.hash()), () => JSON.stringify(fresh.writers()))
    } finally {
      cut()
    }
    expect(await fresh.get('k5')).to.equal(5)
    expect(await fresh.get('k3')).to.equal(undefined)
  })

  it('10,000 keys put and deleted by three writers leave no view rows once every member has recorded', async () => {
    const peers = track(await createPeers(3, () => OPTS) as DB[])
    for (let i = 0; i < 3; i++) {
      const keys = Array.from({ length: 3334 }, (_, k) => `w${i}-${String(k).padStart(5, '0')}`).slice(0, i === 2 ? 3332 : 3334)
      for (let s = 0; s < keys.length; s += 1000) await peers[i].batch(keys.slice(s, s + 1000).map((key) => ({ type: 'put' as const, key, value: key })))
      for (let s = 0; s < keys.length; s += 1000) await peers[i].batch(keys.slice(s, s + 1000).map((key) => ({ type: 'del' as const, key })))
    }
    // (20,000 blocks a peer to download and fold)
    await meshSync(peers, { timeout: 90_000 })
    for (const p of peers) expect(p.stats().tombstones).to.equal(10_000)
    await compactAll(peers) // each records; no peer holds the others' records yet
    for (const p of peers) expect(p.stats().tombstones, 'not before every member recorded').to.equal(10_000)
    // a fold that brings the last record collects them
    await meshSync(peers)
    await compactAll(peers)
    for (const p of peers) {
      expect(p.stats().tombstones).to.equal(0)
      expect(p.stats().tombstonesCollected).to.equal(10_000)
      expect(await deadRows(p)).to.deep.equal({ slots: 0, parts: 0, graves: 0 })
      expect(await p.keys().all()).to.deep.equal([])
      expect((await p.verify()).ok).to.equal(true)
    }
  })

  it('an offline member holds stability back; its late entry cannot resurrect a delete, kept or collected', async () => {
    // c's clock runs ten minutes behind: its late write is stamped before the delete it never saw
    const [a, b, c] = track(await createPeers(3, (i) => i === 2 ? { ...OPTS, wallClock: () => Date.now() - 600_000 } : OPTS) as DB[])
    await a.put('k', 'first')
    await a.put('other', 'x')
    await meshSync([a, b, c])
    await a.del('k')
    await meshSync([a, b])
    await compactAll([a, b])
    await meshSync([a, b])
    const held = await a.compact()
    expect(held.tombstones).to.equal(1)
    expect(held.heldBackBy).to.deep.equal([c.writerKey.toString('hex')])
    // offline, c writes k: before the delete by its stamp
    await c.put('k', 'late')
    await meshSync([a, b, c])
    for (const p of [a, b, c]) expect(await p.get('k')).to.equal(undefined)

    // c is removed before it records: it stops counting, the delete is collected, and what c
    // writes past its cut never counts
    await a.removeWriter(c.writerKey)
    await c.put('k', 'later')
    await meshSync([a, b, c])
    await compactAll([a, b])
    await meshSync([a, b, c])
    const after = await compactAll([a, b])
    for (const r of after) expect(r.tombstones).to.equal(0)
    for (const p of [a, b]) expect(p.stats().tombstonesCollected).to.be.at.least(1)
    for (const p of [a, b, c]) expect(await p.get('k')).to.equal(undefined)
    await sameEverywhere([a, b, c])
  })

  it('a writer added concurrently with its adder\'s removal, learnt after a collection, cannot resurrect the delete', async () => {
    const [a, b] = track(await createPeers(2, () => OPTS) as DB[])
    const c = track(new MeshDB<string, any>(await tempDir('c'), { ...OPTS, key: a.key }))
    await c.open()
    await a.put('k', 'first')
    await meshSync([a, b])
    // offline from a: b adds c, and c writes k (before a's delete, by its stamp)
    await b.addWriter(c.writerKey)
    await meshSync([b, c], { writers: [b] })
    await until([c], () => c.writable, () => 'c never became writable')
    await c.put('k', 'late')
    // a deletes k, removes b (its cut: what a holds of b, before the add of c) and collects
    await a.del('k')
    await a.removeWriter(b.writerKey)
    const done = await a.compact()
    expect(done.tombstonesCollected, 'a alone counts now').to.equal(1)
    expect(a.stats().tombstones).to.equal(0)
    // a then reads b's add (stamped before b's removal, so c is a member) and c's older put
    await meshSync([a, b, c])
    expect(a.writers().some((w) => w.key.equals(c.writerKey) && !w.removed), 'c counts').to.equal(true)
    for (const p of [a, b, c]) expect(await p.get('k')).to.equal(undefined)
    await sameEverywhere([a, b, c])
    expect((await a.verify()).ok).to.equal(true)
  })

  it('a member back from offline records, and only then is a delete it missed collected', async () => {
    const [a, b, c] = track(await createPeers(3, () => OPTS) as DB[])
    await a.put('k', 1)
    await meshSync([a, b, c])
    await a.del('k')
    await meshSync([a, b])
    await compactAll([a, b])
    await meshSync([a, b])
    expect((await a.compact()).tombstones).to.equal(1)
    await meshSync([a, b, c])
    await c.compact() // c folded the delete and records it
    await meshSync([a, b, c])
    const r = await a.compact()
    expect(r.tombstones).to.equal(0)
    expect(r.heldBackBy).to.deep.equal([])
    // c's next write to k is stamped after the delete it folded: it wins
    await c.put('k', 2)
    await meshSync([a, b, c])
    for (const p of [a, b, c]) expect(await p.get('k')).to.equal(2)
  })

  it('a member that stayed away catches up from compacted peers alone: the horizon waited for its record', async () => {
    const peers = track(await createPeers(3, () => OPTS) as DB[])
    const [a, b, c] = peers
    for (let round = 0; round < 3; round++) for (let i = 0; i < 3; i++) await churn(peers[i], i, round)
    await meshSync(peers)
    await compactAll(peers)
    await meshSync(peers)
    // c goes away; a and b write on and compact as often as they like
    for (let round = 3; round < 9; round++) {
      for (let i = 0; i < 2; i++) await churn(peers[i], i, round)
      await meshSync([a, b])
      const [ra] = await compactAll([a, b])
      expect(ra.heldBackBy).to.include(c.writerKey.toString('hex'))
    }
    const cleared = a.stats().blocksCleared + b.stats().blocksCleared
    expect(cleared, 'blocks below the horizon c had recorded').to.be.above(0)
    // c folds on from its checkpoints: every block it reads was kept
    await meshSync(peers)
    await sameEverywhere(peers)
    await compactAll(peers)
    await meshSync(peers)
    const after = await compactAll(peers)
    expect(after.map((r) => r.heldBackBy)).to.deep.equal([[], [], []])
    expect(a.stats().blocksCleared).to.be.above(cleared / 2)
    await sameEverywhere(peers)
  })

  it('a removed member bounds every log\'s horizon at its last record until it records past its removal', async () => {
    const peers = track(await createPeers(3, () => OPTS) as DB[])
    const [a, b, c] = peers
    const aId = a.writerKey.toString('hex')
    for (let round = 0; round < 3; round++) for (let i = 0; i < 3; i++) await churn(peers[i], i, round)
    await meshSync(peers)
    await compactAll(peers)
    await meshSync(peers)
    // c's last record before it goes away: how far it had folded a's log
    const cuts = await readRecord(c.engine.own, c.engine.own.core.length)
    const recorded = cuts?.cuts.get(aId) as number
    expect(recorded).to.be.above(1)
    // a removes c, which may still hold removals stamped before that, not read here: one could
    // cut a's log down to what c had seen of it
    await a.removeWriter(c.writerKey)
    for (let round = 3; round < 9; round++) {
      for (let i = 0; i < 2; i++) await churn(peers[i], i, round)
      await meshSync([a, b])
      const [ra] = await compactAll([a, b])
      expect(ra.heldBackBy).to.include(c.writerKey.toString('hex'))
    }
    expect(a.engine.writers.get(aId)?.clearedTo, 'a\'s horizon at c\'s record').to.equal(recorded)
    expect(a.engine.checkpoints.get(aId)).to.be.above(recorded + 20)
    // c comes back, folds its removal and appends a last record (one): nothing it appends later counts
    const away = ownLength(c)
    await meshSync(peers, { writers: [a, b] })
    await until([c], () => ownLength(c) > away, () => 'c appended no last record')
    await meshSync(peers, { writers: [a, b, c] })
    for (const p of [a, b]) await until([p], async () => (await p.compact()).heldBackBy.length === 0, () => 'c still bounds the horizon')
    expect(a.engine.writers.get(aId)?.clearedTo).to.be.above(recorded + 20)
    expect(c.writable).to.equal(false)
    await meshSync(peers, { writers: [a, b, c] })
    expect(ownLength(c), 'one last record, once').to.equal(away + 1)
    await sameEverywhere(peers)
  })

  it('automatic records and compaction: tombstones and blocks go without a compact() call', async () => {
    const peers = track(await createPeers(2, () => ({ ...OPTS, cutsEvery: 1, autoCompact: 1 })) as DB[])
    for (let round = 0; round < 4; round++) for (let i = 0; i < 2; i++) await churn(peers[i], i, round)
    const links = [connect(peers[0], peers[1])]
    try {
      await until(peers, async () => {
        for (const p of peers) await p.update()
        return peers.every((p) => p.stats().blocksCleared > 0 && p.stats().tombstones === 0 && p.stats().tombstonesCollected > 0)
      }, () => JSON.stringify(peers.map((p) => p.stats())))
    } finally {
      for (const cut of links) cut()
    }
    await sameEverywhere(peers)
  })

  it('an encrypted database collects its tombstones and keeps its log blocks: a restarted member and a new one read on', async () => {
    const a = track(new MeshDB<string, any>(await tempDir('a'), { ...OPTS, encrypted: true }))
    await a.open()
    const b = track(new MeshDB<string, any>(await tempDir('b'), { ...OPTS, key: a.key, encryptionKey: a.encryptionKey as Buffer }))
    await b.open()
    await a.addWriter(b.writerKey)
    const peers = [a, b]
    await meshSync(peers)
    for (let round = 0; round < 5; round++) for (let i = 0; i < 2; i++) await churn(peers[i], i, round)
    await meshSync(peers)
    await compactAll(peers)
    await meshSync(peers)
    const reports = await compactAll(peers)
    for (const r of reports) expect([r.blocksCleared, r.tombstones]).to.deep.equal([0, 0])
    for (const p of peers) expect(p.stats().tombstonesCollected).to.be.above(0)
    await sameEverywhere(peers)
    const dir = dirname(b.engine.view.location)
    await b.close()
    const b2 = track(new MeshDB<string, any>(dir, OPTS))
    await b2.open()
    expect(b2.writable).to.equal(true)
    await churn(b2, 1, 5)
    const c = track(new MeshDB<string, any>(await tempDir('c'), { ...OPTS, key: a.key, encryptionKey: a.encryptionKey as Buffer }))
    await c.open()
    await a.addWriter(c.writerKey)
    await meshSync([a, b2, c])
    await sameEverywhere([a, b2, c])
    await c.put('from-c', 1)
    await meshSync([a, b2, c])
    expect(await b2.get('from-c')).to.equal(1)
  })

  it('a removal whose cut falls between a writer\'s entries re-merges from the logs: the older entry still loses to the dropped delete', async () => {
    const peers = track(await createPeers(3, () => OPTS) as DB[])
    const [a, y, x] = peers
    await x.put('K', 1)
    await meshSync(peers)
    await y.del('K')
    await meshSync(peers)
    for (let i = 0; i < 2; i++) {
      await compactAll(peers)
      await meshSync(peers)
    }
    for (const p of peers) expect(p.stats().tombstonesCollected).to.equal(1)
    await x.put('K', 5)
    await meshSync([x, y])
    expect(await y.get('K')).to.equal(5)
    // a never saw K=5: its removal cuts x between its two puts
    await a.removeWriter(x.writerKey)
    await meshSync([a, y])
    for (const p of [a, y]) expect(await p.get('K')).to.equal(undefined)
    expect(a.hash().equals(y.hash())).to.equal(true)
    expect((await y.verify()).problems).to.deep.equal([])
  })

  it('a delete stamped by a clock ahead stays in force: a later write by a member whose clock follows it only up to maxDrift still loses', async () => {
    const peers = track(await createPeers(3, (i) => i === 2 ? { ...OPTS, wallClock: () => Date.now() + 600_000 } : OPTS) as DB[])
    const [a, b, c] = peers
    await a.put('k', 'v')
    await meshSync(peers)
    await c.del('k')
    await meshSync(peers)
    for (let i = 0; i < 2; i++) {
      await compactAll(peers)
      await meshSync(peers)
    }
    // the records' clocks (a's, b's) are behind the delete's stamp: it is not dropped yet
    expect(peers.map((p) => p.stats().tombstones)).to.deep.equal([1, 1, 1])
    await b.put('k', 'new')
    await meshSync(peers)
    for (const p of peers) expect(await p.get('k')).to.equal(undefined)
    const fresh = track(new MeshDB<string, any>(await tempDir('fresh'), { ...OPTS, key: a.key }))
    await fresh.open()
    await meshSync([...peers, fresh], { writers: peers })
    await sameEverywhere([...peers, fresh])
  })

  it('a set remove written on a peer that still holds a set\'s tombstone reads the same where it was dropped', async () => {
    const peers = track(await createPeers(3, () => OPTS) as DB[])
    const [a, y, w] = peers
    await w.sadd('T', 'm')
    await w.patch('D', { f1: 1 })
    await meshSync(peers)
    await y.del('T')
    await y.patch('D', { f1: undefined })
    await meshSync(peers)
    await w.compact()
    await meshSync(peers)
    for (let i = 0; i < 2; i++) {
      await compactAll([a, y])
      await meshSync([a, y])
    }
    expect([a, y, w].map((p) => p.stats().tombstones)).to.deep.equal([0, 0, 1])
    await w.srem('T', 'm')
    await w.patch('D', { f2: 2 })
    await meshSync(peers)
    await sameEverywhere(peers)
    expect(await a.get('T')).to.equal(undefined)
  })

  it('diff and checkout of a cleared range fail with MESHBEE_HISTORY_CLEARED; a peer with full history serves them', async () => {
    const dir = await tempDir('a')
    const a = track(new MeshDB<string, any>(dir, OPTS))
    await a.open()
    for (let r = 0; r < 10; r++) await a.batch(Array.from({ length: 20 }, (_, i) => ({ type: 'put' as const, key: `k${i}`, value: r })))
    const archive = track(new MeshDB<string, any>(await tempDir('archive'), { ...OPTS, key: a.key, history: 'full' }))
    await archive.open()
    await meshSync([a, archive], { writers: [a] })
    const wanted: unknown[] = []
    for await (const ch of archive.diff(a.writerKey, { from: 21, to: 61 })) wanted.push(ch)
    const old = await archive.checkout([[a.writerKey, 61]]).iterator().all()
    const r = await a.compact()
    expect(r.blocksCleared).to.be.above(100)

    const diffErr = await rejects((async () => { for await (const _ of a.diff(a.writerKey, { from: 21, to: 61 })) {} })()) // eslint-disable-line no-empty
    expect(diffErr.code).to.equal('MESHBEE_HISTORY_CLEARED')
    // (abstract-level fails the open of the read-only checkout, with the cause)
    const checkoutErr = await rejects(a.checkout([[a.writerKey, 61]]).open()) as Error & { cause?: { code?: string } }
    expect(checkoutErr.cause?.code).to.equal('MESHBEE_HISTORY_CLEARED')
    // the latest tree is kept: reads from it still work
    const latest: unknown[] = []
    for await (const ch of a.diff(a.writerKey, { from: 0 })) latest.push(ch)
    expect(latest).to.have.length(20)

    // with the archive online, the cleared history comes from it
    const cut = connect(a, archive)
    try {
      const got: unknown[] = []
      for await (const ch of a.diff(a.writerKey, { from: 21, to: 61 })) got.push(ch)
      expect(got).to.deep.equal(wanted)
      expect(await a.checkout([[a.writerKey, 61]]).iterator().all()).to.deep.equal(old)
    } finally {
      cut()
    }
  })

  it('the change feed refuses a resume from before a collected deletion with MESHBEE_FEED_COMPACTED', async () => {
    const a = track(new MeshDB<string, any>(await tempDir('a'), OPTS))
    await a.open()
    await a.put('x', 1)
    await a.put('y', 1)
    const seq = (await all(a.changes())).at(-1)?.seq ?? 0
    await a.del('x')
    await a.put('z', 1)
    // before compaction the feed lists the deletion
    expect((await all(a.changes({ since: seq }))).map((c) => [c.type, c.key])).to.deep.equal([['del', 'x'], ['put', 'z']])
    const r = await a.compact()
    expect(r.tombstonesCollected).to.equal(1)
    const err = await rejects(all(a.changes({ since: seq })))
    expect(err.code).to.equal('MESHBEE_FEED_COMPACTED')
    expect((await all(a.changes())).map((c) => c.key)).to.deep.equal(['y', 'z'])
  })

  it('history is remembered by the directory; the counters survive a reopen; compact() emits what it reclaimed', async () => {
    const dir = await tempDir('a')
    let a = track(new MeshDB<string, any>(dir, { ...OPTS, history: 'full' }))
    await a.open()
    for (let r = 0; r < 4; r++) await a.batch(Array.from({ length: 20 }, (_, i) => ({ type: 'put' as const, key: `k${i}`, value: r })))
    await a.del('k1')
    await a.close()
    // opened without the option: still full
    a = track(new MeshDB<string, any>(dir, OPTS))
    await a.open()
    const events: unknown[] = []
    a.on('compact', (done) => events.push(done))
    const full = await a.compact()
    expect([full.blocksCleared, full.tombstonesCollected]).to.deep.equal([0, 1])
    expect(events).to.deep.equal([{ blocksCleared: 0, tombstonesCollected: 1 }])
    await a.close()
    a = track(new MeshDB<string, any>(dir, { ...OPTS, history: 'live' }))
    await a.open()
    const live = await a.compact()
    expect(live.blocksCleared).to.be.above(50)
    const stats = a.stats()
    await a.close()
    a = track(new MeshDB<string, any>(dir, OPTS))
    await a.open()
    expect([a.stats().blocksCleared, a.stats().tombstonesCollected]).to.deep.equal([stats.blocksCleared, 1])
    expect(a.stats().disk.logs).to.be.above(0)
    expect(a.stats().disk.view).to.be.above(0)
  })

  it('a lost view is rebuilt from compacted logs; options are checked', async () => {
    const dir = await tempDir('a')
    let a = track(new MeshDB<string, any>(dir, OPTS))
    await a.open()
    for (let r = 0; r < 5; r++) await a.batch(Array.from({ length: 30 }, (_, i) => ({ type: r === 4 && i % 2 === 0 ? 'del' as const : 'put' as const, key: `k${i}`, value: r })))
    await a.patch('doc', { x: 1, y: 2 })
    await a.patch('doc', { y: undefined })
    await a.compact()
    const hash = a.hash()
    const rows = await dump(a)
    await a.close()
    await rm(join(dir, 'view'), { recursive: true, force: true })
    a = track(new MeshDB<string, any>(dir, OPTS))
    await a.open()
    expect(a.hash().equals(hash)).to.equal(true)
    expect(sameDump(await dump(a), rows)).to.equal(true)
    await a.put('k1', 'after')
    expect(await a.get('k1')).to.equal('after')
    await a.close()

    for (const bad of [{ history: 'some' }, { autoCompact: -1 }, { cutsEvery: 1.5 }]) {
      expect(() => new MeshDB(dir, bad as never)).to.throw().with.property('code', 'MESHBEE_INVALID_ARGUMENT')
    }
    const b = track(new MeshDB<string, any>(dir, OPTS))
    await b.open()
    await rejects(b.compact({ onProgress: 5 as never })).then((e) => expect(e.code).to.equal('MESHBEE_INVALID_ARGUMENT'))
    const phases = new Set<string>()
    await b.compact({ onProgress: (p) => { phases.add(p.phase) } })
    expect(phases.has('record')).to.equal(true)
    await b.close()
  })
})
