/**
 * Every error the API throws has a stable code: bad options at construction, a wall clock that
 * returns something a stamp cannot hold, and misuse (bad arguments, calls before open, after a
 * failed open, after close). Each case expects its code, and leaves the stored database as it was:
 * same values, same own log length, same digest.
 */
import { expect } from 'chai'
import Corestore from 'corestore'
import { HLC, MeshDB, stampFromString, type CorestoreLike, type MeshDBOptions } from '../index.js'
import { cleanup, connect, createPeers, ownLength, tempDir, until } from './helpers/peers.js'

type DB = MeshDB<any, any>
type Failure = Error & { code?: string, cause?: Error & { code?: string } }

interface Ctx {
  dir: string
  /** A database on the fixture's directory (closed after the case). */
  db: (options?: MeshDBOptions<any, any>) => DB
  /** The same, opened. */
  opened: (options?: MeshDBOptions<any, any>) => Promise<DB>
  /** A Corestore in a fresh directory (closed after the case). */
  store: () => Promise<Corestore>
}

interface Case {
  name: string
  /** The code expected: the error's own, or its cause's when abstract-level wraps it (a failed open). */
  code: string
  /** A word the message must hold: the option or argument at fault. */
  names?: string
  /** A plain TypeError with the code (crdt/, which imports nothing of lib/), not a MeshTypeError. */
  plain?: true
  run: (ctx: Ctx) => unknown
}

const badOptions: Array<[string, MeshDBOptions<any, any> | null, string]> = [
  ['options that are not an object', null, 'options'],
  ['a key that is not 32 bytes', { key: Buffer.alloc(31) }, 'key'],
  ['a key that is not hex', { key: 'z'.repeat(64) }, 'key'],
  ['a viewPath that is not a string', { viewPath: 5 as any }, 'viewPath'],
  ['an empty viewPath', { viewPath: '' }, 'viewPath'],
  ['a logger that is not an object', { logger: 'debug' as any }, 'logger'],
  ['a logger without debug()', { logger: { error () {}, warn () {}, info () {} } as any }, 'logger'],
  ['a negative maxDrift', { maxDrift: -5 }, 'maxDrift'],
  ['a NaN maxDrift', { maxDrift: NaN }, 'maxDrift'],
  ['an infinite maxDrift', { maxDrift: Infinity }, 'maxDrift'],
  ['a fractional maxDrift', { maxDrift: 1.5 }, 'maxDrift'],
  ['a maxDrift given as a string', { maxDrift: '100' as any }, 'maxDrift'],
  ['a wallClock that is not a function', { wallClock: 1_700_000_000_000 as any }, 'wallClock'],
  ['a negative sparseAfter', { sparseAfter: -1 }, 'sparseAfter'],
  ['a NaN sparseAfter', { sparseAfter: NaN }, 'sparseAfter'],
  ['a swarm that is not an object', { swarm: 'dht' as any }, 'swarm'],
  ['a null swarm', { swarm: null as any }, 'swarm']
]

/** Wall clock readings a stamp cannot hold: each write on that clock is refused. */
const badClocks: Array<[string, unknown]> = [
  ['NaN', NaN],
  ['2^53', 2 ** 53],
  ['a negative time', -1],
  ['a fraction', 1_700_000_000_000.5],
  ['Infinity', Infinity],
  ['a string', '1700000000000']
]

const cases: Case[] = [
  ...badOptions.map(([what, options, names]): Case => ({
    name: `new MeshDB with ${what}`,
    code: 'MESHBEE_INVALID_ARGUMENT',
    names,
    run: ({ db }) => db(options as MeshDBOptions<any, any>)
  })),
  { name: 'new MeshDB on an empty path', code: 'MESHBEE_INVALID_ARGUMENT', names: 'storage', run: () => new MeshDB('') },
  { name: 'new MeshDB on a number', code: 'MESHBEE_INVALID_ARGUMENT', names: 'storage', run: () => new MeshDB(5 as any) },
  { name: 'new MeshDB on an object that is not a Corestore', code: 'MESHBEE_INVALID_ARGUMENT', names: 'storage', run: () => new MeshDB({ ready () {} } as any, { viewPath: '/tmp' }) },
  { name: 'new MeshDB on a Corestore without viewPath', code: 'MESHBEE_INVALID_ARGUMENT', names: 'viewPath', run: async ({ store }) => new MeshDB(await store() as unknown as CorestoreLike) },
  { name: 'new MeshDB with an unknown keyEncoding (abstract-level\'s code)', code: 'LEVEL_ENCODING_NOT_FOUND', run: ({ db }) => db({ keyEncoding: 'nope' as any }) },

  ...badClocks.flatMap(([what, reading]): Case[] => [
    {
      name: `put on a wallClock that returns ${what}`,
      code: 'MESHBEE_INVALID_ARGUMENT',
      names: 'wallClock',
      run: async ({ opened }) => await (await opened({ wallClock: () => reading as number })).put('k', 'overwritten')
    },
    {
      name: `patch, sadd and addWriter on a wallClock that returns ${what}`,
      code: 'MESHBEE_INVALID_ARGUMENT',
      names: 'wallClock',
      run: async ({ opened }) => {
        const db = await opened({ wallClock: () => reading as number })
        for (const op of [db.patch('doc', { b: 2 }), db.sadd('set', 'z'), db.addWriter(Buffer.alloc(32, 9))]) {
          const err = await op.then(() => null, (e: Error & { code?: string }) => e)
          expect(err?.code).to.equal('MESHBEE_INVALID_ARGUMENT')
        }
        await db.del('k')
      }
    }
  ]),

  { name: 'open with another database\'s key', code: 'MESHBEE_KEY_MISMATCH', run: async ({ db }) => { await db({ key: Buffer.alloc(32, 7) }).open() } },
  { name: 'discoveryKey before open', code: 'MESHBEE_CLOSED', names: 'opened', run: ({ db }) => db().discoveryKey },
  { name: 'writerKey before open', code: 'MESHBEE_CLOSED', run: ({ db }) => db().writerKey },
  { name: 'hash() before open', code: 'MESHBEE_CLOSED', run: ({ db }) => db().hash() },
  { name: 'replicate() before open', code: 'MESHBEE_CLOSED', run: ({ db }) => db().replicate(true) },
  { name: 'requestJoin() before open', code: 'MESHBEE_CLOSED', run: ({ db }) => db().requestJoin() },
  {
    name: 'discoveryKey and writerKey after a failed open',
    code: 'MESHBEE_CLOSED',
    run: async ({ db }) => {
      const d = db({ key: Buffer.alloc(32, 7) })
      await d.open().catch(() => {})
      expect(() => d.writerKey).to.throw().with.property('code', 'MESHBEE_CLOSED')
      return d.discoveryKey
    }
  },
  { name: 'replicate() after close', code: 'MESHBEE_CLOSED', run: async ({ opened }) => { const d = await opened(); await d.close(); d.replicate(true) } },
  { name: 'requestJoin() after close', code: 'MESHBEE_CLOSED', run: async ({ opened }) => { const d = await opened(); await d.close(); d.requestJoin() } },
  { name: 'replicate() while closing', code: 'MESHBEE_CLOSED', run: async ({ opened }) => { const d = await opened(); const closing = d.close(); try { d.replicate(false) } finally { await closing } } },
  { name: 'put after close (abstract-level\'s code)', code: 'LEVEL_DATABASE_NOT_OPEN', run: async ({ opened }) => { const d = await opened(); await d.close(); await d.put('k', 'x') } },
  { name: 'patch after close', code: 'LEVEL_DATABASE_NOT_OPEN', run: async ({ opened }) => { const d = await opened(); await d.close(); await d.patch('doc', { a: 2 }) } },
  { name: 'addWriter after close', code: 'LEVEL_DATABASE_NOT_OPEN', run: async ({ opened }) => { const d = await opened(); await d.close(); await d.addWriter(Buffer.alloc(32, 9)) } },
  { name: 'update() after close', code: 'LEVEL_DATABASE_NOT_OPEN', run: async ({ opened }) => { const d = await opened(); await d.close(); await d.update() } },
  { name: 'join() after close', code: 'LEVEL_DATABASE_NOT_OPEN', run: async ({ opened }) => { const d = await opened(); await d.close(); await d.join() } },
  { name: 'verify() after close', code: 'LEVEL_DATABASE_NOT_OPEN', run: async ({ opened }) => { const d = await opened(); await d.close(); await d.verify() } },

  { name: 'replicate() of a string', code: 'MESHBEE_INVALID_ARGUMENT', names: 'replicate', run: async ({ opened }) => (await opened()).replicate('yes' as any) },
  { name: 'replicate() of an object that is no stream', code: 'MESHBEE_INVALID_ARGUMENT', names: 'replicate', run: async ({ opened }) => (await opened()).replicate({} as any) },
  { name: 'join(null)', code: 'MESHBEE_INVALID_ARGUMENT', names: 'join', run: async ({ opened }) => { await (await opened()).join(null as any) } },
  { name: 'join() with a swarm that is not an object', code: 'MESHBEE_INVALID_ARGUMENT', names: 'swarm', run: async ({ opened }) => { await (await opened()).join({ swarm: 7 as any }) } },
  { name: 'diff() with null options', code: 'MESHBEE_INVALID_ARGUMENT', names: 'diff', run: async ({ opened }) => { const d = await opened(); for await (const _ of d.diff(d.writerKey, null as any)) break } },
  { name: 'diff() since a negative time', code: 'MESHBEE_INVALID_ARGUMENT', names: 'since', run: async ({ opened }) => { const d = await opened(); for await (const _ of d.diff(d.writerKey, { since: -1 })) break } },
  { name: 'diff() since NaN', code: 'MESHBEE_INVALID_ARGUMENT', names: 'since', run: async ({ opened }) => { const d = await opened(); for await (const _ of d.diff(d.writerKey, { since: NaN })) break } },
  { name: 'diff() of an unknown writer', code: 'MESHBEE_INVALID_KEY', run: async ({ opened }) => { const d = await opened(); for await (const _ of d.diff(Buffer.alloc(32, 3))) break } },
  { name: 'verify() with a progress that is not a function', code: 'MESHBEE_INVALID_ARGUMENT', names: 'progress', run: async ({ opened }) => await (await opened()).verify({ progress: 5 as any }) },
  { name: 'smembers() with null options', code: 'MESHBEE_INVALID_ARGUMENT', names: 'smembers', run: async ({ opened }) => await (await opened()).smembers('set', null as any) },
  { name: 'write() of a key the key encoding cannot encode', code: 'MESHBEE_INVALID_ARGUMENT', names: 'keyEncoding', run: async ({ opened }) => { await (await opened({ keyEncoding: 'json' })).write([{ type: 'put', key: 10n as any, value: 'x' }]) } },
  { name: 'write() of a value the value encoding cannot encode', code: 'MESHBEE_INVALID_ARGUMENT', names: 'valueEncoding', run: async ({ opened }) => { await (await opened({ valueEncoding: 'json' })).write([{ type: 'put', key: 'k', value: { n: 1n } }]) } },
  { name: 'write() of something other than an array', code: 'MESHBEE_INVALID_ARGUMENT', run: async ({ opened }) => { await (await opened()).write('put' as any) } },
  { name: 'addWriter() of a malformed key', code: 'MESHBEE_INVALID_ARGUMENT', names: 'writer key', run: async ({ opened }) => { await (await opened()).addWriter('abc') } },
  { name: 'checkout() of malformed cuts', code: 'MESHBEE_INVALID_CUTS', run: async ({ opened }) => (await opened()).checkout({ nope: -1 } as any) },

  { name: 'new HLC with a negative maxDrift', code: 'MESHBEE_INVALID_ARGUMENT', names: 'maxDrift', plain: true, run: () => new HLC({ maxDrift: -5 }) },
  { name: 'new HLC with a wallClock that is not a function', code: 'MESHBEE_INVALID_ARGUMENT', names: 'wallClock', plain: true, run: () => new HLC({ wallClock: 5 as any }) },
  { name: 'HLC.now() on a wallClock that returns NaN', code: 'MESHBEE_INVALID_ARGUMENT', names: 'wallClock', plain: true, run: () => new HLC({ wallClock: () => NaN }).now() },
  { name: 'HLC.observe() on a wallClock that returns 2^53', code: 'MESHBEE_INVALID_ARGUMENT', names: 'wallClock', plain: true, run: () => new HLC({ wallClock: () => 2 ** 53 }).observe({ wall: 1, counter: 0 }) },
  { name: 'HLC.observe() of something that is not a stamp', code: 'MESHBEE_INVALID_ARGUMENT', names: 'stamp', plain: true, run: () => new HLC().observe({ wall: -1, counter: 0 }) },
  { name: 'HLC.restore() of null', code: 'MESHBEE_INVALID_ARGUMENT', names: 'stamp', plain: true, run: () => new HLC().restore(null as any) },
  { name: 'stampFromString() of garbage', code: 'MESHBEE_INVALID_ARGUMENT', names: 'stamp', plain: true, run: () => stampFromString('yesterday') }
]

/** The error `run` throws or rejects with, or null. */
async function failure (run: () => unknown): Promise<Failure | null> {
  try {
    await run()
    return null
  } catch (err) {
    return err as Failure
  }
}

/** What the fixture holds: its values, own log length and digest. */
async function snapshot (dir: string): Promise<unknown> {
  const db = new MeshDB<string, any>(dir, { valueEncoding: 'json' })
  try {
    await db.open()
    return {
      entries: await db.iterator().all(),
      members: await db.smembers('set'),
      log: db.engine.own.core.length,
      hash: db.hash().toString('hex')
    }
  } finally {
    await db.close()
  }
}

describe('errors: bad options and misuse give stable codes and leave the data intact', function () {
  this.timeout(60_000)
  let dir: string
  let stored: unknown
  let dbs: DB[] = []
  let stores: Corestore[] = []

  before(async () => {
    dir = await tempDir('errors')
    const db = new MeshDB<string, any>(dir, { valueEncoding: 'json' })
    await db.put('k', 'v')
    await db.patch('doc', { a: 1 })
    await db.sadd('set', 'x')
    await db.close()
    stored = await snapshot(dir)
  })

  afterEach(async () => {
    for (const db of dbs.splice(0)) if (db.status !== 'closed') await db.close().catch(() => {})
    for (const s of stores.splice(0)) await s.close()
    expect(await snapshot(dir), 'the stored database after the case').to.deep.equal(stored)
  })

  after(async () => { await cleanup() })

  const ctx: Ctx = {
    get dir () { return dir },
    db: (options) => {
      const db = new MeshDB<any, any>(dir, options)
      dbs.push(db)
      return db
    },
    opened: async (options) => {
      const db = ctx.db(options)
      await db.open()
      return db
    },
    store: async () => {
      const s = new Corestore(await tempDir('store'))
      stores.push(s)
      return s
    }
  }

  for (const c of cases) {
    it(`${c.name}: ${c.code}`, async () => {
      const err = await failure(() => c.run(ctx))
      expect(err, 'it fails').to.not.equal(null)
      // a failed open is abstract-level's LEVEL_DATABASE_NOT_OPEN, with meshbee's error as its cause
      const coded = err?.code === 'LEVEL_DATABASE_NOT_OPEN' && err.cause?.code !== undefined ? err.cause : err
      expect(coded?.code, `${coded?.name}: ${coded?.message}`).to.equal(c.code)
      if (c.names !== undefined) expect(coded?.message).to.include(c.names)
      if (c.plain === true) expect(coded).to.be.instanceOf(TypeError)
      else if (c.code.startsWith('MESHBEE_')) expect(coded?.name).to.be.oneOf(['MeshError', 'MeshTypeError'])
    })
  }
})

describe('errors: a wall clock that fails its check while remote entries fold', function () {
  this.timeout(60_000)
  let dbs: DB[] = []
  afterEach(async () => { await cleanup(...dbs); dbs = [] })

  it('fails the read with the coded error, counts no entry as bad, and folds everything once the clock is right', async () => {
    let bad = false
    const errors: unknown[] = []
    const logger = { error (fields: { err?: unknown }) { errors.push(fields.err) }, warn () {}, info () {}, debug () {} }
    const [a, b] = dbs = await createPeers(2, (i) => i === 1 ? { wallClock: () => bad ? NaN : Date.now(), logger: logger as any } : {})
    const c = new MeshDB<string, string>(await tempDir('c'), { key: a.key })
    dbs.push(c)
    await c.open()
    await a.addWriter(c.writerKey)
    await a.put('k', 'v')

    bad = true
    const cut = connect(a, b)
    const held = (): number => b.writers().find((w) => w.key.equals(a.writerKey))?.held ?? 0
    await until([a, b], async () => { await b.update(); return held() === ownLength(a) && errors.length > 0 }, () => `b holds ${held()} of ${ownLength(a)}`)
    expect((errors[0] as { code?: string }).code).to.equal('MESHBEE_INVALID_ARGUMENT')
    expect(await b.get('k')).to.equal(undefined)
    expect(b.writers().some((w) => w.key.equals(c.writerKey) && w.member), 'c is not counted yet').to.equal(false)
    // a valid membership entry read under a failing clock is not taken for a bad one (and dropped)
    expect(b.stats().badEntries).to.equal(0)

    bad = false
    await until([b], async () => {
      await b.update()
      return await b.get('k') === 'v' && b.writers().some((w) => w.key.equals(c.writerKey) && w.member)
    }, () => 'b never folded a\'s entries once its clock was right')
    expect(b.stats().badEntries).to.equal(0)
    cut()
  })
})
