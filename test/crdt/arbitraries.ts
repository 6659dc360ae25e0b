/**
 * Shared fast-check arbitraries and the law and convergence suites run for every CRDT.
 *
 * Runs per property: MESHBEE_PROP_RUNS (default 1000). A failure prints its seed and path; set
 * MESHBEE_PROP_SEED and MESHBEE_PROP_PATH to replay it.
 */
import { expect } from 'chai'
import fc from 'fast-check'
import { HLC, stamp, type Version } from '../../crdt/hlc.js'
import { isJson, type Json } from '../../crdt/json.js'
import { type Register } from '../../crdt/lww.js'
import { type KeyState } from '../../crdt/keystate.js'
import { type FieldValue, type MapState } from '../../crdt/lwwmap.js'
import { tagId, type SetState, type Tag } from '../../crdt/orset.js'

export const MAX_COUNTER = 0xffffffff

export const RUNS = positiveInt(process.env.MESHBEE_PROP_RUNS) ?? 1000

function positiveInt (s: string | undefined): number | undefined {
  if (s === undefined || s === '') return undefined
  const n = Number(s)
  if (!Number.isSafeInteger(n) || n < 1) throw new TypeError('not a positive integer: ' + s)
  return n
}

export function params<T> (): fc.Parameters<T> {
  const seed = process.env.MESHBEE_PROP_SEED
  const path = process.env.MESHBEE_PROP_PATH
  return {
    numRuns: RUNS,
    ...(seed !== undefined && seed !== '' ? { seed: Number(seed) } : {}),
    ...(path !== undefined && path !== '' ? { path } : {})
  }
}

/** Asserts `predicate` (which throws or returns false on failure) for RUNS inputs. */
export function check<T> (arb: fc.Arbitrary<T>, predicate: (t: T) => boolean | void): void {
  fc.assert(fc.property(arb, predicate), params<[T]>())
}

export function hex (b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')
}

export function expectBytes (actual: Uint8Array | null, expected: Uint8Array | null, what = 'bytes'): void {
  expect(actual === null ? null : hex(actual), what).to.equal(expected === null ? null : hex(expected))
}

// --- values ------------------------------------------------------------------------------------

/**
 * 32-byte writer keys. Half of them differ from one fixed key in a single byte, so keys that
 * share long prefixes (and the byte-wise tie-break between them) are common.
 */
export const writerArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ minLength: 32, maxLength: 32 }),
  fc.tuple(fc.nat({ max: 31 }), fc.nat({ max: 255 })).map(([at, byte]) => {
    const k = new Uint8Array(32).fill(0x5a)
    k[at] = byte
    return k
  })
)

export function writersArb (minLength: number, maxLength: number): fc.Arbitrary<Uint8Array[]> {
  return fc.uniqueArray(writerArb, { minLength, maxLength, selector: hex })
}

/** Any valid stamp, with the edges (0, the largest wall, the largest counter) likely. */
export const stampArb = fc.tuple(fc.nat({ max: Number.MAX_SAFE_INTEGER }), fc.nat({ max: MAX_COUNTER }))
  .map(([wall, counter]) => stamp(wall, counter))

/** Small JSON values: a few recurring members (so removes hit adds) and arbitrary ones. */
export const memberArb: fc.Arbitrary<Json> = fc.oneof(
  { arbitrary: fc.constantFrom<Json>('x', 'y', null, { a: 1, b: [true] }), weight: 6 },
  // only values the API accepts: fast-check's JSON can hold `__proto__` keys, which isJson refuses
  { arbitrary: fc.jsonValue({ maxDepth: 2 }).filter((v) => isJson(v)) as fc.Arbitrary<Json>, weight: 1 }
)

export const fieldNameArb = fc.oneof(
  { arbitrary: fc.constantFrom('a', 'b', 'c'), weight: 4 },
  { arbitrary: fc.string({ maxLength: 6 }), weight: 1 }
)

export const bytesArb = fc.uint8Array({ maxLength: 8 })

/** Register values: JSON object text (a document base) or raw bytes. */
export const registerValueArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.dictionary(fc.constantFrom('a', 'b', 'z'), fc.jsonValue({ maxDepth: 1 }).filter((v) => isJson(v)), { maxKeys: 3 })
    .map((o) => new TextEncoder().encode(JSON.stringify(o))),
  bytesArb
)

// --- pools of operations ------------------------------------------------------------------------

/** What one write carries; which part a state uses depends on the CRDT. */
export interface Payload {
  readonly value: Uint8Array | null
  readonly name: string
  readonly field: FieldValue | null
  readonly member: Json
}

export interface Write { readonly version: Version, readonly payload: Payload }

const payloadArb: fc.Arbitrary<Payload> = fc.record({
  value: fc.option(registerValueArb, { freq: 4 }),
  name: fieldNameArb,
  field: fc.option(memberArb.map((j): FieldValue => [j]), { freq: 4 }),
  member: memberArb
})

/**
 * A pool of writes with distinct versions, as real writers produce them: a version never carries
 * two different payloads. Walls and counters are small, so equal stamps (ties broken by writer
 * key) are common.
 */
export const poolArb: fc.Arbitrary<Write[]> = writersArb(1, 4).chain((writers) =>
  fc.uniqueArray(
    fc.record({ wall: fc.nat({ max: 3 }), counter: fc.nat({ max: 2 }), w: fc.nat({ max: writers.length - 1 }), payload: payloadArb }),
    { minLength: 1, maxLength: 12, selector: (r) => `${r.wall}.${r.counter}.${r.w}` }
  ).map((rs) => rs.map((r) => ({ version: { stamp: stamp(r.wall, r.counter), writer: writers[r.w] }, payload: r.payload })))
)

export function toRegister (w: Write): Register<Uint8Array> {
  return { stamp: w.version.stamp, writer: w.version.writer, value: w.payload.value }
}

export function toFields (ws: Write[]): Map<string, Register<FieldValue>> {
  return new Map(ws.map((w) => [w.payload.name, { stamp: w.version.stamp, writer: w.version.writer, value: w.payload.field }]))
}

export function toAdds (ws: Write[]): Map<string, { tag: Tag, member: Json }> {
  return new Map(ws.map((w) => [tagId(w.version), { tag: w.version, member: w.payload.member }]))
}

export function toRemoved (ws: Write[]): Map<string, Tag> {
  return new Map(ws.map((w) => [tagId(w.version), w.version]))
}

export function registerArbFrom (pool: Write[]): fc.Arbitrary<Register<Uint8Array> | null> {
  return fc.option(fc.constantFrom(...pool).map(toRegister))
}

export function mapArbFrom (pool: Write[]): fc.Arbitrary<MapState> {
  return fc.record({
    reset: fc.option(fc.constantFrom(...pool).map((w) => w.version)),
    fields: fc.subarray(pool).map(toFields)
  })
}

export function setArbFrom (pool: Write[]): fc.Arbitrary<SetState> {
  return fc.record({
    reset: fc.option(fc.constantFrom(...pool).map((w) => w.version)),
    adds: fc.subarray(pool).map(toAdds),
    removed: fc.subarray(pool).map(toRemoved)
  })
}

export function keyStateArbFrom (pool: Write[]): fc.Arbitrary<KeyState> {
  return fc.record({
    reg: registerArbFrom(pool),
    fields: fc.subarray(pool).map(toFields),
    adds: fc.subarray(pool).map(toAdds),
    removed: fc.subarray(pool).map(toRemoved)
  })
}

/** Three states of one CRDT built from the same pool (so they can meet in a merge). */
export function triple<S> (stateFrom: (pool: Write[]) => fc.Arbitrary<S>): fc.Arbitrary<[S, S, S]> {
  return poolArb.chain((pool) => fc.tuple(stateFrom(pool), stateFrom(pool), stateFrom(pool)))
}

// --- the laws -----------------------------------------------------------------------------------

export interface Crdt<S> {
  readonly empty: S
  merge (a: S, b: S): S
  /** A canonical encoding: equal states, equal bytes. */
  encode (s: S): Uint8Array
}

/**
 * The three join laws, as named tests. `states` may produce states that are not normalized
 * (fields or tags older than a reset); idempotence is checked on normalized states (merged with
 * the empty state), which are the only ones merges produce.
 */
export function describeLaws<S> (crdt: Crdt<S>, states: fc.Arbitrary<[S, S, S]>): void {
  const same = (a: S, b: S): void => expectBytes(crdt.encode(a), crdt.encode(b), 'state')

  it('merge is commutative', () => {
    check(states, ([a, b]) => same(crdt.merge(a, b), crdt.merge(b, a)))
  })

  it('merge is associative', () => {
    check(states, ([a, b, c]) => same(crdt.merge(crdt.merge(a, b), c), crdt.merge(a, crdt.merge(b, c))))
  })

  it('merge is idempotent', () => {
    check(states, ([raw, b]) => {
      const a = crdt.merge(crdt.empty, raw)
      same(crdt.merge(a, a), a)
      const ab = crdt.merge(a, b)
      same(crdt.merge(ab, b), ab)
      same(crdt.merge(ab, a), ab)
    })
  })
}

// --- convergence: writers, their logs, deliveries -----------------------------------------------

export type OpKind = 'put' | 'del' | 'patch' | 'unset' | 'sadd' | 'srem' | 'reset'

/** A local operation, or `sync`: writer `w` receives entry `at` (mod length) of writer `from`'s log. */
export type Op =
  | { readonly t: 'put', readonly w: number, readonly dt: number, readonly value: Uint8Array }
  | { readonly t: 'del' | 'reset', readonly w: number, readonly dt: number }
  | { readonly t: 'patch', readonly w: number, readonly dt: number, readonly name: string, readonly value: Json }
  | { readonly t: 'unset', readonly w: number, readonly dt: number, readonly name: string }
  | { readonly t: 'sadd' | 'srem', readonly w: number, readonly dt: number, readonly member: Json }
  | { readonly t: 'sync', readonly w: number, readonly from: number, readonly at: number }

export type LocalOp = Exclude<Op, { t: 'sync' }>

export interface Model<S> extends Crdt<S> {
  /** The local operations it supports, with their relative frequency. */
  readonly kinds: Partial<Record<OpKind, number>>
  /** The state a local operation adds to its writer's contribution; `view` is what it has seen. */
  delta (op: LocalOp, version: Version, view: S): S
  /**
   * The writer's next contribution after a local operation, if the model builds it itself (as
   * meshbee's entry rule does) instead of merging `delta` into `own`.
   */
  step?: (op: LocalOp, version: Version, own: S, view: S) => S
}

const w = fc.nat({ max: 7 })
/** Per-op wall clock step of the writer, in ms: it may run backwards. */
const dt = fc.integer({ min: -2, max: 3 })

const opArbs: Record<OpKind, fc.Arbitrary<Op>> = {
  put: fc.record({ t: fc.constant('put' as const), w, dt, value: registerValueArb }),
  del: fc.record({ t: fc.constant('del' as const), w, dt }),
  reset: fc.record({ t: fc.constant('reset' as const), w, dt }),
  patch: fc.record({ t: fc.constant('patch' as const), w, dt, name: fieldNameArb, value: memberArb }),
  unset: fc.record({ t: fc.constant('unset' as const), w, dt, name: fieldNameArb }),
  sadd: fc.record({ t: fc.constant('sadd' as const), w, dt, member: memberArb }),
  srem: fc.record({ t: fc.constant('srem' as const), w, dt, member: memberArb })
}

const syncArb: fc.Arbitrary<Op> = fc.record({ t: fc.constant('sync' as const), w, from: w, at: fc.nat() })

export function opsArb (kinds: Partial<Record<OpKind, number>>): fc.Arbitrary<Op[]> {
  const local = Object.entries(kinds).map(([k, weight]) => ({ arbitrary: opArbs[k as OpKind], weight }))
  const op = fc.oneof(...local, { arbitrary: syncArb, weight: local.reduce((sum, l) => sum + l.weight, 0) })
  return fc.array(op, { maxLength: 40, size: 'max' })
}

export interface Entry<S> { readonly writer: number, readonly seq: number, readonly state: S }

/**
 * Runs the operations. Each writer has its own HLC on its own fake wall clock (small, skewed,
 * sometimes going backwards, with a small maxDrift so that clamping happens too). After each local
 * operation the writer appends an entry holding its whole contribution so far, as meshbee's log
 * entries do. Returns every writer's log.
 */
export function simulate<S> (model: Model<S>, writers: Uint8Array[], ops: readonly Op[]): Entry<S>[][] {
  const n = writers.length
  const walls = writers.map((_, i) => 3 * i)
  const clocks = writers.map((_, i) => new HLC({ wallClock: () => walls[i], maxDrift: 4 }))
  const own = writers.map(() => model.empty)
  const view = writers.map(() => model.empty)
  const stamps: Version['stamp'][][] = writers.map(() => [])
  const logs: Entry<S>[][] = writers.map(() => [])

  for (const op of ops) {
    const i = op.w % n
    if (op.t === 'sync') {
      const j = op.from % n
      if (j === i || logs[j].length === 0) continue
      const k = op.at % logs[j].length
      view[i] = model.merge(view[i], logs[j][k].state)
      clocks[i].observe(stamps[j][k])
      continue
    }
    walls[i] = Math.max(0, walls[i] + op.dt)
    const version = { stamp: clocks[i].now(), writer: writers[i] }
    own[i] = model.step !== undefined ? model.step(op, version, own[i], view[i]) : model.merge(own[i], model.delta(op, version, view[i]))
    view[i] = model.merge(view[i], own[i])
    stamps[i].push(version.stamp)
    logs[i].push({ writer: i, seq: logs[i].length, state: own[i] })
  }
  return logs
}

export interface Scenario<S> {
  readonly writers: Uint8Array[]
  readonly ops: Op[]
  readonly logs: Entry<S>[][]
  /** Per replica, the order in which it receives entries (indexes into logs.flat()). */
  readonly deliveries: number[][]
}

/** Every entry once in a random order, plus random duplicates at random places. */
function deliveryArb (n: number): fc.Arbitrary<number[]> {
  if (n === 0) return fc.constant([])
  const all = Array.from({ length: n }, (_, i) => i)
  return fc.tuple(
    fc.shuffledSubarray(all, { minLength: n, maxLength: n }),
    fc.array(fc.tuple(fc.nat({ max: n - 1 }), fc.nat()), { maxLength: n })
  ).map(([order, dups]) => {
    const out = [...order]
    for (const [entry, at] of dups) out.splice(at % (out.length + 1), 0, entry)
    return out
  })
}

export function scenarioArb<S> (model: Model<S>): fc.Arbitrary<Scenario<S>> {
  return fc.tuple(writersArb(1, 4), opsArb(model.kinds)).chain(([writers, ops]) => {
    const logs = simulate(model, writers, ops)
    const n = logs.reduce((sum, log) => sum + log.length, 0)
    return fc.array(deliveryArb(n), { minLength: 3, maxLength: 3 })
      .map((deliveries) => ({ writers, ops, logs, deliveries }))
  })
}

export function fold<S> (crdt: Crdt<S>, states: Iterable<S>): S {
  let out = crdt.empty
  for (const s of states) out = crdt.merge(out, s)
  return out
}

/**
 * The convergence tests: replicas that receive the same entries, in any order and with
 * duplicates, reach the same state, which is also the merge of each writer's latest entry alone.
 * `also` adds comparisons (e.g. of the rendering) between two states that must be equal.
 */
export function describeConvergence<S> (model: Model<S>, also?: (a: S, b: S) => void): void {
  const same = (a: S, b: S, what: string): void => {
    expectBytes(model.encode(a), model.encode(b), what)
    also?.(a, b)
  }

  it('any interleaving of the same operations, in any order with duplicates, reaches the same state', () => {
    check(scenarioArb(model), ({ logs, deliveries }) => {
      const entries = logs.flat()
      const expected = fold(model, entries.map((e) => e.state))
      for (const order of deliveries) {
        same(fold(model, order.map((i) => entries[i].state)), expected, 'replica state')
      }
    })
  })

  it("each writer's latest entry carries its whole contribution", () => {
    check(scenarioArb(model), ({ logs }) => {
      const all = fold(model, logs.flat().map((e) => e.state))
      const latest = fold(model, logs.filter((log) => log.length > 0).map((log) => log[log.length - 1].state))
      same(latest, all, 'merge of latest entries')
    })
  })
}
