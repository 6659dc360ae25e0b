/**
 * Catch-up after being offline. W writers and one more peer share a database and converge on K
 * keys (written once by the first writer). The extra peer goes away; the writers, connected to
 * each other, overwrite all K keys `overwrites` times each (one batch of K puts per writer each
 * time) and converge among themselves. Then the away peer connects to the first writer and the
 * clock runs until its view equals theirs.
 *
 * What the away peer reads: meshbee counts stats().diffEntries (changed (writer, key) pairs read
 * from Hyperbee diffs; at best W × K, whatever the number of overwrites) and keysMerged (at best
 * K); autobase counts the nodes its apply() handles (every node, W × K × overwrites, unless it
 * fast-forwards).
 */
import { now, profStart, profStop, randomKeys, until, valueOf, type Value } from './common.js'
import { baseChecker, basePeers, closeBases, closeMesh, link, linkBases, meshConverged, meshPeers, meshState, ownLengths } from './peers.js'
import type { CatchupParams, Result } from './types.js'

export async function runCatchup (system: 'meshbee' | 'autobase', p: CatchupParams): Promise<Result> {
  const keys = randomKeys('u', p.keys, 20)
  return system === 'meshbee' ? await meshbee(p, keys) : await autobase(p, keys)
}

function ops (keys: string[], writer: number, round: number): Array<{ type: 'put', key: string, value: Value }> {
  return keys.map((key, i) => ({ type: 'put' as const, key, value: valueOf(i, `w${writer}`, round) }))
}

async function meshbee (p: CatchupParams, keys: string[]): Promise<Result> {
  const peers = await meshPeers(p.writers + 1)
  const writers = peers.slice(0, p.writers)
  const away = peers[p.writers]

  await writers[0].batch(ops(keys, 0, 0))
  let links = peers.slice(1).map((db) => link(peers[0], db))
  await until(() => meshConverged(peers, ownLengths(peers)), { wakeOn: peers, timeoutMs: 60_000, what: () => 'initial state everywhere: ' + meshState(peers) })
  links.pop()?.() // the away peer leaves

  let t = now()
  for (let r = 1; r <= p.overwrites; r++) {
    for (let w = 0; w < p.writers; w++) await writers[w].batch(ops(keys, w, r))
  }
  const lengths = ownLengths(peers)
  await until(() => meshConverged(writers, lengths), { wakeOn: writers, pollMs: 20, what: () => 'writers to converge' })
  const writeMs = now() - t

  const before = away.stats()
  await profStart()
  t = now()
  links.push(link(peers[0], away))
  const done = await until(() => meshConverged([peers[0], away], lengths), { wakeOn: [away], what: () => 'the away peer to catch up' })
  const ms = done - t
  await profStop('catchup-meshbee')
  const after = away.stats()

  for (const cut of links) cut()
  links = []
  await closeMesh(peers)
  return {
    metrics: {
      ms,
      writeMs,
      read: after.diffEntries - before.diffEntries,
      keysMerged: after.keysMerged - before.keysMerged,
      folds: after.folds - before.folds,
      sparseFetches: after.sparseFetches - before.sparseFetches,
      sparseBlocks: after.sparseBlocks - before.sparseBlocks,
      changedPairs: p.writers * p.keys,
      entries: p.writers * p.keys * p.overwrites
    }
  }
}

async function autobase (p: CatchupParams, keys: string[]): Promise<Result> {
  const bases = await basePeers(p.writers + 1)
  const writers = bases.slice(0, p.writers)
  const away = bases[p.writers]
  const toNodes = (w: number, r: number): Array<{ key: string, value: Value }> => ops(keys, w, r).map(({ key, value }) => ({ key, value }))

  await writers[0].base.append(toNodes(0, 0))
  const links = bases.slice(1).map((b) => linkBases(bases[0], b))
  await until(baseChecker(bases, keys.length), { wakeOn: bases.map((b) => b.base), what: () => 'initial state everywhere' })
  links.pop()?.()

  let t = now()
  for (let r = 1; r <= p.overwrites; r++) {
    for (let w = 0; w < p.writers; w++) await writers[w].base.append(toNodes(w, r))
  }
  const lastRound = new Map(keys.map((k) => [k, p.overwrites]))
  await until(async () => {
    if (!await baseChecker(writers, keys.length)()) return false
    // every key shows a last-round value (which writer's depends on autobase's order)
    for await (const node of writers[0].base.view.createReadStream()) if (node.value.round !== lastRound.get(node.key)) return false
    return true
  }, { wakeOn: writers.map((b) => b.base), pollMs: 20, what: () => 'writers to converge' })
  const writeMs = now() - t

  away.applied = 0
  const check = baseChecker([bases[0], away], keys.length)
  await profStart()
  t = now()
  links.push(linkBases(bases[0], away))
  const done = await until(check, { wakeOn: [away.base], what: () => 'the away peer to catch up' })
  const ms = done - t
  await profStop('catchup-autobase')

  for (const cut of links) cut()
  const metrics = {
    ms,
    writeMs,
    read: away.applied,
    changedPairs: p.writers * p.keys,
    entries: p.writers * p.keys * p.overwrites,
    signedLength: bases[0].base.signedLength,
    systemLength: bases[0].base.length
  }
  await closeBases(bases)
  return { metrics }
}
