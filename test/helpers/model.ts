/**
 * A deliberately naive model of meshbee's CRDT rules, written from the rules in DESIGN.md and not
 * from crdt/: the convergence tests compare the real views against it.
 */
import type { MeshDB } from '../../index.js'
import { prng } from '../../scripts/prng.js'

export type Op =
  | { peer: number, wall: number, type: 'put', key: string, value: Record<string, string> }
  | { peer: number, wall: number, type: 'del', key: string }
  | { peer: number, wall: number, type: 'patch', key: string, field: string, value: string | undefined }
  | { peer: number, wall: number, type: 'sadd', key: string, member: string }
  | { peer: number, wall: number, type: 'srem', key: string, member: string }


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

type V = readonly [number, string] // (wall, writer key hex): the version order
const gt = (a: V, b: V | null): boolean => b === null || a[0] > b[0] || (a[0] === b[0] && a[1] > b[1])

/**
 * The CRDT rules, written out the slow and obvious way. Peers were disconnected, so a peer's
 * remove observed only its own earlier adds.
 */
export function expected (ops: Op[], writers: string[]): Map<string, unknown> {
  const out = new Map<string, unknown>()
  for (const key of KEYS) {
    const mine = ops.filter((o) => o.key === key)
    const ver = (o: Op): V => [o.wall, writers[o.peer]]
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
    const adds = mine.filter((o) => o.type === 'sadd' && gt(ver(o), reset)) as Array<Op & { type: 'sadd' }>
    const removedTags = new Set<Op>()
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

export async function apply (db: MeshDB<string, any>, op: Op): Promise<void> {
  switch (op.type) {
    case 'put': return await db.put(op.key, op.value)
    case 'del': return await db.del(op.key)
    case 'patch': return await db.patch(op.key, { [op.field]: op.value })
    case 'sadd': return await db.sadd(op.key, op.member)
    case 'srem': return await db.srem(op.key, op.member)
  }
}


/** JSON with object keys sorted, so that equal values compare equal as strings. */
export function canonical (v: unknown): string {
  if (Array.isArray(v)) return '[' + v.map(canonical).join(',') + ']'
  if (v !== null && typeof v === 'object') {
    return '{' + Object.keys(v).sort().map((k) => JSON.stringify(k) + ':' + canonical((v as Record<string, unknown>)[k])).join(',') + '}'
  }
  return JSON.stringify(v)
}
