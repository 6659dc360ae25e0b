/**
 * Damaged storage (issue "fail closed and recover", item 3): the view is derived from the logs, so
 * a view that cannot be read, that disagrees with its digest or that reflects more than the logs
 * hold is rebuilt from them; `verify()` checks the view against the logs in full; and the
 * database a directory belongs to is kept in the log store, so it survives a lost view.
 */
import { expect } from 'chai'
import { randomBytes } from 'node:crypto'
import { readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { MeshDB } from '../index.js'
import { cleanup, connect, dump, tempDir, until } from './helpers/peers.js'

type DB = MeshDB<string, string>

/** Writes some keys of every kind, then closes the database: the view's LevelDB has them. */
async function fill (dir: string): Promise<Map<string, string>> {
  const db: DB = new MeshDB(dir)
  await db.open()
  const values = new Map<string, string>()
  for (let i = 0; i < 40; i++) {
    // incompressible, and larger than a table block: both copies (its row, its entry in its slots)
    // are in a table file as they are
    const v = randomBytes(i === 7 ? 3000 : 24).toString('hex')
    await db.put(`k${i}`, v)
    values.set(`k${i}`, v)
  }
  await db.patch('doc', { a: 1, b: 'two' })
  await db.sadd('set', 'x')
  await db.close()
  // reopened and closed once more: LevelDB moves the recovered write-ahead log into a table file
  const again: DB = new MeshDB(dir)
  await again.open()
  await again.close()
  return values
}

async function filesOf (dir: string): Promise<string[]> {
  return (await readdir(dir)).map((f) => join(dir, f))
}

async function expectValues (db: DB, values: Map<string, string>): Promise<void> {
  for (const [k, v] of values) expect(await db.get(k), k).to.equal(v)
  expect(await db.get('doc')).to.equal('{"a":1,"b":"two"}')
  expect(await db.get('set')).to.equal('["x"]')
}

describe('damaged storage', function () {
  let dbs: DB[] = []
  afterEach(async () => { await cleanup(...dbs); dbs = [] })

  it('bytes flipped in a view table file are detected on open and the view is rebuilt from the logs', async () => {
    const dir = await tempDir()
    const values = await fill(dir)
    const target = values.get('k7') as string
    let flipped = false
    for (const file of await filesOf(join(dir, 'view'))) {
      if (!file.endsWith('.ldb') && !file.endsWith('.log')) continue
      const bytes = await readFile(file)
      // every copy: the value's row, and the entry in its slots (verify() finds damage there too)
      for (let at = bytes.indexOf(Buffer.from(target)); at !== -1; at = bytes.indexOf(Buffer.from(target), at + 1)) {
        bytes[at + 5] = bytes[at + 5] === 0x61 ? 0x62 : 0x61 // one hex digit of the value, another one
        flipped = true
      }
      await writeFile(file, bytes)
    }
    expect(flipped, 'the value was found in a view file').to.equal(true)
    const db: DB = new MeshDB(dir)
    dbs.push(db)
    const reasons: string[] = []
    db.on('rebuild', (reason: string) => reasons.push(reason))
    await db.open()
    expect(reasons, 'rebuilt on open').to.have.lengthOf(1)
    expect(db.stats().rebuilds).to.equal(1)
    await expectValues(db, values)
    expect((await db.verify()).ok).to.equal(true)
  })

  it('a view LevelDB cannot open (truncated MANIFEST, a table file gone) is rebuilt; a view held by another process is not touched', async () => {
    for (const damage of ['manifest', 'table'] as const) {
      const dir = await tempDir()
      const values = await fill(dir)
      const files = await filesOf(join(dir, 'view'))
      if (damage === 'manifest') {
        const manifest = files.find((f) => f.includes('MANIFEST-')) as string
        await truncate(manifest, Math.floor((await stat(manifest)).size / 2))
      } else {
        const tables = files.filter((f) => f.endsWith('.ldb'))
        expect(tables.length, 'a table file').to.be.greaterThan(0)
        for (const t of tables) await rm(t)
      }
      const db: DB = new MeshDB(dir)
      dbs.push(db)
      await db.open()
      expect(db.stats().rebuilds, damage).to.equal(1)
      await expectValues(db, values)
      // a second process on the same directory is refused, and the view it holds stays as it is
      const other: DB = new MeshDB(dir)
      let code: string | undefined
      await other.open().catch((err: Error & { code?: string }) => { code = err.code })
      expect(code, 'a locked view').to.equal('LEVEL_DATABASE_NOT_OPEN')
      await expectValues(db, values)
    }
  })

  it('a view kept while its logs are gone is rebuilt: it serves nothing no log backs', async () => {
    const dir = await tempDir()
    await fill(dir)
    const key = await (async () => {
      const db: DB = new MeshDB(dir)
      await db.open()
      const k = db.key.toString('hex')
      await db.close()
      return k
    })()
    await rm(join(dir, 'cores'), { recursive: true })
    const db: DB = new MeshDB(dir)
    dbs.push(db)
    await db.open()
    expect(db.key.toString('hex'), 'the database key is the one the view kept').to.equal(key)
    expect(db.stats().rebuilds).to.equal(1)
    expect(await dump(db)).to.deep.equal([])
    expect(db.writable, 'a new writer key, not a member').to.equal(false)
  })

  it("a member's identity survives a lost view: reopened without a key it is the same database, and still a member", async () => {
    const dir = await tempDir('b')
    const a: DB = new MeshDB(await tempDir('a'))
    await a.open()
    const b: DB = new MeshDB(dir, { key: a.key })
    await b.open()
    dbs = [a, b]
    await a.addWriter(b.writerKey)
    await a.put('x', '1')
    const cut = connect(a, b)
    await until([a, b], () => b.writable)
    await b.put('y', '2')
    await until([a, b], async () => (await b.get('x')) === '1' && (await a.get('y')) === '2')
    cut()
    const key = b.key.toString('hex')
    const writer = b.writerKey.toString('hex')
    await b.close()
    await rm(join(dir, 'view'), { recursive: true })
    const again: DB = new MeshDB(dir)
    dbs.push(again)
    await again.open()
    expect(again.key.toString('hex')).to.equal(key)
    expect(again.writerKey.toString('hex')).to.equal(writer)
    expect(again.writable).to.equal(true)
    expect(await again.get('x')).to.equal('1')
    await again.put('z', '3')
    // and a wrong key is refused, as ever
    await again.close()
    const wrong: DB = new MeshDB(dir, { key: Buffer.alloc(32, 7) })
    let code: string | undefined
    await wrong.open().catch((err: Error & { cause?: { code?: string } }) => { code = err.cause?.code })
    expect(code).to.equal('MESHBEE_KEY_MISMATCH')
  })

  it('verify() checks the view against the logs in full; with repair it rebuilds a view that disagrees', async () => {
    const dir = await tempDir()
    const values = await fill(dir)
    const db: DB = new MeshDB(dir)
    dbs.push(db)
    await db.open()
    const healthy = await db.verify()
    expect(healthy).to.include({ ok: true, repaired: false })
    expect(healthy.keys).to.equal(42)
    expect(healthy.problems).to.deep.equal([])
    // damage below the digest: a key's slots now say another writer wrote it
    const view = db.engine.view
    await view.settle()
    const [[slotKey, record]] = await view.slots.iterator({ gte: Buffer.from('k7'), lte: Buffer.from('k7') }).all()
    const tampered = Buffer.from(record)
    tampered[tampered.length - 3] ^= 1
    await view.db.put(Buffer.concat([Buffer.from(view.slots.prefix), slotKey]), tampered)
    const found = await db.verify()
    expect(found.ok).to.equal(false)
    expect(found.problems.join('\n')).to.match(/k7|6b37/)
    const progress: number[] = []
    const repaired = await db.verify({ repair: true, progress: (done) => progress.push(done) })
    expect(repaired).to.include({ ok: false, repaired: true })
    expect(progress.length).to.be.greaterThan(0)
    expect((await db.verify()).ok).to.equal(true)
    await expectValues(db, values)
  })
})
