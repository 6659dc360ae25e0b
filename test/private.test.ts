/**
 * Private databases (lib/crypt.ts, lib/epochs.ts, lib/privacy.ts): every block of every member log
 * sealed under a key epoch; membership stored clear; a peer opened by key alone seeds blind; a
 * removal moves the remaining members to an epoch the removed device never receives.
 */
import { expect } from 'chai'
import { readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { MeshDB } from '../index.js'
import { KEY_GRANT } from '../lib/entry.js'
import { cleanup, connect, holdBlocks, meshSync, ownLength, rejects, tempDir, until } from './helpers/peers.js'

type DB = MeshDB<string, string>

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

/** The directory of each database made here. */
const dirOf = new Map<DB, string>()

/** A new encrypted database and `n - 1` more writers given its key, all synced and writable. */
async function privatePeers (n: number): Promise<DB[]> {
  const dir = await tempDir('a')
  const a = new MeshDB<string, string>(dir, { encrypted: true })
  dirOf.set(a, dir)
  await a.open()
  const peers = [a]
  for (let i = 1; i < n; i++) {
    const pdir = await tempDir(String.fromCharCode(97 + i))
    const p = new MeshDB<string, string>(pdir, { key: a.key, encryptionKey: a.encryptionKey as Buffer })
    dirOf.set(p, pdir)
    await p.open()
    await a.addWriter(p.writerKey)
    peers.push(p)
  }
  await meshSync(peers)
  for (const p of peers) expect(p.writable).to.equal(true)
  return peers
}

/** Every file under `dir`. */
async function files (dir: string): Promise<string[]> {
  const out: string[] = []
  for (const f of await readdir(dir)) {
    const p = join(dir, f)
    if ((await stat(p)).isDirectory()) out.push(...await files(p))
    else out.push(p)
  }
  return out
}

/** The needles found in any file under `dir` (none: the directory holds none of those bytes). */
async function found (dir: string, needles: string[]): Promise<string[]> {
  const hits: string[] = []
  for (const f of await files(dir)) {
    const bytes = await readFile(f)
    for (const n of needles) if (bytes.includes(Buffer.from(n))) hits.push(`${n} in ${f}`)
  }
  return hits
}

/** Waits until `peer` holds `owner`'s whole log (it may not be able to read it). */
async function holds (peer: DB, owner: DB): Promise<void> {
  await until([peer, owner], async () => {
    await peer.update()
    const core = peer.engine.writers.get(hex(owner.writerKey))?.core
    return core !== undefined && core.contiguousLength === ownLength(owner) && core.length === ownLength(owner)
  }, () => `holds ${peer.engine.writers.get(hex(owner.writerKey))?.core.contiguousLength} of ${ownLength(owner)}`)
}

/** Whether every block of `owner`'s log at or after `from`, as `peer` holds it, fails to decrypt there with MESHBEE_NO_READ_KEY (clear membership blocks aside). */
async function sealedFrom (peer: DB, owner: DB, from: number): Promise<{ sealed: number, readable: number }> {
  const core = peer.engine.writers.get(hex(owner.writerKey))?.core
  if (core === undefined) throw new Error('no log')
  let sealed = 0
  let readable = 0
  for (let i = from; i < core.length; i++) {
    const raw = await core.get(i, { wait: false, raw: true } as never) as Buffer
    if (raw[0] === 0) continue // a clear membership block
    try {
      await core.get(i, { wait: false })
      readable++
    } catch (err) {
      expect((err as { code?: string }).code).to.equal('MESHBEE_NO_READ_KEY')
      sealed++
    }
  }
  return { sealed, readable }
}

describe('private databases', function () {
  this.timeout(120_000)
  afterEach(async () => { await cleanup() })

  it('members read each other\'s sealed writes; a peer with the key alone seeds blind and holds none of the bytes', async () => {
    const [a, b, c] = await privatePeers(3)
    expect(a.privacy).to.equal('encrypted')
    expect(a.encryptionKey).to.have.length(32)
    await a.put('alpha-secret-key', 'alpha-SECRET-value')
    await b.patch('doc-secret-key', { title: 'beta-SECRET-title' })
    await c.sadd('set-secret-key', 'gamma-SECRET-member')
    await meshSync([a, b, c])
    for (const p of [a, b, c]) {
      expect(await p.get('alpha-secret-key')).to.equal('alpha-SECRET-value')
      expect(JSON.parse(await p.get('doc-secret-key') as string)).to.deep.equal({ title: 'beta-SECRET-title' })
      expect(await p.smembers('set-secret-key')).to.deep.equal(['gamma-SECRET-member'])
      expect(p.hash().equals(a.hash())).to.equal(true)
    }
    // a seeder that knows the key alone: it downloads and verifies every log…
    const sdir = await tempDir('s')
    const s = new MeshDB<string, string>(sdir, { key: a.key })
    await s.open()
    const cuts = [connect(a, s), connect(b, s), connect(c, s)]
    for (const p of [a, b, c]) await holds(s, p)
    for (const cut of cuts) cut()
    expect(s.privacy).to.equal('blind')
    expect(s.writable).to.equal(false)
    // …reads nothing…
    expect((await rejects(s.get('alpha-secret-key'))).code).to.equal('MESHBEE_BLIND')
    expect(() => s.iterator()).to.throw().with.property('code', 'MESHBEE_BLIND')
    for (const read of [s.versions('alpha-secret-key'), s.smembers('set-secret-key'), s.typeOf('doc-secret-key'), s.changes({ since: 0 }).next(), s.verify()]) {
      expect((await rejects(read)).code).to.equal('MESHBEE_BLIND')
    }
    await s.close()
    // …and no file of it holds a value, a key or a field name in clear
    expect(await found(sdir, ['alpha-SECRET-value', 'beta-SECRET-title', 'gamma-SECRET-member', 'alpha-secret-key', 'doc-secret-key', 'set-secret-key'])).to.deep.equal([])
    // the members' own directories hold the values only in their views (LevelDB), never in the logs
    for (const p of [a, b]) {
      const logs = await files(join(dirOf.get(p) as string, 'cores'))
      for (const f of logs) expect((await readFile(f)).includes(Buffer.from('alpha-SECRET-value')), f).to.equal(false)
    }
  })

  it('a blind seeder carries writes between two devices never online together', async () => {
    const [a, b] = await privatePeers(2)
    const s = new MeshDB<string, string>(await tempDir('s'), { key: a.key })
    await s.open()
    await a.put('from-a', 'written while b is away')
    let cut = connect(a, s)
    await holds(s, a)
    cut()
    cut = connect(b, s)
    await until([b], () => b.get('from-a').then((v) => v === 'written while b is away'), () => 'b never read a\'s write through the seeder')
    await b.put('from-b', 'written while a is away')
    await holds(s, b)
    cut()
    cut = connect(a, s)
    await until([a], () => a.get('from-b').then((v) => v === 'written while a is away'), () => 'a never read b\'s write through the seeder')
    cut()
    expect(a.hash().equals(b.hash())).to.equal(true)
  })

  it('a removed writer still replicating gets the logs but decrypts nothing written after its removal; the others read everything', async () => {
    const [a, b, c] = await privatePeers(3)
    await a.put('before', 'everyone read this')
    await meshSync([a, b, c])
    expect(await b.get('before')).to.equal('everyone read this')
    const cutAt = ownLength(a)
    await a.removeWriter(b.writerKey)
    await a.put('after-a', 'not for b')
    await meshSync([a, c])
    await c.put('after-c', 'not for b either')
    await meshSync([a, c])
    // b replicates with both and holds both logs whole
    const cuts = [connect(a, b), connect(c, b)]
    await holds(b, a)
    await holds(b, c)
    for (const cut of cuts) cut()
    expect(b.writable).to.equal(false)
    const fromA = await sealedFrom(b, a, cutAt)
    expect(fromA.sealed).to.be.greaterThan(0)
    expect(fromA.readable).to.equal(0)
    expect((await sealedFrom(b, c, 1)).sealed).to.be.greaterThan(0)
    expect(await b.get('after-a')).to.equal(undefined)
    expect(await b.get('after-c')).to.equal(undefined)
    expect(await b.get('before')).to.equal('everyone read this') // read before the removal: still readable to it
    expect(b.stats().lockedReads).to.be.greaterThan(0)
    // inspection that reaches a sealed block says so, rather than answering wrong
    const diffing = (async () => { for await (const _ of b.diff(a.writerKey, { from: cutAt })) void _ })()
    expect((await rejects(diffing)).code).to.equal('MESHBEE_NO_READ_KEY')
    for (const p of [a, c]) {
      expect(await p.get('after-a')).to.equal('not for b')
      expect(await p.get('after-c')).to.equal('not for b either')
    }
    expect(a.hash().equals(c.hash())).to.equal(true)
  })

  it('two concurrent removals settle the same way everywhere: the remaining members read all, neither removed device reads what follows', async () => {
    const [a, b, c, d] = await privatePeers(4)
    // a removes c while b removes d, neither seeing the other's removal
    await a.removeWriter(c.writerKey)
    await b.removeWriter(d.writerKey)
    await a.put('a-after', 'secret of a')
    await b.put('b-after', 'secret of b')
    await meshSync([a, b])
    await a.put('a-settled', 'after both removals')
    await b.put('b-settled', 'after both removals too')
    await meshSync([a, b])
    for (const p of [a, b]) {
      for (const [k, v] of [['a-after', 'secret of a'], ['b-after', 'secret of b'], ['a-settled', 'after both removals'], ['b-settled', 'after both removals too']]) {
        expect(await p.get(k), k).to.equal(v)
      }
    }
    expect(a.hash().equals(b.hash())).to.equal(true)
    // c and d get the logs; each may have been handed the other's removal-time epoch, never the settled one
    for (const removed of [c, d]) {
      const cuts = [connect(a, removed), connect(b, removed)]
      await holds(removed, a)
      await holds(removed, b)
      for (const cut of cuts) cut()
      expect(await removed.get('a-settled')).to.equal(undefined)
      expect(await removed.get('b-settled')).to.equal(undefined)
      expect((await sealedFrom(removed, a, 1)).sealed).to.be.greaterThan(0)
      expect(removed.stats().lockedReads).to.be.greaterThan(0)
    }
  })

  it('a reader reads every epoch, old and new, cannot write, and stops reading what follows its removal', async () => {
    const [a, b, c] = await privatePeers(3)
    await a.put('old', 'history')
    await a.removeWriter(c.writerKey) // an epoch change before the reader arrives
    await a.put('newer', 'after the first epoch')
    await meshSync([a, b])
    const r = new MeshDB<string, string>(await tempDir('r'), { key: a.key, encryptionKey: a.encryptionKey as Buffer })
    await r.open()
    await a.addReader(r.writerKey)
    await meshSync([a, b, r])
    expect(await r.get('old')).to.equal('history')
    expect(await r.get('newer')).to.equal('after the first epoch')
    expect(r.writable).to.equal(false)
    expect(a.writers().find((w) => w.key.equals(r.writerKey))).to.include({ reader: true, member: true, cut: 0 })
    expect((await rejects(r.put('x', 'y'))).code).to.equal('MESHBEE_NOT_WRITABLE')
    expect(r.writers().find((w) => w.key.equals(r.writerKey))?.removed).to.equal(false)
    await b.removeWriter(r.writerKey)
    await b.put('later', 'not for the reader')
    await meshSync([a, b])
    const cut = connect(b, r)
    await holds(r, b)
    cut()
    expect(await r.get('later')).to.equal(undefined)
    expect(await a.get('later')).to.equal('not for the reader')
  })

  it('a writer added concurrently with a removal reads everything once it settles', async () => {
    const [a, b, c] = await privatePeers(3)
    await a.put('early', 'one')
    const d = new MeshDB<string, string>(await tempDir('d'), { key: a.key, encryptionKey: a.encryptionKey as Buffer })
    await d.open()
    // a removes c while b adds d
    await a.removeWriter(c.writerKey)
    await a.put('a-secret', 'after c left')
    await b.addWriter(d.writerKey)
    await meshSync([b, d])
    await d.put('d-write', 'from the new member')
    await meshSync([a, b, d])
    for (const p of [a, b, d]) {
      expect(await p.get('early'), 'early').to.equal('one')
      expect(await p.get('a-secret'), 'a-secret').to.equal('after c left')
      expect(await p.get('d-write'), 'd-write').to.equal('from the new member')
      expect(p.hash().equals(a.hash())).to.equal(true)
    }
  })

  it('a device that removed itself hands the epoch only it held to a member added concurrently: its entries below the cut stay readable', async () => {
    const [a, b] = await privatePeers(2)
    const c = new MeshDB<string, string>(await tempDir('c'), { key: a.key, encryptionKey: a.encryptionKey as Buffer })
    await c.open()
    // offline from a: b adds c (stamped before a's removal of b, so it counts)
    await b.addWriter(c.writerKey)
    await meshSync([b, c])
    await until([c], () => c.writable, () => 'c never became writable')
    // a removes b, writes under a new epoch granted to itself alone (it does not know c), and
    // removes itself: no live member holds that epoch
    await a.removeWriter(b.writerKey)
    await a.put('a-last', 'sealed under the epoch a made')
    const before = [...a.engine.privacy.keyring.ids()]
    await a.removeWriter(a.writerKey)
    expect(a.writable).to.equal(false)
    // (b, removed, never reads a's last entry: c carries b's log)
    await meshSync([a, c])
    expect(c.writable).to.equal(true)
    expect(a.writers().find((w) => w.key.equals(a.writerKey))?.removed).to.equal(true)
    // a's entry lies below its cut: it counts, and c reads it with the key a handed over
    expect(await c.get('a-last')).to.equal('sealed under the epoch a made')
    for (const id of before) expect(c.engine.privacy.keyring.has(id), `c holds epoch ${id}`).to.equal(true)
    // the handover is written once
    const handedAt = ownLength(a)
    await c.put('c-first', 'sealed under an epoch a never gets')
    const cut = connect(a, c)
    await until([a], () => a.writers().find((w) => w.key.equals(c.writerKey))?.length === ownLength(c), () => 'a never held c\'s write')
    await a.update()
    cut()
    expect(ownLength(a)).to.equal(handedAt)
    // the handed-over epoch counts for nothing: c never seals under it
    await c.put('c-next', 'under an epoch of its own')
    expect(before).to.not.include(c.engine.privacy.keyring.current?.toString('hex'))
    expect(await c.get('c-next')).to.equal('under an epoch of its own')
  })

  it('reopens and reads; refuses encrypted: true on an existing plain database and a malformed encryptionKey', async () => {
    const dir = await tempDir('a')
    let a = new MeshDB<string, string>(dir, { encrypted: true })
    await a.put('k', 'v')
    await a.close()
    a = new MeshDB<string, string>(dir)
    await a.open()
    expect(a.privacy).to.equal('encrypted')
    expect(await a.get('k')).to.equal('v')
    await a.put('k2', 'v2')
    expect(await a.get('k2')).to.equal('v2')
    await a.close()
    const plainDir = await tempDir('p')
    const p = new MeshDB<string, string>(plainDir)
    await p.put('k', 'v')
    await p.close()
    const again = new MeshDB<string, string>(plainDir, { encrypted: true })
    const err = await rejects(again.open())
    expect((err as { cause?: { code?: string } }).cause?.code).to.equal('MESHBEE_INVALID_ARGUMENT')
    expect(() => new MeshDB(plainDir, { encryptionKey: 'nope' })).to.throw().with.property('code', 'MESHBEE_INVALID_ARGUMENT')
    const reopened = new MeshDB<string, string>(plainDir)
    expect(await reopened.get('k')).to.equal('v')
    expect(reopened.privacy).to.equal('plain')
    await reopened.close()
  })
})

describe('private databases: races and misuse', function () {
  this.timeout(120_000)
  afterEach(async () => { await cleanup() })

  it('a member that has not folded a removal never grants the epoch made after it to the removed device', async () => {
    const [a, b, c, r] = await privatePeers(4)
    const cDir = dirOf.get(c) as string
    await a.removeWriter(r.writerKey)
    await meshSync([a, b])
    await b.put('b-after', 'not for r') // b makes a new epoch, granted to a, b and c
    const epochs = b.engine.privacy.keyring.ids().filter((id) => !r.engine.privacy.keyring.has(id))
    expect(epochs).to.have.length.greaterThan(0)
    // c takes b's log alone (not a's, which holds the removal), then folds and grants what it finds due
    await c.close()
    await holdBlocks(b, cDir, 0, ownLength(b))
    const c2 = new MeshDB<string, string>(cDir)
    await c2.open()
    await c2.update()
    expect(c2.writers().find((w) => w.key.equals(r.writerKey))?.removed).to.equal(false) // c has not seen the removal
    expect(await c2.get('b-after')).to.equal('not for r') // it holds the new epoch
    const grantsToR = [...c2.engine.own.records.values()].filter((x) => x.entry.type === KEY_GRANT && hex(x.entry.writer) === hex(r.writerKey)).map((x) => hex((x.entry as { epoch: Uint8Array }).epoch))
    for (const id of epochs) expect(grantsToR, 'c granted the new epoch to r').to.not.include(id)
    // r meets everyone, and still holds none of the new epochs
    const cuts = [connect(r, a), connect(r, b), connect(r, c2)]
    await holds(r, b)
    await holds(r, c2)
    for (const cut of cuts) cut()
    for (const id of epochs) expect(r.engine.privacy.keyring.has(id)).to.equal(false)
    expect(await r.get('b-after')).to.equal(undefined)
    await c2.close()
  })

  it('a blind seeder added as a writer stays blind: it writes nothing (MESHBEE_BLIND)', async () => {
    const [a] = await privatePeers(1)
    const s = new MeshDB<string, string>(await tempDir('s'), { key: a.key })
    await s.open()
    await a.put('x', 'y')
    await a.addWriter(s.writerKey)
    const cut = connect(a, s)
    await holds(s, a)
    cut()
    expect(s.privacy).to.equal('blind')
    expect(s.writable).to.equal(false)
    expect((await rejects(s.put('leak', 'plaintext'))).code).to.equal('MESHBEE_BLIND')
    expect((await rejects(s.verify())).code).to.equal('MESHBEE_BLIND')
    expect(s.writers().find((w) => w.local)?.length).to.equal(0)
  })
})

describe('private databases: an epoch made by a device already removed', function () {
  this.timeout(120_000)
  afterEach(async () => { await cleanup() })

  it('members never seal under an epoch a device made after its removal (its records past its cut do not count, but it holds the key)', async () => {
    const [a, b, c, r] = await privatePeers(4)
    // b removes r; r, not knowing, removes c and writes: it makes an epoch E
    await b.removeWriter(r.writerKey)
    await r.removeWriter(c.writerKey)
    await r.put('from-r', 'after its removal')
    const madeByR = r.engine.privacy.keyring.ids()
    // a meets r before it hears of the removal: it takes E (r's grants count for it then)…
    let cut = connect(a, r)
    await holds(a, r)
    cut()
    await a.update()
    expect(madeByR.filter((id) => a.engine.privacy.keyring.has(id)).length).to.be.greaterThan(1)
    // …and grants it on to a member added now
    const e = new MeshDB<string, string>(await tempDir('e'), { key: a.key, encryptionKey: a.encryptionKey as Buffer })
    await e.open()
    await a.addWriter(e.writerKey)
    await meshSync([a, e])
    // then a hears of r's removal, and writes
    cut = connect(a, b)
    await holds(a, b)
    cut()
    await a.update()
    expect(a.writers().find((w) => w.key.equals(r.writerKey))?.removed).to.equal(true)
    await a.put('secret', 'not for r')
    const core = a.engine.own.core
    // the newest sealed block is the write's (key bookkeeping after it is clear)
    let raw: Buffer = Buffer.alloc(0)
    for (let i = core.length - 1; i >= 1 && raw[0] !== 1; i--) raw = await core.get(i, { raw: true } as never) as Buffer
    expect(raw[0]).to.equal(1)
    expect(madeByR, 'a sealed its write under an epoch r holds').to.not.include(raw.subarray(8, 16).toString('hex'))
    await e.close()
  })
})
