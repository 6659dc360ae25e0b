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
   * Every (key, value) of the view's LevelDB as hex, in order, except the persisted HLC stamp and
   * the change feed (its seqs number this peer's commits, which a re-fold makes differently).
   */
  raw: Array<[string, string]>
  checkpoints: Map<string, number>
  /** Whether it holds the database key. */
  hasKey: boolean
}

/**
 * The view's LevelDB at `location` (not open elsewhere), read raw. `indexes: false` leaves the
 * secondary indexes and their declarations out (a view killed in an index rebuild holds part of it).
 */
export async function dumpView (location: string, opts: { indexes?: boolean } = {}): Promise<ViewDump> {
  const vs = new ViewStore(location)
  await vs.open()
  try {
    const skip = ['hlc', 'seq', 'epoch', ...(opts.indexes === false ? ['indexes'] : [])].map((name) => Buffer.concat([Buffer.from(vs.meta.prefix), Buffer.from(name)]))
    const local = [vs.changes.prefix, vs.seqs.prefix, ...(opts.indexes === false ? [vs.index.prefix, vs.indexed.prefix] : [])].map((p) => Buffer.from(p))
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
