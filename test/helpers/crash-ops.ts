/**
 * Shared by the crash-consistency test (test/crash.test.ts) and its child process
 * (test/fixtures/crash-child.ts): a seeded PRNG, the random operations the child writes, and an
 * independent reference model of what a single writer's view must read after a sequence of them.
 *
 * The key space is small and split by kind, so that keys are overwritten often and the model stays
 * simple: `v*` keys hold plain values (put/del), `d*` keys hold documents (patch, whole-object put,
 * del), `s*` keys hold sets (sadd/srem). Batches mix `v*` and `d*` puts and dels. Now and then a
 * `write` is bulk: hundreds of members of one set or fields of one document in one append, so sets
 * and documents grow large and kills land inside large appends and their commits.
 *
 * The compaction runs (test/helpers/compact-child.ts) write {@link genCompactOp}: the same, with
 * many more deletes, of every kind of key, so that tombstones are there to collect.
 */
import type { Json } from '../../crdt/json.js'
import { prng } from '../../scripts/prng.js'

export { prng }

export const int = (rng: () => number, n: number): number => Math.floor(rng() * n)
export const pick = <T>(rng: () => number, xs: readonly T[]): T => xs[int(rng, xs.length)] as T

export const VALUE_KEYS = ['v0', 'v1', 'v2', 'v3', 'v4']
export const DOC_KEYS = ['d0', 'd1', 'd2']
export const SET_KEYS = ['s0', 's1', 's2']
const FIELDS = ['a', 'b', 'c', 'd']
const MEMBERS = ['m0', 'm1', 'm2', 'm3', 'm4']
/** How many members or fields a bulk write draws from. */
const BULK = 600

/** A batch item: a put or del of a `v*` or `d*` key (a `d*` put holds a JSON object). */
export type BatchItem = { kind: 'put', key: string, value: string } | { kind: 'del', key: string }

export type Op =
  | BatchItem
  /** `chained` picks the chained-batch API over the array form. */
  | { kind: 'batch', ops: BatchItem[], chained: boolean }
  /** A field given as `[name]` alone is deleted (set to undefined). */
  | { kind: 'patch', key: string, fields: Array<[string] | [string, Json]> }
  | { kind: 'sadd', key: string, member: string }
  | { kind: 'srem', key: string, member: string }
  /** Data writes of every kind in one `db.write` (one atomic append). */
  | { kind: 'write', ops: DataOp[] }

/** The ops a `write` holds. */
export type DataOp = Exclude<Op, { kind: 'batch' } | { kind: 'write' }>

/** Messages the child writes to stdout, one JSON object a line. */
/**
 * The index a crash-test run keeps: a field index on documents' `tag`, its version moving on every
 * sixth run, so that those runs rebuild it when they open (and some kills land in the rebuild).
 */
export function indexesFor (run: number): { tag: { version: number, field: string } } {
  return { tag: { version: 1 + Math.floor(run / 6), field: 'tag' } }
}

export type ChildMessage =
  | { t: 'open' }
  | { t: 'ready', key: string, writer: string }
  | { t: 'issue', n: number, op: Op }
  /** `seq`: the change feed's last seq once the write resolved (a reader may have read it). */
  | { t: 'ack', n: number, seq?: number }
  /** The compaction runs: its `n`th `db.compact()` starts, and resolved (what it did). */
  | { t: 'compacting', n: number }
  | { t: 'compacted', n: number, cleared: number, collected: number, tombstones: number }

function filler (rng: () => number): string {
  const len = rng() < 0.05 ? 2000 + int(rng, 3000) : int(rng, 120)
  return 'x'.repeat(len)
}

function docObject (rng: () => number, tag: string): { [k: string]: Json } {
  const o: { [k: string]: Json } = { tag }
  for (const f of FIELDS) if (rng() < 0.5) o[f] = int(rng, 100)
  return o
}

function fieldValue (rng: () => number, tag: string): Json {
  switch (int(rng, 4)) {
    case 0: return int(rng, 1000)
    case 1: return tag
    case 2: return null
    default: return { at: tag, list: [int(rng, 9), 'y'] }
  }
}

function batchItem (rng: () => number, tag: string): BatchItem {
  if (rng() < 0.7) {
    const key = pick(rng, VALUE_KEYS)
    return rng() < 0.75 ? { kind: 'put', key, value: tag + filler(rng) } : { kind: 'del', key }
  }
  const key = pick(rng, DOC_KEYS)
  return rng() < 0.75 ? { kind: 'put', key, value: JSON.stringify(docObject(rng, tag)) } : { kind: 'del', key }
}

/** The next random operation; `tag` makes every written value unique (run and op number). */
export function genOp (rng: () => number, tag: string): Op {
  const r = rng()
  if (r < 0.25) return { kind: 'put', key: pick(rng, VALUE_KEYS), value: tag + filler(rng) }
  if (r < 0.33) return { kind: 'del', key: pick(rng, VALUE_KEYS) }
  if (r >= 0.43 && r < 0.48) {
    if (rng() < 0.3) return bulkWrite(rng, tag)
    const ops: DataOp[] = []
    const n = 2 + int(rng, 4)
    for (let i = 0; i < n; i++) ops.push(genDataOp(rng, `${tag}.${i}`))
    return { kind: 'write', ops }
  }
  if (r < 0.48) {
    const ops: BatchItem[] = []
    const n = 2 + int(rng, 4)
    for (let i = 0; i < n; i++) ops.push(batchItem(rng, `${tag}.${i}`))
    return { kind: 'batch', ops, chained: rng() < 0.5 }
  }
  if (r < 0.68) {
    const fields: Array<[string] | [string, Json]> = []
    for (const f of FIELDS) {
      if (rng() < 0.4) fields.push(rng() < 0.25 ? [f] : [f, fieldValue(rng, tag)])
    }
    if (fields.length === 0) fields.push([pick(rng, FIELDS), tag])
    return { kind: 'patch', key: pick(rng, DOC_KEYS), fields }
  }
  if (r < 0.73) return { kind: 'put', key: pick(rng, DOC_KEYS), value: JSON.stringify(docObject(rng, tag)) }
  if (r < 0.76) return { kind: 'del', key: pick(rng, DOC_KEYS) }
  if (r < 0.89) return { kind: 'sadd', key: pick(rng, SET_KEYS), member: pick(rng, MEMBERS) }
  return { kind: 'srem', key: pick(rng, SET_KEYS), member: pick(rng, MEMBERS) }
}

/** A write of 50-300 adds and removes on one set, or one patch of as many fields of one document. */
function bulkWrite (rng: () => number, tag: string): Op {
  const n = 50 + int(rng, 250)
  if (rng() < 0.5) {
    const key = pick(rng, SET_KEYS)
    const ops: DataOp[] = []
    for (let i = 0; i < n; i++) ops.push({ kind: rng() < 0.8 ? 'sadd' : 'srem', key, member: 'b' + String(int(rng, BULK)) })
    return { kind: 'write', ops }
  }
  const fields: Array<[string] | [string, Json]> = []
  for (let i = 0; i < n; i++) fields.push(rng() < 0.1 ? ['f' + String(int(rng, BULK))] : ['f' + String(int(rng, BULK)), fieldValue(rng, tag)])
  return { kind: 'write', ops: [{ kind: 'patch', key: pick(rng, DOC_KEYS), fields }] }
}

/** A key of any kind: a value, a document or a set. */
const ANY_KEYS = [...VALUE_KEYS, ...DOC_KEYS, ...SET_KEYS]

/** An op of the compaction runs: a delete of any key one time in three, else {@link genOp}. */
export function genCompactOp (rng: () => number, tag: string): Op {
  if (rng() < 0.33) return { kind: 'del', key: pick(rng, ANY_KEYS) }
  return genOp(rng, tag)
}

function genDataOp (rng: () => number, tag: string): DataOp {
  while (true) {
    const op = genOp(rng, tag)
    if (op.kind !== 'batch' && op.kind !== 'write') return op
  }
}

/** JSON with object keys sorted, recursively: the form both sides are compared in. */
export function canonical (v: Json): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v)
  if (Array.isArray(v)) return '[' + v.map(canonical).join(',') + ']'
  return '{' + Object.keys(v).sort().map((k) => JSON.stringify(k) + ':' + canonical(v[k] as Json)).join(',') + '}'
}

interface DocState { reg: string | null, fields: Map<string, { value: Json } | null> }
interface SetState { touched: boolean, members: Set<string> }

/**
 * A sequential reference model of one writer's view: every op applies in order (a single writer's
 * stamps only grow, so last write wins per key; a whole-value put or del drops older fields).
 */
export class Model {
  private readonly values = new Map<string, string | null>()
  private readonly docs = new Map<string, DocState>()
  private readonly sets = new Map<string, SetState>()

  apply (op: Op): void {
    switch (op.kind) {
      case 'batch':
      case 'write':
        for (const item of op.ops) this.apply(item)
        break
      case 'put':
      case 'del': {
        const value = op.kind === 'put' ? op.value : null
        if (op.key.startsWith('d')) this.docs.set(op.key, { reg: value, fields: new Map() })
        // a set's delete: its adds so far are older than it (later ones are not)
        else if (op.key.startsWith('s')) this.sets.set(op.key, { touched: false, members: new Set() })
        else this.values.set(op.key, value)
        break
      }
      case 'patch': {
        const d = this.docs.get(op.key) ?? { reg: null, fields: new Map() }
        for (const f of op.fields) d.fields.set(f[0], f.length === 1 ? null : { value: f[1] })
        this.docs.set(op.key, d)
        break
      }
      case 'sadd':
      case 'srem': {
        const s = this.sets.get(op.key) ?? { touched: false, members: new Set() }
        if (op.kind === 'sadd') {
          s.touched = true
          s.members.add(op.member)
        } else {
          s.members.delete(op.member)
        }
        this.sets.set(op.key, s)
        break
      }
    }
  }

  /** What the view must read: user key → its value, documents and sets in canonical JSON. */
  render (): Map<string, string> {
    const out = new Map<string, string>()
    for (const [k, v] of this.values) if (v !== null) out.set(k, v)
    for (const [k, d] of this.docs) {
      if (d.fields.size === 0) {
        if (d.reg !== null) out.set(k, canonical(JSON.parse(d.reg) as Json))
        continue
      }
      const doc: { [k: string]: Json } = d.reg === null ? {} : JSON.parse(d.reg) as { [k: string]: Json }
      for (const [name, f] of d.fields) {
        if (f === null) delete doc[name]
        else doc[name] = f.value
      }
      out.set(k, canonical(doc))
    }
    for (const [k, s] of this.sets) if (s.touched) out.set(k, canonical([...s.members].sort()))
    return out
  }
}

/** A view read as strings, brought to the model's form (documents and sets canonicalized). */
export function normalizeView (entries: Iterable<[string, string]>): Map<string, string> {
  const out = new Map<string, string>()
  for (const [k, v] of entries) {
    out.set(k, k.startsWith('v') ? v : canonical(JSON.parse(v) as Json))
  }
  return out
}
