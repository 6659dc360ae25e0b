/**
 * A view compared with a full re-fold of the logs it was folded from (as test/crash.test.ts does):
 * the view's LevelDB read raw, and the view a fresh peer folds from a copy of the same logs.
 */
import { expect } from 'chai'
import { cp, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { MeshDB } from '../../index.js'
import { ViewStore } from '../../lib/view.js'

export interface ViewDump {
  /**
   * Every (key, value) of the view's LevelDB as hex, in order, except the persisted HLC stamp,
   * the change feed (its seqs number this peer's commits, which a re-fold makes differently), the
   * compaction counters, and the tombstone bookkeeping (`graves`, `graveq`, `deaths` and their meta: each generation records
   * how far this peer's view had read when a commit left a key as a tombstone, which a re-fold
   * reads in other steps; {@link graveProblems} checks it on its own).
   */
  raw: Array<[string, string]>
  checkpoints: Map<string, number>
  /** Whether it holds the database key. */
  hasKey: boolean
}

/**
 * The view's LevelDB at `location` (not open elsewhere), read raw. `indexes: false` leaves the
 * secondary indexes and their declarations out (a view killed in an index rebuild holds part of it).
 * `merge: false` leaves out the slots and parts (what later merges read): a view that dropped
 * stable tombstones holds fewer of them than a re-fold, which has not yet (lib/stability.ts);
 * what every key reads as (values, items), the checkpoints, the digest and the indexes stay.
 */
export async function dumpView (location: string, opts: { indexes?: boolean, merge?: boolean } = {}): Promise<ViewDump> {
  const vs = new ViewStore(location)
  await vs.open()
  try {
    // (the compaction counters of stats() too: how much this peer collected and cleared; and the
    // newest stamp it dropped)
    const skip = ['hlc', 'seq', 'epoch', 'gen', 'graves', 'collected', 'collected-count', 'cleared-count', 'dropped', ...(opts.indexes === false ? ['indexes'] : [])].map((name) => Buffer.concat([Buffer.from(vs.meta.prefix), Buffer.from(name)]))
    const local = [vs.changes.prefix, vs.seqs.prefix, vs.graves.prefix, vs.graveq.prefix, vs.deaths.prefix,
      ...(opts.indexes === false ? [vs.index.prefix, vs.indexed.prefix] : []),
      ...(opts.merge === false ? [vs.slots.prefix, vs.parts.prefix] : [])].map((p) => Buffer.from(p))
    const raw: Array<[string, string]> = []
    for await (const [k, v] of vs.db.iterator()) {
      if (skip.some((s) => s.equals(k)) || local.some((p) => k.subarray(0, p.byteLength).equals(p))) continue
      raw.push([k.toString('hex'), v.toString('hex')])
    }
    return { raw, checkpoints: await vs.readCheckpoints(), hasKey: (await vs.getMeta('key')) !== undefined }
  } finally {
    await vs.close()
  }
}

/**
 * What is wrong with the tombstone bookkeeping of the view at `location` (not open elsewhere),
 * read raw (lib/view.ts `graves`, `graveq`, `deaths`): a key held as a tombstone reads as absent
 * and keeps slots or parts; `graves` and `graveq` list the same keys under the same generations,
 * each generation listed in `deaths`; meta 'graves' counts them. (A key left absent with slots
 * may be missing from it: such a key is only never dropped.)
 */
export async function graveProblems (location: string): Promise<string[]> {
  const vs = new ViewStore(location)
  await vs.open()
  const problems: string[] = []
  try {
    const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
    const byKey = new Map<string, number>()
    for await (const [k, v] of vs.graves.iterator()) byKey.set(hex(k), Number(Buffer.from(v).readBigUInt64BE(0)))
    const byGen = new Map<string, number>()
    for await (const [k] of vs.graveq.iterator()) byGen.set(hex(Buffer.from(k).subarray(8)), Number(Buffer.from(k).readBigUInt64BE(0)))
    const deaths = new Set<number>()
    for await (const [k] of vs.deaths.iterator()) deaths.add(Number(Buffer.from(k).readBigUInt64BE(0)))
    const count = await vs.readSeq('graves') ?? 0
    if (count !== byKey.size) problems.push(`meta 'graves' says ${count}, ${byKey.size} keys are held`)
    for (const [key, gen] of byKey) {
      const name = Buffer.from(key, 'hex').toString('latin1')
      if (byGen.get(key) !== gen) problems.push(`${name}: held under generation ${gen}, listed under ${String(byGen.get(key))}`)
      if (!deaths.has(gen)) problems.push(`${name}: generation ${gen} has no deaths record`)
      if (await vs.values.get(Buffer.from(key, 'hex')) !== undefined) problems.push(`${name}: held as a tombstone, yet it reads as present`)
    }
    for (const key of byGen.keys()) if (!byKey.has(key)) problems.push(`${Buffer.from(key, 'hex').toString('latin1')}: listed by generation only`)
  } finally {
    await vs.close()
  }
  return problems
}

/**
 * The view a fresh peer folds from a copy of the Corestore directory `cores` (closed), for the
 * database `key`. The copy goes without Corestore's device file, which pins a store to its inode
 * and holds no data.
 */
export async function refold (cores: string, key: Buffer): Promise<ViewDump> {
  const dir = await mkdtemp(join(tmpdir(), 'meshbee-refold-'))
  try {
    await cp(cores, join(dir, 'cores'), { recursive: true, filter: (src) => basename(src) !== 'CORESTORE' })
    const db = new MeshDB(dir, { key })
    await db.open()
    await db.close()
    return await dumpView(join(dir, 'view'))
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/** Fails, naming the first entry that differs, unless both views hold the same entries. */
export function expectSameView (actual: ViewDump, expected: ViewDump, what: string): void {
  const n = Math.max(actual.raw.length, expected.raw.length)
  for (let i = 0; i < n; i++) {
    const a = actual.raw[i]
    const e = expected.raw[i]
    if (a === undefined || e === undefined || a[0] !== e[0] || a[1] !== e[1]) {
      const show = (x: [string, string] | undefined): string => x === undefined
        ? '(none)'
        : `${Buffer.from(x[0], 'hex').toString('latin1')} = ${Buffer.from(x[1], 'hex').toString('latin1').slice(0, 200)}`
      expect.fail(`${what}: views differ at entry ${i} of ${actual.raw.length} vs ${expected.raw.length}:\n  got      ${show(a)}\n  expected ${show(e)}`)
    }
  }
}
