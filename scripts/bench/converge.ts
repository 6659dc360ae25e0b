/**
 * Convergence of offline writers. W writers (the creator added the others, they replicated until
 * writable, then disconnected) each write `perWriter` puts one at a time while offline — distinct
 * keys, a seeded random order, ~100-byte JSON values. Then every writer connects to the creator
 * (a star) and the clock runs from the connect until every view is identical:
 *
 *   meshbee   db.hash() equal on every peer and, on every peer, every writer folded to its length
 *   autobase  every view (a Hyperbee) at the same version, holding all W × perWriter keys, and the
 *             contents equal
 */
import { now, profStart, profStop, randomKeys, until, valueOf } from './common.js'
import { baseChecker, basePeers, closeBases, closeMesh, link, linkBases, meshConverged, meshPeers, meshState, ownLengths } from './peers.js'
import type { ConvergeParams, Result } from './types.js'

export async function runConverge (system: 'meshbee' | 'autobase', p: ConvergeParams): Promise<Result> {
  const total = p.writers * p.perWriter
  const keys = randomKeys('c', total, 10 + p.writers)
  return system === 'meshbee' ? await meshbee(p, keys) : await autobase(p, keys)
}

async function meshbee (p: ConvergeParams, keys: string[]): Promise<Result> {
  let t = now()
  const peers = await meshPeers(p.writers)
  const setupMs = now() - t

  t = now()
  for (let w = 0; w < p.writers; w++) {
    for (let i = w * p.perWriter; i < (w + 1) * p.perWriter; i++) await peers[w].put(keys[i], valueOf(i, `w${w}`))
  }
  const writeMs = now() - t

  const lengths = ownLengths(peers)
  const before = peers.map((db) => db.stats())
  await profStart()
  t = now()
  const links = peers.slice(1).map((db) => link(peers[0], db))
  const done = await until(() => meshConverged(peers, lengths), { wakeOn: peers, what: () => 'meshbee views to converge: ' + meshState(peers) })
  const ms = done - t
  await profStop(`converge-${p.writers}x${p.perWriter}-meshbee`)

  const after = peers.map((db) => db.stats())
  let count = 0
  for await (const _ of peers[0].keys()) count++
  if (count !== keys.length) throw new Error(`meshbee converged with ${count} keys, expected ${keys.length}`)
  const sum = (f: (s: ReturnType<typeof peers[0]['stats']>) => number): number => after.reduce((a, s, i) => a + f(s) - f(before[i]), 0)
  const metrics = { ms, setupMs, writeMs, folds: sum((s) => s.folds), diffEntries: sum((s) => s.diffEntries) }
  for (const cut of links) cut()
  await closeMesh(peers)
  return { metrics }
}

async function autobase (p: ConvergeParams, keys: string[]): Promise<Result> {
  let t = now()
  const bases = await basePeers(p.writers)
  const setupMs = now() - t

  t = now()
  for (let w = 0; w < p.writers; w++) {
    for (let i = w * p.perWriter; i < (w + 1) * p.perWriter; i++) await bases[w].base.append({ key: keys[i], value: valueOf(i, `w${w}`) })
  }
  const writeMs = now() - t

  for (const b of bases) b.applied = 0
  const check = baseChecker(bases, keys.length)
  await profStart()
  t = now()
  const links = bases.slice(1).map((b) => linkBases(bases[0], b))
  // Autobase applies replicated nodes on its own (as meshbee folds on its own): the check only reads.
  const done = await until(check, { wakeOn: bases.map((b) => b.base), what: () => 'autobase views to converge' })
  const ms = done - t
  await profStop(`converge-${p.writers}x${p.perWriter}-autobase`)

  const applied = bases.reduce((a, b) => a + b.applied, 0)
  const metrics = { ms, setupMs, writeMs, applied, signedLength: bases[0].base.signedLength, systemLength: bases[0].base.length }
  for (const cut of links) cut()
  await closeBases(bases)
  return { metrics }
}
