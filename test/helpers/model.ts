/**
 * A deliberately naive model of meshbee's CRDT rules, written from the rules in DESIGN.md and not
 * from crdt/: the convergence tests compare the real views against it.
 *
 * An op's version is (wall, counter, writer key): the peers' wall clocks are set to each op's
 * wall, so an op alone is stamped (wall, 0), and the k-th op of a `write` (one atomic append,
 * stamped op by op) (wall, k). A `patch` of several fields stamps them all alike. The rules do not
 * depend on the log format an op was written in (`format`: 1 as the release before format 2
 * wrote, 2 or absent as now).
 */
import type { MeshDB } from '../../index.js'
import { prng } from '../../scripts/prng.js'

type Base = { peer: number, wall: number, counter?: number, format?: 1 | 2 }

/** A single write: one key, one field or member. */
export type SimpleOp =
  | Base & { type: 'put', key: string, value: Record<string, string> }
  | Base & { type: 'del', key: string }
  | Base & { type: 'patch', key: string, field: string, value: string | undefined }
  | Base & { type: 'sadd', key: string, member: string }
  | Base & { type: 'srem', key: string, member: string }

export type Op =
  | SimpleOp
  /** One patch of many fields: one stamp for all of them. */
  | Base & { type: 'patch-many', key: string, fields: Array<[string, string | undefined]> }
  /** Simple ops in one `db.write`: the k-th is stamped (wall, k). */
  | Base & { type: 'write', items: Array<SimpleOp | (Base & { type: 'patch-many', key: string, fields: Array<[string, string | undefined]> })> }


export const KEYS = ['k0', 'k1', 'k2', 'k3']
export const START = 1_000_000

export function generate (seed: number, perPeer: number): Op[] {
  const rnd = prng(seed)
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]
  const ops: Op[] = []
  for (let peer = 0; peer < 3; peer++) {
    let wall = START
    for (let i = 0; i < perPeer; i++) {
      wall += 1 + Math.floor(rnd() * 3) // walls collide across peers: ties go to the writer key
      const key = pick(KEYS)
      const r = rnd()
      if (r < 0.2) ops.push({ peer, wall, type: 'put', key, value: { by: 'p' + peer, n: String(i) } })
      else if (r < 0.3) ops.push({ peer, wall, type: 'del', key })
      else if (r < 0.6) ops.push({ peer, wall, type: 'patch', key, field: pick(['f0', 'f1', 'f2']), value: rnd() < 0.2 ? undefined : `p${peer}-${i}` })
      else if (r < 0.85) ops.push({ peer, wall, type: 'sadd', key, member: pick(['m0', 'm1', 'm2']) })
      else ops.push({ peer, wall, type: 'srem', key, member: pick(['m0', 'm1', 'm2']) })
    }
  }
  return ops
}

type V = readonly [number, number, string] // (wall, counter, writer key hex): the version order
const gt = (a: V, b: V | null): boolean => b === null || a[0] > b[0] || (a[0] === b[0] && (a[1] > b[1] || (a[1] === b[1] && a[2] > b[2])))

/** The simple ops that `ops` stand for, each with its counter: a write's items, a patch's fields. */
export function flatten (ops: Op[]): SimpleOp[] {
  const out: SimpleOp[] = []
  const one = (o: SimpleOp | (Base & { type: 'patch-many', key: string, fields: Array<[string, string | undefined]> }), counter: number): void => {
    if (o.type === 'patch-many') for (const [field, value] of o.fields) out.push({ peer: o.peer, wall: o.wall, counter, type: 'patch', key: o.key, field, value })
    else out.push({ ...o, counter })
  }
  for (const o of ops) {
    if (o.type === 'write') o.items.forEach((item, k) => { one({ ...item, peer: o.peer, wall: o.wall }, k) })
    else one(o, 0)
  }
  return out
}

/**
 * The CRDT rules, written out the slow and obvious way. Peers were disconnected, so a peer's
 * remove observed only its own earlier adds.
 */
export function expected (all: Op[], writers: string[], keys: readonly string[] = KEYS): Map<string, unknown> {
  const ops = flatten(all)
  const out = new Map<string, unknown>()
  for (const key of keys) {
    const mine = ops.filter((o) => o.key === key)
    const ver = (o: SimpleOp): V => [o.wall, o.counter ?? 0, writers[o.peer]]
    let reg: { v: V, value: Record<string, string> | null } | null = null
    for (const o of mine) {
      if ((o.type === 'put' || o.type === 'del') && gt(ver(o), reg?.v ?? null)) reg = { v: ver(o), value: o.type === 'put' ? o.value : null }
    }
    const reset = reg?.v ?? null
    const fields = new Map<string, { v: V, value: string | undefined }>()
    for (const o of mine) {
      if (o.type !== 'patch' || !gt(ver(o), reset)) continue
      const f = fields.get(o.field)
      if (f === undefined || gt(ver(o), f.v)) fields.set(o.field, { v: ver(o), value: o.value })
    }
    const adds = mine.filter((o) => o.type === 'sadd' && gt(ver(o), reset)) as Array<SimpleOp & { type: 'sadd' }>
    const removedTags = new Set<SimpleOp>()
    for (const o of mine) {
      if (o.type !== 'srem') continue
      for (const a of adds) if (a.peer === o.peer && a.member === o.member && gt(ver(o), ver(a))) removedTags.add(a)
    }
    let newestField: V | null = null
    for (const f of fields.values()) if (gt(f.v, newestField)) newestField = f.v
    let newestTag: V | null = null
    for (const a of adds) if (gt(ver(a), newestTag)) newestTag = ver(a)

    if (newestField !== null && (newestTag === null || gt(newestField, newestTag))) {
      const doc: Record<string, string> = { ...(reg?.value ?? {}) }
      for (const [name, f] of fields) {
        if (f.value === undefined) Reflect.deleteProperty(doc, name)
        else doc[name] = f.value
      }
      out.set(key, doc)
    } else if (newestTag !== null) {
      out.set(key, [...new Set(adds.filter((a) => !removedTags.has(a)).map((a) => a.member))].sort())
    } else if (reg !== null && reg.value !== null) {
      out.set(key, reg.value)
    }
  }
  return out
}

/** Applies an op to the peer's database, in the log format the op names (2 if none). */
export async function apply (db: MeshDB<string, any>, op: Op): Promise<void> {
  db.engine.testHooks.format = op.format ?? 2
  switch (op.type) {
    case 'put': return await db.put(op.key, op.value)
    case 'del': return await db.del(op.key)
    case 'patch': return await db.patch(op.key, { [op.field]: op.value })
    case 'patch-many': return await db.patch(op.key, Object.fromEntries(op.fields))
    case 'sadd': return await db.sadd(op.key, op.member)
    case 'srem': return await db.srem(op.key, op.member)
    case 'write': return await db.write(op.items.map((o) => {
      switch (o.type) {
        case 'put': return { type: 'put', key: o.key, value: o.value }
        case 'del': return { type: 'del', key: o.key }
        case 'patch': return { type: 'patch', key: o.key, fields: { [o.field]: o.value } }
        case 'patch-many': return { type: 'patch', key: o.key, fields: Object.fromEntries(o.fields) }
        case 'sadd':
        case 'srem': return { type: o.type, key: o.key, member: o.member }
      }
    }))
  }
}

/**
 * Ops for the large and mixed-format convergence cases: per peer, `perPeer` small ops (as
 * {@link generate}) and `large` large ones — a `write` of 50–400 set adds and removes on one key
 * (members of a pool of 300, so adds and removes meet), a patch of 50–400 fields, or a `write`
 * mixing patches, adds and removes of one key with a put or del of that same key among them.
 * `upgrades[p]` is the index of peer p's first op in log format 2: before it the peer writes
 * format 1 (0: format 2 throughout; `perPeer + large` or more: format 1 throughout).
 */
export function generateLarge (seed: number, perPeer: number, large: number, upgrades: number[]): Op[] {
  const rnd = prng(seed)
  const int = (n: number): number => Math.floor(rnd() * n)
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]
  const member = (): string => rnd() < 0.05 ? pick(['m0', 'm1', 'm2']) : `L${int(300)}`
  const fields = (n: number, tag: string): Array<[string, string | undefined]> => {
    const names = new Set<string>()
    while (names.size < n) names.add(rnd() < 0.03 ? pick(['f0', 'f1', 'f2']) : `g${String(int(500)).padStart(3, '0')}`)
    return [...names].map((name, i) => [name, rnd() < 0.1 ? undefined : `${tag}.${i}`])
  }
  const ops: Op[] = []
  for (let peer = 0; peer < 3; peer++) {
    let wall = START
    const n = perPeer + large
    const bigAt = new Set<number>()
    while (bigAt.size < large) bigAt.add(int(n))
    for (let i = 0; i < n; i++) {
      wall += 1 + Math.floor(rnd() * 3) // walls collide across peers: ties go to the writer key
      const format = i < (upgrades[peer] ?? 0) ? 1 : 2
      const key = pick(KEYS)
      if (!bigAt.has(i)) {
        const r = rnd()
        if (r < 0.15) ops.push({ peer, wall, format, type: 'put', key, value: { by: 'p' + peer, n: String(i) } })
        else if (r < 0.22) ops.push({ peer, wall, format, type: 'del', key })
        else if (r < 0.5) ops.push({ peer, wall, format, type: 'patch', key, field: pick(['f0', 'f1', 'f2']), value: rnd() < 0.2 ? undefined : `p${peer}-${i}` })
        else if (r < 0.8) ops.push({ peer, wall, format, type: 'sadd', key, member: member() })
        else ops.push({ peer, wall, format, type: 'srem', key, member: member() })
        continue
      }
      const size = 50 + int(351)
      const r = rnd()
      if (r < 0.5) {
        const adds = r < 0.3 ? 0.8 : 0.3
        const items: SimpleOp[] = []
        for (let k = 0; k < size; k++) items.push({ peer, wall, type: rnd() < adds ? 'sadd' : 'srem', key, member: member() })
        ops.push({ peer, wall, format, type: 'write', items })
      } else if (r < 0.8) {
        ops.push({ peer, wall, format, type: 'patch-many', key, fields: fields(size, `p${peer}.${i}`) })
      } else {
        const items: Array<Extract<Op, { type: 'write' }>['items'][number]> = []
        const whole = int(size)
        for (let k = 0; k < size; k++) {
          if (k === whole) items.push(rnd() < 0.7 ? { peer, wall, type: 'put', key, value: { by: 'p' + peer, n: `${i}.${k}` } } : { peer, wall, type: 'del', key })
          else if (rnd() < 0.4) items.push({ peer, wall, type: 'patch-many', key, fields: fields(1 + int(4), `p${peer}.${i}.${k}`) })
          else items.push({ peer, wall, type: rnd() < 0.7 ? 'sadd' : 'srem', key, member: member() })
        }
        ops.push({ peer, wall, format, type: 'write', items })
      }
    }
  }
  return ops
}


/** JSON with object keys sorted, so that equal values compare equal as strings. */
export function canonical (v: unknown): string {
  if (Array.isArray(v)) return '[' + v.map(canonical).join(',') + ']'
  if (v !== null && typeof v === 'object') {
    return '{' + Object.keys(v).sort().map((k) => JSON.stringify(k) + ':' + canonical((v as Record<string, unknown>)[k])).join(',') + '}'
  }
  return JSON.stringify(v)
}
