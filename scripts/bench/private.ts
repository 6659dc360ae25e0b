/**
 * Private databases (opt-in: `npm run bench -- --only private`; also on its own):
 *
 *   npx tsx scripts/bench/private.ts [PUTS] [ROUNDS]      (defaults 2,000 and 5)
 *
 * 1. Awaited puts, one at a time, into an encrypted database against the same puts into a plain
 *    one (the anchor), alternating, in one process. Target: encrypted ≥ 0.9× plain (ops/s).
 * 2. Convergence: 4 writers write 500 keys each offline, then connect in a full mesh, until every
 *    peer's view holds all 2,000 keys; encrypted against plain, alternating. Target: ≥ 0.85× (the
 *    plain time over the encrypted time). A second anchor, plain with sparse catch-up off, isolates
 *    the cipher: encrypted logs always download whole.
 * 3. Pairing on a local DHT testnet: from `createInvite` on a joined member to the new device's first
 *    read of the member's value (`MeshDB.pair`, then `get`), p50 and p90 of 10 pairings.
 *
 * Prints markdown on stdout; progress on stderr.
 */
import { performance } from 'node:perf_hooks'
import { MeshDB } from '../../index.js'
import { startTestnet } from '../../lib/testnet.js'
import { connect } from '../link.js'
import { lowerMedian as median, machine, progress as log, quantile as pct, removeTempDirs, tempDir, until, versions } from './common.js'

type DB = MeshDB<string, string>

const PUTS = Number(process.argv[2] ?? 2000)
const ROUNDS = Number(process.argv[3] ?? 5)
const WRITERS = 4
const PER_WRITER = 500
const PAIRINGS = 10

const fmt = (x: number, d = 2): string => x.toFixed(d)

/** Waits for `check`, re-checked on the databases' 'update' events (and every 20 ms). */
async function waitFor (check: () => boolean | Promise<boolean>, dbs: DB[], timeoutMs = 600_000): Promise<void> {
  await until(check, { wakeOn: dbs, pollMs: 20, timeoutMs })
}

/** Ops/s of PUTS awaited puts into a fresh database. */
async function puts (encrypted: boolean, round: number): Promise<number> {
  const db = new MeshDB<string, string>(await tempDir('put'), encrypted ? { encrypted: true } : {})
  await db.open()
  await db.put('warm', 'up')
  const value = 'v'.repeat(100)
  const t0 = performance.now()
  for (let i = 0; i < PUTS; i++) await db.put(`k/${round}/${String(i).padStart(6, '0')}`, value + i)
  const s = (performance.now() - t0) / 1000
  await db.close()
  return PUTS / s
}

/** ms from connecting WRITERS peers that each wrote PER_WRITER keys offline to identical full views. */
async function converge (encrypted: boolean, sparseAfter?: number): Promise<number> {
  const first = new MeshDB<string, string>(await tempDir('c'), encrypted ? { encrypted: true } : { sparseAfter })
  await first.open()
  const peers = [first]
  for (let i = 1; i < WRITERS; i++) {
    const p = new MeshDB<string, string>(await tempDir('c'), { key: first.key, ...(encrypted ? { encryptionKey: first.encryptionKey as Buffer } : { sparseAfter }) })
    await p.open()
    await first.addWriter(p.writerKey)
    peers.push(p)
  }
  // every peer a member (and, encrypted, holding the epoch's grant) before the offline writes
  let cuts = peers.slice(1).map((p) => connect(first, p))
  await waitFor(async () => {
    for (const p of peers) await p.update()
    return peers.every((p) => p.writable)
  }, peers)
  for (const c of cuts) c()
  for (const [w, p] of peers.entries()) {
    await p.batch(Array.from({ length: PER_WRITER }, (_, i) => ({ type: 'put' as const, key: `w${w}/${String(i).padStart(5, '0')}`, value: 'x'.repeat(64) + i })))
  }
  const t0 = performance.now()
  cuts = []
  for (let i = 0; i < peers.length; i++) for (let j = i + 1; j < peers.length; j++) cuts.push(connect(peers[i] as DB, peers[j] as DB))
  const total = WRITERS * PER_WRITER + 1
  await waitFor(async () => {
    for (const p of peers) if (await p.keys().all().then((k) => k.length) < WRITERS * PER_WRITER) return false
    return peers.every((p) => p.hash().equals(first.hash()))
  }, peers)
  const ms = performance.now() - t0
  void total
  for (const c of cuts) c()
  for (const p of peers) await p.close()
  return ms
}

async function pairings (): Promise<number[]> {
  const testnet = await startTestnet()
  const a = new MeshDB<string, string>(await tempDir('m'), { encrypted: true })
  await a.put('hello', 'world')
  await a.join({ swarm: testnet.swarmOptions() })
  const out: number[] = []
  for (let i = 0; i < PAIRINGS; i++) {
    const t0 = performance.now()
    const invite = await a.createInvite({ role: 'writer' })
    const b = await MeshDB.pair<string, string>(await tempDir('p'), invite, { swarm: testnet.swarmOptions() })
    await waitFor(async () => await b.get('hello') === 'world', [b], 60_000)
    out.push(performance.now() - t0)
    await b.close()
    log(`pairing ${i + 1}/${PAIRINGS}: ${fmt(out[i] as number, 0)} ms`)
  }
  await a.close()
  await testnet.destroy()
  return out
}

const putPlain: number[] = []
const putEnc: number[] = []
for (let r = 0; r < ROUNDS; r++) {
  // alternate which goes first
  const order = r % 2 === 0 ? [false, true] : [true, false]
  for (const enc of order) (enc ? putEnc : putPlain).push(await puts(enc, r))
  log(`puts round ${r + 1}/${ROUNDS}: plain ${fmt(putPlain[r] as number, 0)}/s, encrypted ${fmt(putEnc[r] as number, 0)}/s`)
  await removeTempDirs()
}
const convPlain: number[] = []
const convWhole: number[] = []
const convEnc: number[] = []
for (let r = 0; r < ROUNDS; r++) {
  const order = r % 2 === 0 ? ['plain', 'whole', 'enc'] : ['enc', 'whole', 'plain']
  for (const kind of order) {
    if (kind === 'plain') convPlain.push(await converge(false))
    else if (kind === 'whole') convWhole.push(await converge(false, Infinity))
    else convEnc.push(await converge(true))
  }
  log(`converge round ${r + 1}/${ROUNDS}: plain ${fmt(convPlain[r] as number, 0)} ms, plain without sparse catch-up ${fmt(convWhole[r] as number, 0)} ms, encrypted ${fmt(convEnc[r] as number, 0)} ms`)
  await removeTempDirs()
}
const pairs = await pairings()
await removeTempDirs()

const putRatio = median(putEnc) / median(putPlain)
const convRatio = median(convPlain) / median(convEnc)
const wholeRatio = median(convWhole) / median(convEnc)
process.stdout.write([
  '### Private databases',
  '',
  `Command: \`npx tsx scripts/bench/private.ts ${PUTS} ${ROUNDS}\`. Machine: ${machine()}. ${versions()}.`,
  '',
  '| measure | plain (anchor) | encrypted | ratio | target |',
  '|---|---|---|---|---|',
  `| awaited put, ops/s (median of ${ROUNDS} × ${PUTS}) | ${fmt(median(putPlain), 0)} | ${fmt(median(putEnc), 0)} | ${fmt(putRatio)}× | ≥ 0.9× ${putRatio >= 0.9 ? 'met' : 'not met'} |`,
  `| ${WRITERS} writers × ${PER_WRITER} offline keys to identical views, ms (median of ${ROUNDS}) | ${fmt(median(convPlain), 0)} | ${fmt(median(convEnc), 0)} | ${fmt(convRatio)}× | ≥ 0.85× ${convRatio >= 0.85 ? 'met' : 'not met'} |`,
  `| the same, the plain anchor with sparse catch-up off (an encrypted log downloads whole: its membership is read from every block) | ${fmt(median(convWhole), 0)} | ${fmt(median(convEnc), 0)} | ${fmt(wholeRatio)}× | — |`,
  `| pairing, invite to first read (testnet, ${PAIRINGS} pairings) | — | p50 ${fmt(median(pairs), 0)} ms, p90 ${fmt(pct(pairs, 0.9), 0)} ms | — | — |`,
  '',
  `Rounds (plain / encrypted): puts ${putPlain.map((x) => fmt(x, 0)).join(', ')} / ${putEnc.map((x) => fmt(x, 0)).join(', ')}; converge ${convPlain.map((x) => fmt(x, 0)).join(', ')} / ${convEnc.map((x) => fmt(x, 0)).join(', ')} ms (plain without sparse catch-up ${convWhole.map((x) => fmt(x, 0)).join(', ')}); pairings ${pairs.map((x) => fmt(x, 0)).join(', ')} ms.`,
  ''
].join('\n'))
