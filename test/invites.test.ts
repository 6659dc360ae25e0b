/**
 * Invites (lib/invites.ts over lib/pairing.ts): a private database's member makes one-string
 * invites; devices pair from the string alone on a local DHT testnet, as a writer or a reader; used,
 * expired, revoked and altered invites are refused and add nothing.
 */
import { expect } from 'chai'
import Hyperswarm from 'hyperswarm'
import { MeshDB } from '../index.js'
import { pairCandidate } from '../lib/pairing.js'
import { startTestnet, type Testnet } from '../lib/testnet.js'
import { readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { cleanup, rejects, tempDir, until, untilEvents } from './helpers/peers.js'

type DB = MeshDB<string, string>

describe('invites', function () {
  this.timeout(120_000)
  let testnet: Testnet
  let now = Date.now()
  const opened: DB[] = []
  let a: DB

  before(async () => { testnet = await startTestnet() })
  after(async () => { await testnet.destroy() })
  beforeEach(async () => {
    now = Date.now()
    a = new MeshDB<string, string>(await tempDir('a'), { encrypted: true, wallClock: () => now })
    opened.push(a)
    await a.put('hello', 'from the member')
    await a.join({ swarm: testnet.swarmOptions() })
  })
  afterEach(async () => { await cleanup(...opened.splice(0)) })

  /** Pairs a new directory with `invite` on its own swarm of the testnet. */
  async function pair (invite: string, timeout = 30_000): Promise<DB> {
    const db = await MeshDB.pair<string, string>(await tempDir('p'), invite, { swarm: testnet.swarmOptions(), timeout })
    opened.push(db)
    return db
  }

  it('a writer pairs from the invite string alone: writable, reads, and its writes reach the member', async () => {
    const invite = await a.createInvite({ role: 'writer' })
    expect(invite).to.match(/^[ybndrfg8ejkmcpqxot1uwisza345h769]+$/)
    const b = await pair(invite)
    expect(b.key.equals(a.key)).to.equal(true)
    expect(b.privacy).to.equal('encrypted')
    expect(b.writable).to.equal(true)
    await until([b], () => b.get('hello').then((v) => v === 'from the member'))
    await b.put('reply', 'from the new writer')
    await until([a], () => a.get('reply').then((v) => v === 'from the new writer'))
    expect(a.invites()).to.deep.equal([{ id: a.invites()[0].id, role: 'writer', expires: now + 7 * 86_400_000, uses: 1, used: 1, revoked: false }])
  })

  it('a reader pairs: it reads, is no writer, and a writer list shows it as a reader', async () => {
    const invite = await a.createInvite({ role: 'reader' })
    const r = await pair(invite)
    await until([r], () => r.get('hello').then((v) => v === 'from the member'))
    expect(r.writable).to.equal(false)
    expect((await rejects(r.put('x', 'y'))).code).to.equal('MESHBEE_NOT_WRITABLE')
    await until([a], () => a.writers().some((w) => w.key.equals(r.writerKey) && w.reader))
    await a.put('later', 'still read')
    await until([r], () => r.get('later').then((v) => v === 'still read'))
  })

  it('refuses a used, an expired, a revoked and an altered invite, adding nothing', async () => {
    const once = await a.createInvite()
    await pair(once)
    const members = a.writers().filter((w) => w.member).length
    const used = await rejects(pair(once))
    expect(used).to.include({ code: 'MESHBEE_INVITE_REFUSED', reason: 'MESHBEE_INVITE_USED' })

    const soon = await a.createInvite({ expires: now + 60_000 })
    now += 120_000 // the member's clock passes the expiry
    const expired = await rejects(pair(soon))
    expect(expired).to.include({ code: 'MESHBEE_INVITE_REFUSED', reason: 'MESHBEE_INVITE_EXPIRED' })

    const revoked = await a.createInvite({ uses: 5 })
    expect(await a.revokeInvite(revoked)).to.equal(true)
    // a revoked invite is not answered at all: nothing to pair with
    const err = await rejects(pair(revoked, 1500))
    expect(err.code).to.equal('MESHBEE_PAIR_TIMEOUT')

    const good = await a.createInvite()
    const altered = good.slice(0, 10) + (good[10] === 'y' ? 'b' : 'y') + good.slice(11)
    expect((await rejects(pair(altered))).code).to.equal('MESHBEE_BAD_INVITE')

    await a.update()
    expect(a.writers().filter((w) => w.member).length).to.equal(members)
    expect(a.invites().map((i) => [i.used, i.revoked])).to.deep.equal([[1, false], [0, false], [0, true], [0, false]])
  })

  it('a blind seeder on the swarm carries writes between two paired devices never online together, holding none of their bytes', async () => {
    const b = await pair(await a.createInvite())
    await until([b], () => b.get('hello').then((v) => v === 'from the member'))
    const sdir = await tempDir('s')
    const s = new MeshDB<string, string>(sdir, { key: a.key })
    opened.push(s)
    await s.join({ swarm: testnet.swarmOptions() })
    const holds = (db: DB): boolean => s.writers().some((w) => w.key.equals(db.writerKey) && w.held === db.writers().find((x) => x.local)?.length)
    await b.leave()
    await a.put('while-b-away', 'sealed-for-members-only')
    await untilEvents([a], ['update'], () => s.privacy === 'blind' && holds(a))
    await a.leave()
    await b.join({ swarm: testnet.swarmOptions() })
    await until([b], () => b.get('while-b-away').then((v) => v === 'sealed-for-members-only'))
    await b.put('reply-while-a-away', 'also-sealed')
    await untilEvents([b], ['update'], () => holds(b))
    await b.leave()
    await a.join({ swarm: testnet.swarmOptions() })
    await until([a], () => a.get('reply-while-a-away').then((v) => v === 'also-sealed'))
    expect((await rejects(s.get('hello'))).code).to.equal('MESHBEE_BLIND')
    await s.close()
    const hits: string[] = []
    const walk = async (d: string): Promise<void> => {
      for (const f of await readdir(d)) {
        const p = join(d, f)
        if ((await stat(p)).isDirectory()) await walk(p)
        else for (const n of ['sealed-for-members-only', 'also-sealed', 'from the member', 'while-b-away', 'reply-while-a-away']) if ((await readFile(p)).includes(Buffer.from(n))) hits.push(`${n} in ${p}`)
      }
    }
    await walk(sdir)
    expect(hits).to.deep.equal([])
  })

  it('a device removed after pairing that replays its invite is refused, and handed no key', async () => {
    const invite = await a.createInvite({ uses: 2 })
    const b = await pair(invite)
    const bKey = b.writerKey
    await b.close()
    await a.removeWriter(bKey)
    await a.put('after', 'not for b') // a new epoch, never granted to b
    const swarm = new Hyperswarm(testnet.swarmOptions())
    try {
      const err = await rejects(pairCandidate(swarm, invite, bKey, { timeout: 20_000 }))
      expect(err).to.include({ code: 'MESHBEE_INVITE_REFUSED', reason: 'MESHBEE_INVITE_USED' })
    } finally {
      await swarm.destroy()
    }
  })

  it('checks its options', async () => {
    for (const bad of [{ role: 'admin' }, { uses: 0 }, { uses: 1.5 }, { expires: now - 1 }]) {
      expect((await rejects(a.createInvite(bad as never))).code, JSON.stringify(bad)).to.equal('MESHBEE_INVALID_ARGUMENT')
    }
    expect((await rejects(MeshDB.pair(await tempDir('x'), 'not an invite'))).code).to.equal('MESHBEE_BAD_INVITE')
  })
})
