/**
 * lib/pairing.ts: invite strings, and pairing over swarms on a local DHT testnet (nothing leaves the
 * machine). One member swarm hosts every invite of one database; each candidate comes with a swarm
 * of its own. Waits are on the pairing promises themselves; the only timeouts are those under test.
 */
import { expect } from 'chai'
import createTestnet from 'hyperdht/testnet.js'
import Hyperswarm from 'hyperswarm'
import * as crypto from 'hypercore-crypto'
import * as z32 from 'z32'
import { PairingHost, makeInvite, pairCandidate, parseInvite, type Admit, type PairingAnswer, type PairingError, type Role } from '../lib/pairing.js'

type Testnet = Awaited<ReturnType<typeof createTestnet>>

/** The rejection of `p`, which must reject. */
async function rejection (p: Promise<unknown>): Promise<PairingError> {
  try {
    await p
  } catch (err) {
    return err as PairingError
  }
  throw new Error('expected a rejection')
}

/** Every way to change one character of `s` to another z-base32 character, one per position. */
function flips (s: string): string[] {
  return [...s].map((ch, i) => s.slice(0, i) + (ch === z32.ALPHABET[0] ? z32.ALPHABET[1] : z32.ALPHABET[0]) + s.slice(i + 1))
}

describe('pairing: invite strings', () => {
  const dbKey = crypto.randomBytes(32)

  it('round-trips the discovery key, the id and the expiry (to the second)', () => {
    const expires = Date.now() + 3_600_000 + 123
    const made = makeInvite(dbKey, { role: 'writer', expires })
    expect(made.invite).to.match(/^[ybndrfg8ejkmcpqxot1uwisza345h769]+$/)
    expect(made.discoveryKey.equals(crypto.discoveryKey(dbKey))).to.equal(true)
    expect(made.terms).to.deep.equal({ id: made.terms.id, role: 'writer', expires })
    const parsed = parseInvite(`  ${made.invite}\n`)
    expect(parsed.discoveryKey.equals(made.discoveryKey)).to.equal(true)
    expect(parsed.id.equals(made.terms.id)).to.equal(true)
    expect(parsed.expires).to.equal(Math.floor(expires / 1000) * 1000)
    // the database key itself is not in the string
    expect(Buffer.from(z32.decode(made.invite)).indexOf(dbKey)).to.equal(-1)
    expect(parseInvite(makeInvite(dbKey, { role: 'reader', expires: 0 }).invite).expires).to.equal(0)
  })

  it('throws MESHBEE_BAD_INVITE for garbage', () => {
    const good = makeInvite(dbKey, { role: 'reader', expires: 0 }).invite
    const bad: unknown[] = ['', 'hello world', '!!!!', 'yyyyyyyy', z32.encode(crypto.randomBytes(74)), good + 'y', good.slice(0, -1),
      good.slice(0, 20), good.toUpperCase(), 42, null, undefined, Buffer.from(good)]
    for (const s of bad) {
      expect(() => parseInvite(s as string), String(s)).to.throw().with.property('code', 'MESHBEE_BAD_INVITE')
    }
  })

  it('rejects every one-character change of an invite', () => {
    const good = makeInvite(dbKey, { role: 'writer', expires: Date.now() + 60_000 }).invite
    for (const s of flips(good)) {
      expect(() => parseInvite(s), s).to.throw().with.property('code', 'MESHBEE_BAD_INVITE')
    }
  })

  it('refuses bad arguments to makeInvite', () => {
    expect(() => makeInvite(Buffer.alloc(31), { role: 'writer', expires: 0 })).to.throw().with.property('code', 'MESHBEE_INVALID_ARGUMENT')
    expect(() => makeInvite(dbKey, { role: 'admin' as Role, expires: 0 })).to.throw().with.property('code', 'MESHBEE_INVALID_ARGUMENT')
    expect(() => makeInvite(dbKey, { role: 'reader', expires: -1 })).to.throw().with.property('code', 'MESHBEE_INVALID_ARGUMENT')
    expect(() => makeInvite(dbKey, { role: 'reader', expires: 1.5 })).to.throw().with.property('code', 'MESHBEE_INVALID_ARGUMENT')
  })
})

describe('pairing over a testnet', function () {
  this.timeout(60_000)
  let testnet: Testnet
  let host: PairingHost
  const swarms: Hyperswarm[] = []
  const dbKey = crypto.randomBytes(32)
  const encryptionKey = crypto.randomBytes(32)

  const swarm = (): Hyperswarm => {
    const s = new Hyperswarm({ dht: testnet.createNode() })
    swarms.push(s)
    return s
  }

  /** An invite added to the host, and the candidates its admit saw. */
  async function hosted (role: Role, admit: Admit, expires = 0): Promise<{ invite: string, id: Buffer, seen: Buffer[] }> {
    const made = makeInvite(dbKey, { role, expires })
    const seen: Buffer[] = []
    host.add({ publicKey: made.publicKey, discoveryKey: made.discoveryKey, roleSignatures: made.roleSignatures, expires },
      async (candidate) => { seen.push(candidate.userData); return await admit(candidate) })
    await host.flushed()
    return { invite: made.invite, id: made.terms.id, seen }
  }

  const grant = (role: Role, key: Buffer | null = encryptionKey): Admit => async () => ({ key: dbKey, encryptionKey: key, role })
  const refuse = (code?: string): Admit => async () => { throw Object.assign(new Error('no'), code === undefined ? {} : { code }) }

  before(async () => {
    testnet = await createTestnet(3)
    host = new PairingHost(swarm())
  })

  after(async () => {
    await host?.close()
    await Promise.all(swarms.map(async (s) => { await s.destroy() }))
    await testnet?.destroy()
  })

  it('pairs a writer: the candidate gets the key, the encryption key and the role; admit saw its key', async () => {
    const { invite, seen } = await hosted('writer', grant('writer'))
    const me = crypto.randomBytes(32)
    const got: PairingAnswer = await pairCandidate(swarm(), invite, me, { timeout: 30_000 })
    expect(got.role).to.equal('writer')
    expect(got.key.equals(dbKey)).to.equal(true)
    expect(got.encryptionKey?.equals(encryptionKey)).to.equal(true)
    expect(seen.map((b) => b.toString('hex'))).to.deep.equal([me.toString('hex')])
  })

  it('pairs a reader, without an encryption key', async () => {
    const { invite, seen } = await hosted('reader', grant('reader', null))
    const me = crypto.randomBytes(32)
    const got = await pairCandidate(swarm(), invite, me, { timeout: 30_000 })
    expect(got).to.deep.include({ role: 'reader', encryptionKey: null })
    expect(got.key.equals(dbKey)).to.equal(true)
    expect(seen).to.have.length(1)
    expect(seen[0].equals(me)).to.equal(true)
  })

  it('decides a candidate that asks again anew: admit answers it again (the invite book knows it), and the host keeps no old answer', async () => {
    // an admit like the invite book's: a device it admitted is answered again, any other finds it used
    const admitted = new Set<string>()
    const once: Admit = async ({ userData }) => {
      const who = userData.toString('hex')
      if (!admitted.has(who) && admitted.size >= 1) throw Object.assign(new Error('used'), { code: 'MESHBEE_INVITE_USED' })
      admitted.add(who)
      return { key: dbKey, encryptionKey, role: 'writer' }
    }
    const { invite, seen } = await hosted('writer', once)
    const me = crypto.randomBytes(32)
    const s = swarm()
    expect((await pairCandidate(s, invite, me, { timeout: 30_000 })).role).to.equal('writer')
    const first = seen.length
    // the same swarm again, over the connection it already has: decided again, and answered
    expect((await pairCandidate(s, invite, me, { timeout: 30_000 })).role).to.equal('writer')
    expect(seen.length).to.be.greaterThan(first)
    // another candidate finds the invite used
    const other = await rejection(pairCandidate(swarm(), invite, crypto.randomBytes(32), { timeout: 30_000 }))
    expect(other).to.include({ code: 'MESHBEE_INVITE_REFUSED', reason: 'MESHBEE_INVITE_USED' })
  })

  it("carries admit's MESHBEE_INVITE_USED to the candidate", async () => {
    const { invite, seen } = await hosted('writer', refuse('MESHBEE_INVITE_USED'))
    const err = await rejection(pairCandidate(swarm(), invite, crypto.randomBytes(32), { timeout: 30_000 }))
    expect(err).to.include({ code: 'MESHBEE_INVITE_REFUSED', reason: 'MESHBEE_INVITE_USED' })
    expect(seen).to.have.length(1)
  })

  it('carries any other refusal as a generic one', async () => {
    const { invite } = await hosted('reader', refuse('MESHBEE_NOT_WRITABLE'))
    const err = await rejection(pairCandidate(swarm(), invite, crypto.randomBytes(32), { timeout: 30_000 }))
    expect(err).to.include({ code: 'MESHBEE_INVITE_REFUSED', reason: null })
  })

  it('refuses past the hosted expiry without asking admit', async () => {
    const { invite, seen } = await hosted('writer', grant('writer'), Date.now() - 1)
    const err = await rejection(pairCandidate(swarm(), invite, crypto.randomBytes(32), { timeout: 30_000 }))
    expect(err).to.include({ code: 'MESHBEE_INVITE_REFUSED', reason: 'MESHBEE_INVITE_EXPIRED' })
    expect(seen).to.have.length(0)
  })

  it('refuses an answer whose key is not the database key (by discovery key)', async () => {
    const { invite } = await hosted('writer', async () => ({ key: crypto.randomBytes(32), encryptionKey: null, role: 'writer' }))
    const err = await rejection(pairCandidate(swarm(), invite, crypto.randomBytes(32), { timeout: 30_000 }))
    expect(err).to.include({ code: 'MESHBEE_INVITE_REFUSED', reason: null })
  })

  it('rejects a tampered invite string with MESHBEE_BAD_INVITE before going online', async () => {
    const { invite, seen } = await hosted('writer', grant('writer'))
    const tampered = flips(invite)[Math.floor(invite.length / 2)]
    const err = await rejection(pairCandidate(swarm(), tampered, crypto.randomBytes(32), { timeout: 2_000 }))
    expect(err.code).to.equal('MESHBEE_BAD_INVITE')
    expect(seen).to.have.length(0)
  })

  it('gets no answer for a forged invite (a well-formed one no member made): MESHBEE_PAIR_TIMEOUT', async () => {
    const { seen } = await hosted('writer', grant('writer'))
    // same database, so same topic and the same member: its request names an invite the host does not hold
    const forged = makeInvite(dbKey, { role: 'writer', expires: 0 }).invite
    const started = Date.now()
    const err = await rejection(pairCandidate(swarm(), forged, crypto.randomBytes(32), { timeout: 1_500 }))
    expect(err.code).to.equal('MESHBEE_PAIR_TIMEOUT')
    expect(Date.now() - started).to.be.at.least(1_500)
    expect(seen).to.have.length(0)
  })

  it('stops answering a removed invite', async () => {
    const { invite, id, seen } = await hosted('reader', grant('reader'))
    host.remove(id)
    const err = await rejection(pairCandidate(swarm(), invite, crypto.randomBytes(32), { timeout: 1_500 }))
    expect(err.code).to.equal('MESHBEE_PAIR_TIMEOUT')
    expect(seen).to.have.length(0)
  })

  it('aborts on a signal, and refuses a userData that is not 32 bytes', async () => {
    const forged = makeInvite(dbKey, { role: 'reader', expires: 0 }).invite
    const ac = new AbortController()
    const p = pairCandidate(swarm(), forged, crypto.randomBytes(32), { signal: ac.signal })
    ac.abort()
    expect((await rejection(p)).code).to.equal('MESHBEE_PAIR_ABORTED')
    expect((await rejection(pairCandidate(swarm(), forged, Buffer.alloc(16)))).code).to.equal('MESHBEE_INVALID_ARGUMENT')
  })
})
