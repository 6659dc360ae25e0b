/**
 * Parts (log format 2): does a write to a large set or document cost what the same write costs on
 * a small one? One fresh database per trial (`valueEncoding: 'json'`):
 *
 *   built first, untimed   a set of `members` members (`db.write` of `batch` sadds at a time) and a
 *                          document of `fields` fields (`db.write` of one patch of `batch` fields),
 *                          both in a seeded random order, and a document of `smallFields` fields
 *   measured               `ops` single awaited writes per case after `warmup` unmeasured ones, the
 *                          cases interleaved write by write (their order rotating with the round),
 *                          so every case sees the same heap, JIT state and background work:
 *
 *     saddBig     a new member to the large set, at a random place among its members
 *     saddEmpty   a member to a key holding no set (a new key each time: the set is empty)
 *     saddSmall   a new member to one set that starts empty (0 to warmup + ops - 1 members)
 *     saddLast    a new member to the large set that sorts after all of its members (a
 *                 diagnostic: the large set, but its entries' log keys all in one place)
 *     patchBig    one existing field of the large document (a different one each time) set to a
 *                 new number
 *     patchSmall  one existing field of the small document set to a new number
 *
 * Figures per case: median, mean and p95 time of a write (ms); the first writes after the build
 * (cold: to an empty set, then to the large set, then to the large document); the log bytes
 * appended per write: the own core's `byteLength` delta (Hypercore block bytes: the Hyperbee node,
 * entry and index path) and, of those, the entry's own bee key + value; and, over a few more
 * untimed writes, the Hypercore blocks Hyperbee reads per write (`core.get` calls: its B-tree path
 * where not in memory). Also: the block bytes of a sadd to an empty set in a second, fresh
 * database (a near-empty Hyperbee), and the time of a Hyperbee lookup in the own log of a random
 * member of the large set against one of the small set's.
 */
// loaded only when the trial runs: importing meshbee patches Hypercore (lib/hypercore-patch.ts)
import type { MeshDB } from '../../index.js'
import { keyOf, now, profStart, profStop, randomKeys, tempDir } from './common.js'
import type { PartsParams, Result } from './types.js'

type Json = string | number

/** The own writer log, as the engine holds it (not public API: the benchmark reads its size). */
interface OwnLog {
  core: { byteLength: number, length: number }
  bee: {
    getBySeq: (seq: number) => Promise<{ key: Uint8Array, value: Uint8Array } | null>
    get: (key: Uint8Array) => Promise<{ value: Uint8Array } | null>
    /** The core Hyperbee reads its nodes from (block by block). */
    core: { get: (...args: unknown[]) => Promise<unknown> }
  }
}

function ownLog (db: MeshDB<string, Json>): OwnLog {
  return (db as unknown as { engine: { own: OwnLog } }).engine.own
}

export const PARTS_CASES = ['saddBig', 'saddEmpty', 'saddSmall', 'saddLast', 'patchBig', 'patchSmall'] as const
type Case = (typeof PARTS_CASES)[number]

function quantile (xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b)
  if (s.length === 0) return NaN
  if (q === 0.5) {
    const m = s.length >> 1
    return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2
  }
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length

function gc (): void {
  (globalThis as { gc?: () => void }).gc?.()
}

// Keys of one length, and members and field names of 16 bytes everywhere, so that entry sizes differ
// only by what the case changes.
const SET_BIG = 'set/big/0000000'
const SET_SMALL = 'set/sml/0000000'
const setEmpty = (i: number): string => 'set/emp/' + String(i).padStart(7, '0')
const DOC_BIG = 'doc/big/0000000'
const DOC_SMALL = 'doc/sml/0000000'

export async function runParts (p: PartsParams, round: number): Promise<Result> {
  const { MeshDB } = await import('../../index.js')
  const { MEMBER_NS, memberName, partBeeKey } = await import('../../lib/entry.js')
  const dir = await tempDir('parts')
  const db = new MeshDB<string, Json>(dir, { valueEncoding: 'json' })
  await db.open()
  const own = ownLog(db)
  const counted = Math.min(p.ops, 50)
  const extra = 1 + p.warmup + p.ops + counted
  // members and field names of 16 bytes in a seeded random order; the set's last `extra` members
  // are the ones added while measuring, so each lands at a random place among the others
  const members = randomKeys('m', p.members + extra, 41)
  const fieldNames = randomKeys('f', p.fields, 42)
  const smallNames = Array.from({ length: p.smallFields }, (_, i) => keyOf('g', i))

  let t = now()
  for (let off = 0; off < p.members; off += p.batch) {
    const ops = []
    for (let i = off; i < Math.min(p.members, off + p.batch); i++) ops.push({ type: 'sadd' as const, key: SET_BIG, member: members[i] })
    await db.write(ops)
  }
  const buildSetMs = now() - t
  t = now()
  for (let off = 0; off < p.fields; off += p.batch) {
    const fields: Record<string, number> = {}
    for (let i = off; i < Math.min(p.fields, off + p.batch); i++) fields[fieldNames[i]] = i
    await db.write([{ type: 'patch', key: DOC_BIG, fields }])
  }
  const buildDocMs = now() - t
  await db.patch(DOC_SMALL, Object.fromEntries(smallNames.map((n, i) => [n, i])))

  let nextMember = p.members
  let emptyKey = 0
  let smallMember = 0
  let lastMember = 0
  let bigField = 0
  let smallField = 0
  const write: Record<Case, () => Promise<void>> = {
    saddBig: async () => { await db.sadd(SET_BIG, members[nextMember++]) },
    saddEmpty: async () => { await db.sadd(setEmpty(emptyKey), keyOf('m', emptyKey++)) },
    saddSmall: async () => { await db.sadd(SET_SMALL, keyOf('m', smallMember++)) },
    saddLast: async () => { await db.sadd(SET_BIG, keyOf('z', lastMember++)) },
    // the large document's fields in turn (a random sample of them: the build's random order)
    patchBig: async () => { await db.patch(DOC_BIG, { [fieldNames[bigField++ % p.fields]]: 1_000_000 + bigField }) },
    patchSmall: async () => { await db.patch(DOC_SMALL, { [smallNames[smallField++ % p.smallFields]]: 1_000_000 + smallField }) }
  }

  gc()
  // the first writes after the build, in this order: to an empty set, to the large set, to the
  // large document
  t = now()
  await write.saddEmpty()
  const firstSaddEmptyMs = now() - t
  t = now()
  await write.saddBig()
  const firstSaddBigMs = now() - t
  t = now()
  await write.patchBig()
  const firstPatchBigMs = now() - t

  const order = PARTS_CASES.map((_, i) => PARTS_CASES[(i + round) % PARTS_CASES.length])
  for (let i = 0; i < p.warmup; i++) for (const c of order) await write[c]()
  gc()

  const zero = (): Record<Case, number> => ({ saddBig: 0, saddEmpty: 0, saddSmall: 0, saddLast: 0, patchBig: 0, patchSmall: 0 })
  const times: Record<Case, number[]> = { saddBig: [], saddEmpty: [], saddSmall: [], saddLast: [], patchBig: [], patchSmall: [] }
  const blockBytes = zero()
  const entryBytes = zero()
  await profStart()
  for (let i = 0; i < p.ops; i++) {
    for (const c of order) {
      const b0 = own.core.byteLength
      const len0 = own.core.length
      const t0 = now()
      await write[c]()
      times[c].push(now() - t0)
      blockBytes[c] += own.core.byteLength - b0
      if (own.core.length !== len0 + 1) throw new Error(`${c} appended ${own.core.length - len0} blocks, expected 1`)
      const node = await own.bee.getBySeq(len0)
      if (node === null) throw new Error(`${c}: no entry at ${len0}`)
      entryBytes[c] += node.key.byteLength + node.value.byteLength
    }
  }
  await profStop('parts-meshbee')

  // Hyperbee lookups in the own log, interleaved: a random member of the large set (a random path
  // through the log's B-tree of every entry) against a member of the small set (written lately)
  const beeKey = (set: string, member: string): Uint8Array => partBeeKey(MEMBER_NS, Buffer.from(set), memberName(member))
  const lookRandom: number[] = []
  const lookSmall: number[] = []
  for (let i = 0; i < p.ops; i++) {
    let t0 = now()
    const a = await own.bee.get(beeKey(SET_BIG, members[Math.floor(i * p.members / p.ops)]))
    lookRandom.push(now() - t0)
    t0 = now()
    const b = await own.bee.get(beeKey(SET_SMALL, keyOf('m', i % smallMember)))
    lookSmall.push(now() - t0)
    if (a === null || b === null) throw new Error('a member\'s log entry is missing')
  }

  // Hypercore blocks Hyperbee reads per write (its B-tree path: nodes it does not hold in memory),
  // counted over `counted` more interleaved writes per case, untimed
  const reads = zero()
  let gets = 0
  const core = own.bee.core
  const get = core.get
  core.get = async (...args: unknown[]) => { gets++; return await get.apply(core, args) }
  for (let i = 0; i < counted; i++) {
    for (const c of order) {
      const g0 = gets
      await write[c]()
      reads[c] += gets - g0
    }
  }
  core.get = get

  // what was written reads back
  if (!await db.sismember(SET_BIG, members[nextMember - 1])) throw new Error('the large set lacks its last added member')
  if (!await db.sismember(SET_BIG, members[0])) throw new Error('the large set lacks its first member')
  const tail = await db.smembers(SET_BIG, { reverse: true, limit: 1 })
  if (tail[0] !== keyOf('z', lastMember - 1)) throw new Error(`the large set ends with ${String(tail[0])}`)
  const doc = await db.get(DOC_BIG) as unknown as Record<string, number>
  if (Object.keys(doc).length !== p.fields) throw new Error(`the large document has ${Object.keys(doc).length} fields`)
  if ((await db.smembers(SET_SMALL)).length !== smallMember) throw new Error('the small set is not what was added')
  await db.close()

  // a sadd to an empty set in a log that holds nothing else: the block bytes of a small Hyperbee
  const fresh = new MeshDB<string, Json>(await tempDir('parts-fresh'), { valueEncoding: 'json' })
  await fresh.open()
  const freshLog = ownLog(fresh)
  await fresh.sadd(SET_SMALL, keyOf('n', 0)) // the first put also writes Hyperbee's header block
  const fb0 = freshLog.core.byteLength
  for (let i = 0; i < p.ops; i++) await fresh.sadd(setEmpty(i), keyOf('m', i))
  const freshSaddBytes = (freshLog.core.byteLength - fb0) / p.ops
  await fresh.close()

  const metrics: Record<string, number> = {
    buildSetMs,
    buildDocMs,
    firstSaddEmptyMs,
    firstSaddBigMs,
    firstPatchBigMs,
    freshSaddBytes,
    lookupRandomMs: quantile(lookRandom, 0.5),
    lookupSmallMs: quantile(lookSmall, 0.5)
  }
  for (const c of PARTS_CASES) {
    metrics[`${c}Ms`] = quantile(times[c], 0.5)
    metrics[`${c}Mean`] = mean(times[c])
    metrics[`${c}P95`] = quantile(times[c], 0.95)
    metrics[`${c}Bytes`] = blockBytes[c] / p.ops
    metrics[`${c}Entry`] = entryBytes[c] / p.ops
    metrics[`${c}Reads`] = reads[c] / counted
  }
  metrics.saddRatio = metrics.saddBigMs / metrics.saddEmptyMs
  metrics.saddSmallRatio = metrics.saddBigMs / metrics.saddSmallMs
  metrics.saddLastRatio = metrics.saddLastMs / metrics.saddEmptyMs
  metrics.patchRatio = metrics.patchBigMs / metrics.patchSmallMs
  return { metrics }
}
