/**
 * msgpack encodings of the CRDT states: key states ({@link encodeState}) and, on their own, LWW
 * registers, LWW maps and OR-sets.
 *
 * Every encoding is canonical (fields, tags and removals in sorted order, object keys sorted), so
 * equal states encode to equal bytes. Each starts with the format version `1` and has its own
 * array length, so one kind of state never decodes as another. Decoding validates every part and
 * throws a RangeError on anything malformed: these bytes may come from the network.
 *
 * Wire shapes (a version is `wall, counter, writer`):
 *
 * ```
 * key state  [1, register | null, fields, adds, removed]
 * register   [1, [wall, counter, writer, bytes | null] | null]
 * map        [1, [wall, counter, writer] | null (reset), fields]
 * set        [1, [wall, counter, writer] | null (reset), adds, removed]
 * fields     [[name, wall, counter, writer, [json] | null], ...]   sorted by name
 * adds       [[wall, counter, writer, member], ...]               sorted by tag id
 * removed    [[wall, counter, writer], ...]                       sorted by tag id
 * ```
 */
import { Decoder, Encoder } from '@msgpack/msgpack'
import { isStamp, stamp, stampToString, type Stamp, type Version } from './hlc.js'
import { isJson, isWellFormed, type Json } from './json.js'
import { type Register } from './lww.js'
import { type FieldValue, type Fields, type MapState } from './lwwmap.js'
import { normalizeMember, tagId, type Adds, type MemberState, type Removed, type SetState, type Tag } from './orset.js'
import { type KeyState } from './keystate.js'

type WireVersion = [number, number, Uint8Array]

const FORMAT = 1

// One encoder and one decoder for every call: the package's encode()/decode() build new ones each
// time (encode() a fresh 2 KiB buffer, which its result then keeps alive as a view).
const encoder = new Encoder({ sortKeys: true })
const decoder = new Decoder()

/** msgpack bytes of `value` (object keys sorted), in a buffer of their own. */
export function pack (value: unknown): Uint8Array {
  return encoder.encode(value)
}

/** The value msgpack `bytes` hold; throws on malformed bytes. */
export function unpack (bytes: Uint8Array): unknown {
  return decoder.decode(bytes)
}

function wv (v: Version): WireVersion {
  return [v.stamp.wall, v.stamp.counter, v.writer]
}

function byKey (a: [string, unknown], b: [string, unknown]): number {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0
}

function wireRegister (r: Register<Uint8Array> | null): unknown {
  return r === null ? null : [...wv(r), r.value]
}

function wireFields (fields: Fields): unknown[] {
  return [...fields.entries()].sort(byKey)
    .map(([name, reg]) => [name, ...wv(reg), reg.value === null ? null : [reg.value[0]]])
}

function wireAdds (adds: Adds): unknown[] {
  return [...adds.entries()].sort(byKey).map(([, add]) => [...wv(add.tag), add.member])
}

function wireRemoved (removed: Removed): unknown[] {
  return [...removed.entries()].sort(byKey).map(([, tag]) => wv(tag))
}

/** Encodes a key state. */
export function encodeState (s: KeyState): Uint8Array {
  return pack([FORMAT, wireRegister(s.reg), wireFields(s.fields), wireAdds(s.adds), wireRemoved(s.removed)])
}

/** Encodes an LWW register, or the empty register (`null`). */
export function encodeRegister (r: Register<Uint8Array> | null): Uint8Array {
  return pack([FORMAT, wireRegister(r)])
}

/** Encodes an LWW map. */
export function encodeMap (m: MapState): Uint8Array {
  return pack([FORMAT, m.reset === null ? null : wv(m.reset), wireFields(m.fields)])
}

/** Encodes an OR-set. */
export function encodeSet (s: SetState): Uint8Array {
  return pack([FORMAT, s.reset === null ? null : wv(s.reset), wireAdds(s.adds), wireRemoved(s.removed)])
}

function fail (what: string): never {
  throw new RangeError('invalid CRDT state: ' + what)
}

function version (arr: unknown, at: number, writerLength: number | null): Version {
  const a = arr as unknown[]
  const st = { wall: a[at], counter: a[at + 1] }
  if (!isStamp(st)) fail('stamp')
  const writer = a[at + 2]
  if (!(writer instanceof Uint8Array) || (writerLength !== null && writer.length !== writerLength)) fail('writer')
  return { stamp: stamp(st.wall, st.counter), writer }
}

function top (bytes: Uint8Array, length: number, format = FORMAT): unknown[] {
  let raw: unknown
  try {
    raw = unpack(bytes)
  } catch {
    fail('msgpack')
  }
  if (!Array.isArray(raw) || raw.length !== length || raw[0] !== format) fail('shape')
  return raw
}

function readVersion (v: unknown, writerLength: number | null): Version | null {
  if (v === null) return null
  if (!Array.isArray(v) || v.length !== 3) fail('version')
  return version(v, 0, writerLength)
}

function readRegister (r: unknown, writerLength: number | null): Register<Uint8Array> | null {
  if (r === null) return null
  if (!Array.isArray(r) || r.length !== 4) fail('register')
  const value = r[3]
  if (value !== null && !(value instanceof Uint8Array)) fail('register value')
  return { ...version(r, 0, writerLength), value }
}

function readFields (f: unknown, writerLength: number | null): Map<string, Register<FieldValue>> {
  if (!Array.isArray(f)) fail('fields')
  const fields = new Map<string, Register<FieldValue>>()
  for (const e of f) {
    if (!Array.isArray(e) || e.length !== 5 || typeof e[0] !== 'string' || !isWellFormed(e[0])) fail('field')
    const value = fieldValue(e[4])
    if (fields.has(e[0])) fail('duplicate field')
    fields.set(e[0], { ...version(e, 1, writerLength), value })
  }
  return fields
}

function readAdds (a: unknown, writerLength: number | null): Map<string, { tag: Tag, member: Json }> {
  if (!Array.isArray(a)) fail('adds')
  const adds = new Map<string, { tag: Tag, member: Json }>()
  for (const e of a) {
    if (!Array.isArray(e) || e.length !== 4 || !isJson(e[3])) fail('add')
    const tag = version(e, 0, writerLength)
    const id = tagId(tag)
    if (adds.has(id)) fail('duplicate add')
    adds.set(id, { tag, member: e[3] })
  }
  return adds
}

function readRemoved (x: unknown, writerLength: number | null): Map<string, Tag> {
  if (!Array.isArray(x)) fail('removals')
  const removed = new Map<string, Tag>()
  for (const e of x) {
    if (!Array.isArray(e) || e.length !== 3) fail('removal')
    const tag = version(e, 0, writerLength)
    const id = tagId(tag)
    if (removed.has(id)) fail('duplicate removal')
    removed.set(id, tag)
  }
  return removed
}

/** Decodes a key state. `writerLength` (32 for ed25519 keys) is enforced when given. */
export function decodeState (bytes: Uint8Array, writerLength: number | null = 32): KeyState {
  const [, r, f, a, x] = top(bytes, 5)
  const reg = readRegister(r, writerLength)
  return { reg, fields: readFields(f, writerLength), adds: readAdds(a, writerLength), removed: readRemoved(x, writerLength) }
}

/** Decodes an LWW register (`null` is the empty register). */
export function decodeRegister (bytes: Uint8Array, writerLength: number | null = 32): Register<Uint8Array> | null {
  return readRegister(top(bytes, 2)[1], writerLength)
}

/** Decodes an LWW map. */
export function decodeMap (bytes: Uint8Array, writerLength: number | null = 32): MapState {
  const [, reset, f] = top(bytes, 3)
  return { reset: readVersion(reset, writerLength), fields: readFields(f, writerLength) }
}

/** Decodes an OR-set. */
export function decodeSet (bytes: Uint8Array, writerLength: number | null = 32): SetState {
  const [, reset, a, x] = top(bytes, 4)
  return { reset: readVersion(reset, writerLength), adds: readAdds(a, writerLength), removed: readRemoved(x, writerLength) }
}

export { stampToString }

/*
 * Parts of a key (log format 2), each starting with the format version `2`:
 *
 * ```
 * member     [2, adds, removed]            adds, removed: [[writer, wall, counter], ...] sorted by writer
 * field      [2, wall, counter, writer, [json] | null]
 * ```
 */
const PARTS = 2

function wireDots (dots: ReadonlyMap<string, Stamp>): unknown[] {
  return [...dots.entries()].sort((a, b) => a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)
    .map(([w, s]) => [Buffer.from(w, 'hex'), s.wall, s.counter])
}

/** Encodes a member's state (normalized, canonical: equal states, equal bytes). */
export function encodeMember (m: MemberState): Uint8Array {
  return pack([PARTS, wireDots(m.adds), wireDots(m.removed)])
}

function readDots (x: unknown, writerLength: number | null): Map<string, Stamp> {
  if (!Array.isArray(x)) fail('dots')
  const out = new Map<string, Stamp>()
  let last = ''
  for (const e of x) {
    if (!Array.isArray(e) || e.length !== 3) fail('dot')
    const v = version([e[1], e[2], e[0]], 0, writerLength)
    const w = Buffer.from(v.writer).toString('hex')
    if (w <= last && out.size > 0) fail('dots out of order')
    out.set(w, v.stamp)
    last = w
  }
  return out
}

/** Decodes a member's state; refuses one that is not normalized (an add its own removal covers). */
export function decodeMember (bytes: Uint8Array, writerLength: number | null = 32): MemberState {
  const [, a, r] = top(bytes, 3, PARTS)
  const adds = readDots(a, writerLength)
  const removed = readDots(r, writerLength)
  const size = adds.size
  const m = normalizeMember(adds, removed)
  if (m.adds.size !== size) fail('covered add')
  return m
}

/** Encodes a field's register. */
export function encodeField (f: Register<FieldValue>): Uint8Array {
  return pack([PARTS, f.stamp.wall, f.stamp.counter, f.writer, f.value === null ? null : [f.value[0]]])
}

/** Decodes a field's register. */
export function decodeField (bytes: Uint8Array, writerLength: number | null = 32): Register<FieldValue> {
  const raw = top(bytes, 5, PARTS)
  return { ...version(raw, 1, writerLength), value: fieldValue(raw[4]) }
}

/** A field's value as msgpack holds it: `[json]`, or null for a deleted field. */
export function fieldValue (v: unknown): FieldValue | null {
  if (v !== null && (!Array.isArray(v) || v.length !== 1 || !isJson(v[0]))) fail('field value')
  return v === null ? null : [v[0] as Json]
}
