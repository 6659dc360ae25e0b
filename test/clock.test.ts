/**
 * The lead rule (lib/entry.ts, crdt/hlc.ts `cap`): a writer's stamps run at most MAX_LEAD past the
 * newest stamp it has seen from another writer, and a version-3 entry that says otherwise is
 * rejected by every peer alike. Clocks here are virtual: each peer reads `t` plus its own offset.
 */
import { expect } from 'chai'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { MeshDB } from '../index.js'
import { MAX_LEAD, PUT, dataKey, decodeEntry, encodeEntry } from '../lib/entry.js'
import type { WriterInfo } from '../lib/types.js'
import { stamp } from '../crdt/hlc.js'
import { cleanup, createPeers, meshSync, ownLength, rejects, tempDir } from './helpers/peers.js'

type DB = MeshDB<string, any>

const DAY = 24 * 60 * 60 * 1000
const T0 = 1_700_000_000_000

function info (db: DB, writer: Uint8Array): WriterInfo {
  const w = db.writers().find((x) => x.key.equals(writer))
  if (w === undefined) throw new Error('no such writer')
  return w
}

/** The stamp of `db`'s own latest entry for `key`. */
async function ownStamp (db: DB, key: string): Promise<{ wall: number, counter: number }> {
  const mine = (await db.versions(key)).find((v) => v.writer.equals(db.writerKey))
  if (mine === undefined) throw new Error('no own version of ' + key)
  return mine.stamp
}

describe('clocks: the lead rule', function () {
  this.timeout(60_000)
  let dbs: DB[] = []
  afterEach(async () => { await cleanup(...dbs); dbs = [] })

  it('a writer a day ahead stamps at most MAX_LEAD past what it has seen, never creeping; a later honest write wins; only its own skew shows', async () => {
    let t = T0
    const [a, c, d] = dbs = await createPeers(3, (i) => ({ valueEncoding: 'json', wallClock: i === 2 ? () => t + DAY : () => t }))
    // d has seen a's entries (the adds, stamped at T0): its stamps stop at T0 + MAX_LEAD
    t += 1000
    await d.put('k', 'ahead')
    expect(await ownStamp(d, 'k')).to.deep.equal({ wall: T0 + MAX_LEAD, counter: 0 })

    // an honest write past the bound wins everywhere (without the rule, d's T0 + 1 day would)
    t = T0 + MAX_LEAD + 1000
    await a.put('k', 'honest')
    await meshSync([a, c, d])
    for (const db of [a, c, d]) expect(await db.get('k')).to.equal('honest')

    // writing on without seeing anything new does not move d's stamps past the bound: the
    // counter orders them
    const seen = (await ownStamp(a, 'k')).wall
    for (let i = 0; i < 50; i++) await d.put('n' + i, i)
    const walls = await Promise.all([...Array(50).keys()].map(async (i) => await ownStamp(d, 'n' + i)))
    expect(walls.map((s) => s.wall)).to.deep.equal(walls.map(() => seen + MAX_LEAD))
    expect(walls.map((s) => s.counter)).to.deep.equal([...Array(50).keys()])

    // a follows d's stamps up to maxDrift (60 s) past its own clock; c sees a's clock readings,
    // not those stamps, so a does not look skewed, while d does
    await meshSync([a, d])
    await a.put('x', 1)
    expect((await ownStamp(a, 'x')).wall).to.equal(t + 60_000)
    await meshSync([a, c, d])
    expect(info(c, a.writerKey).maxSkew).to.equal(0)
    expect(info(c, d.writerKey).maxSkew).to.be.within(DAY - 2000, DAY)
    expect(info(a, d.writerKey).maxSkew).to.be.within(DAY - 2000, DAY)
  })

  it('the bound survives a restart (kept in the view, and in the own log when the view is lost); once the clock is fixed it stamps by the clock again', async () => {
    let t = T0
    let offset = DAY
    const a = new MeshDB<string, any>(await tempDir('a'), { valueEncoding: 'json', wallClock: () => t })
    await a.open()
    dbs = [a]
    const dir = await tempDir('d')
    const reopen = async (): Promise<DB> => {
      const db = new MeshDB<string, any>(dir, { key: a.key, valueEncoding: 'json', wallClock: () => t + offset })
      await db.open()
      dbs.push(db)
      return db
    }
    let d = await reopen()
    await a.addWriter(d.writerKey)
    await meshSync([a, d])
    await d.put('k', 'first')
    expect((await ownStamp(d, 'k')).wall).to.equal(T0 + MAX_LEAD)
    await d.close()
    d = await reopen()
    await d.put('k', 'after a restart')
    expect(await ownStamp(d, 'k')).to.deep.equal({ wall: T0 + MAX_LEAD, counter: 1 })

    // the view lost: what the last own entry had seen still bounds the clock
    await d.close()
    await rm(join(dir, 'view'), { recursive: true, force: true })
    d = await reopen()
    await d.put('k', 'after a lost view')
    expect(await ownStamp(d, 'k')).to.deep.equal({ wall: T0 + MAX_LEAD, counter: 2 })

    // the clock fixed and past d's last stamp: while a has written nothing newer, d still stamps at
    // the cap; once it has seen a's current stamps it stamps by its clock, and a later honest write wins
    await d.close()
    offset = 0
    d = await reopen()
    t = T0 + MAX_LEAD + 5000
    await d.put('k', 'fixed')
    expect(await ownStamp(d, 'k')).to.deep.equal({ wall: T0 + MAX_LEAD, counter: 3 })
    await a.put('j', 'now')
    await meshSync([a, d])
    t += 1000
    await d.put('k', 'fixed')
    expect(await ownStamp(d, 'k')).to.deep.equal({ wall: t, counter: 0 })
    t += 1000
    await a.put('k', 'later')
    await meshSync([a, d])
    expect(await d.get('k')).to.equal('later')
    expect(await a.get('k')).to.equal('later')
  })

  it('a writer whose clock ran ahead while it wrote alone is refused (MESHBEE_CLOCK_AHEAD, nothing appended) once it sees another writer, until their stamps come within the bound', async () => {
    let t = T0
    const d = new MeshDB<string, any>(await tempDir('d'), { valueEncoding: 'json', wallClock: () => t + DAY })
    await d.open()
    dbs = [d]
    // alone, d has seen nobody: nothing bounds its stamps (the rule's limit, documented)
    await d.put('k', 'alone')
    const h = new MeshDB<string, any>(await tempDir('h'), { key: d.key, valueEncoding: 'json', wallClock: () => t })
    await h.open()
    dbs.push(h)
    await d.addWriter(h.writerKey)
    await meshSync([d, h])
    t += 1000
    await h.put('j', 'honest')
    await meshSync([d, h])

    const before = ownLength(d)
    const err = await rejects(d.put('k', 'refused'))
    expect(err.code).to.equal('MESHBEE_CLOCK_AHEAD')
    expect(ownLength(d)).to.equal(before)
    expect(await d.get('k')).to.equal('alone')

    // h's clock reaches within MAX_LEAD of d's last stamp: d writes again, after it
    const last = (await ownStamp(d, 'k')).wall
    t = last - MAX_LEAD + 10
    await h.put('j', 'later')
    await meshSync([d, h])
    await d.put('k', 'again')
    const s = await ownStamp(d, 'k')
    expect(s.wall).to.be.within(last, t + MAX_LEAD)
    expect(ownLength(d)).to.equal(before + 1)
  })

  it('a version-3 entry stamped past its seen + MAX_LEAD is rejected alike by every peer', async () => {
    const enc = (wall: number, seen: number): Buffer => encodeEntry({ type: PUT, stamp: stamp(wall, 0), value: Buffer.from('"v"'), clock: { seen, reading: wall } })
    expect(decodeEntry(enc(T0 + MAX_LEAD, T0)).clock).to.deep.equal({ seen: T0, reading: T0 + MAX_LEAD })
    expect(() => decodeEntry(enc(T0 + MAX_LEAD + 1, T0))).to.throw(/lead rule/)
    expect(decodeEntry(enc(T0 + DAY, 0)).stamp.wall, 'seen 0: the writer had seen nobody').to.equal(T0 + DAY)

    const [a, b] = dbs = await createPeers(2, () => ({ valueEncoding: 'json' }))
    await b.put('k', 'honest')
    // a modified writer appends an entry that breaks the rule
    const now = Date.now()
    await b.engine.own.bee.put(dataKey(Buffer.from('k')), enc(now + MAX_LEAD + 60_000, now))
    const bad = a.stats().badEntries
    await meshSync([a, b])
    expect(a.stats().badEntries).to.equal(bad + 1)
    expect(await a.get('k')).to.equal(undefined) // b's slot for the key holds nothing valid
    expect(await b.get('k')).to.equal(await a.get('k'))
  })
})
