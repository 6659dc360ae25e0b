/**
 * msgpack encoding of key states. The encoding is canonical (fields, tags and removals in sorted
 * order), so equal states encode to equal bytes. Decoding validates every part and throws a
 * RangeError on anything malformed: these bytes may come from the network.
 */
import { decode as unpack, encode as pack } from '@msgpack/msgpack'
import { isStamp, stamp, stampToString, type Stamp } from './hlc.js'
import { isJson, type Json } from './json.js'
import { type Register } from './lww.js'
import { type FieldValue } from './lwwmap.js'
import { tagId, type Tag } from './orset.js'
import { type KeyState } from './keystate.js'

type WireVersion = [number, number, Uint8Array]

function wv (v: { stamp: Stamp, writer: Uint8Array }): WireVersion {
  return [v.stamp.wall, v.stamp.counter, v.writer]
}

export function encodeState (s: KeyState): Uint8Array {
  const r = s.reg === null ? null : [...wv(s.reg), s.reg.value]
  const f = [...s.fields.entries()].sort((a, b) => a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)
    .map(([name, reg]) => [name, ...wv(reg), reg.value === null ? null : [reg.value[0]]])
  const a = [...s.adds.entries()].sort(byId).map(([, add]) => [...wv(add.tag), add.member])
  const x = [...s.removed.entries()].sort(byId).map(([, tag]) => wv(tag))
  return pack([1, r, f, a, x])
}

function byId (a: [string, unknown], b: [string, unknown]): number {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0
}

function fail (what: string): never {
  throw new RangeError('invalid key state: ' + what)
}

function version (arr: unknown, at: number, writerLength: number | null): { stamp: Stamp, writer: Uint8Array } {
  const a = arr as unknown[]
  const st = { wall: a[at], counter: a[at + 1] }
  if (!isStamp(st)) fail('stamp')
  const writer = a[at + 2]
  if (!(writer instanceof Uint8Array) || (writerLength !== null && writer.length !== writerLength)) fail('writer')
  return { stamp: stamp(st.wall, st.counter), writer }
}

/** Decodes a key state. `writerLength` (32 for ed25519 keys) is enforced when given. */
export function decodeState (bytes: Uint8Array, writerLength: number | null = 32): KeyState {
  let raw: unknown
  try {
    raw = unpack(bytes)
  } catch {
    fail('msgpack')
  }
  if (!Array.isArray(raw) || raw.length !== 5 || raw[0] !== 1) fail('shape')
  const [, r, f, a, x] = raw as unknown[]

  let reg: Register<Uint8Array> | null = null
  if (r !== null) {
    if (!Array.isArray(r) || r.length !== 4) fail('register')
    const value = r[3]
    if (value !== null && !(value instanceof Uint8Array)) fail('register value')
    reg = { ...version(r, 0, writerLength), value }
  }

  if (!Array.isArray(f) || !Array.isArray(a) || !Array.isArray(x)) fail('lists')
  const fields = new Map<string, Register<FieldValue>>()
  for (const e of f) {
    if (!Array.isArray(e) || e.length !== 5 || typeof e[0] !== 'string') fail('field')
    const v = e[4]
    if (v !== null && (!Array.isArray(v) || v.length !== 1 || !isJson(v[0]))) fail('field value')
    if (fields.has(e[0])) fail('duplicate field')
    fields.set(e[0], { ...version(e, 1, writerLength), value: v === null ? null : [v[0] as Json] })
  }

  const adds = new Map<string, { tag: Tag, member: Json }>()
  for (const e of a) {
    if (!Array.isArray(e) || e.length !== 4 || !isJson(e[3])) fail('add')
    const tag = version(e, 0, writerLength)
    adds.set(tagId(tag), { tag, member: e[3] })
  }

  const removed = new Map<string, Tag>()
  for (const e of x) {
    if (!Array.isArray(e) || e.length !== 3) fail('removal')
    const tag = version(e, 0, writerLength)
    removed.set(tagId(tag), tag)
  }
  return { reg, fields, adds, removed }
}

export { stampToString }
