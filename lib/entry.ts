/**
 * The on-log format: every record a writer appends, in one place.
 *
 * A writer log is a Hyperbee. Its keys are namespaced by the first byte:
 *
 *   'd' ‖ user key          → the writer's latest entry for that user key (PUT, DEL or STATE)
 *   'm' ‖ 'a' ‖ writer key  → ADD_WRITER of that writer
 *   'm' ‖ 'r' ‖ writer key  → REMOVE_WRITER of that writer
 *
 * An entry value (compact-encoding) starts with the format version, so the format can evolve:
 *
 *   uint version (=1) · uint type · uint wall · uint counter · payload
 *
 *   PUT 1            buffer value
 *   DEL 2            (nothing)
 *   STATE 3          buffer msgpack KeyState: the writer's whole contribution to the key
 *                    (register, document fields, set tags) — see crdt/codec.ts
 *   ADD_WRITER 10    fixed32 writer key
 *   REMOVE_WRITER 11 fixed32 writer key · uint length of its log the remover had seen
 *
 * Decoding is strict: trailing bytes, unknown versions or types, oversize payloads and keys whose
 * namespace does not match the type are all rejected. A rejected entry is skipped by every peer
 * alike, because the rule looks only at the bytes.
 */
import c from 'compact-encoding'
import { decodeState, encodeState } from '../crdt/codec.js'
import { type Stamp, stamp as mkStamp } from '../crdt/hlc.js'
import { EMPTY, mergeAll, type KeyState } from '../crdt/keystate.js'

export const FORMAT = 1

export const PUT = 1
export const DEL = 2
export const STATE = 3
export const ADD_WRITER = 10
export const REMOVE_WRITER = 11

/** Largest user key, in bytes. */
export const MAX_KEY_BYTES = 4096
/** Largest value or encoded state, in bytes. */
export const MAX_VALUE_BYTES = 4 * 1024 * 1024

export const DATA = 0x64 // 'd'
export const MEMBERSHIP = 0x6d // 'm'
const ADD = 0x61 // 'a'
const REMOVE = 0x72 // 'r'

export type DataEntry =
  | { type: typeof PUT, stamp: Stamp, value: Uint8Array }
  | { type: typeof DEL, stamp: Stamp }
  | { type: typeof STATE, stamp: Stamp, state: Uint8Array }

export type MembershipEntry =
  | { type: typeof ADD_WRITER, stamp: Stamp, writer: Uint8Array }
  | { type: typeof REMOVE_WRITER, stamp: Stamp, writer: Uint8Array, length: number }

export type Entry = DataEntry | MembershipEntry

export class EntryError extends Error {
  readonly code = 'MESHBEE_BAD_ENTRY'
}

export function encodeEntry (e: Entry): Buffer {
  const state = { start: 0, end: 0, buffer: null as unknown as Buffer }
  header(state, e, 'pre')
  payload(state, e, 'pre')
  state.buffer = Buffer.allocUnsafe(state.end)
  header(state, e, 'enc')
  payload(state, e, 'enc')
  return state.buffer
}

type Mode = 'pre' | 'enc'
type S = { start: number, end: number, buffer: Buffer }

function uint (s: S, n: number, m: Mode): void {
  if (m === 'pre') c.uint.preencode(s, n)
  else c.uint.encode(s, n)
}

function bytes (s: S, b: Uint8Array, m: Mode): void {
  if (m === 'pre') c.buffer.preencode(s, b)
  else c.buffer.encode(s, b)
}

function fixed32 (s: S, b: Uint8Array, m: Mode): void {
  if (m === 'pre') c.fixed32.preencode(s, b)
  else c.fixed32.encode(s, b)
}

function header (s: S, e: Entry, m: Mode): void {
  uint(s, FORMAT, m)
  uint(s, e.type, m)
  uint(s, e.stamp.wall, m)
  uint(s, e.stamp.counter, m)
}

function payload (s: S, e: Entry, m: Mode): void {
  switch (e.type) {
    case PUT: bytes(s, e.value, m); break
    case DEL: break
    case STATE: bytes(s, e.state, m); break
    case ADD_WRITER: fixed32(s, e.writer, m); break
    case REMOVE_WRITER: fixed32(s, e.writer, m); uint(s, e.length, m); break
  }
}

function bad (why: string): never {
  throw new EntryError('bad entry: ' + why)
}

/** Decodes and validates an entry. Throws EntryError for anything malformed. */
export function decodeEntry (buf: Uint8Array): Entry {
  const s = { start: 0, end: buf.byteLength, buffer: buf }
  let e: Entry
  try {
    const version = c.uint.decode(s)
    if (version !== FORMAT) bad('unknown format version ' + version)
    const type = c.uint.decode(s)
    const wall = c.uint.decode(s)
    const counter = c.uint.decode(s)
    if (!Number.isSafeInteger(wall) || counter > 0xffffffff) bad('stamp out of range')
    const st = mkStamp(wall, counter)
    switch (type) {
      case PUT: e = { type, stamp: st, value: c.buffer.decode(s) ?? Buffer.alloc(0) }; break
      case DEL: e = { type, stamp: st }; break
      case STATE: e = { type, stamp: st, state: c.buffer.decode(s) ?? Buffer.alloc(0) }; break
      case ADD_WRITER: e = { type, stamp: st, writer: c.fixed32.decode(s) }; break
      case REMOVE_WRITER: {
        const writer = c.fixed32.decode(s)
        const length = c.uint.decode(s)
        if (!Number.isSafeInteger(length)) bad('length out of range')
        e = { type, stamp: st, writer, length }
        break
      }
      default: bad('unknown type ' + type)
    }
  } catch (err) {
    if (err instanceof EntryError) throw err
    bad('undecodable (' + (err as Error).message + ')')
  }
  if (s.start !== s.end) bad('trailing bytes')
  if ((e.type === PUT && e.value.byteLength > MAX_VALUE_BYTES) || (e.type === STATE && e.state.byteLength > MAX_VALUE_BYTES)) {
    bad('oversize value')
  }
  return e
}

export function dataKey (key: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(key.byteLength + 1)
  out[0] = DATA
  out.set(key, 1)
  return out
}

export function membershipKey (type: typeof ADD_WRITER | typeof REMOVE_WRITER, writer: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(34)
  out[0] = MEMBERSHIP
  out[1] = type === ADD_WRITER ? ADD : REMOVE
  out.set(writer, 2)
  return out
}

export const DATA_RANGE = { gte: Buffer.from([DATA]), lt: Buffer.from([DATA + 1]) }
export const MEMBERSHIP_RANGE = { gte: Buffer.from([MEMBERSHIP]), lt: Buffer.from([MEMBERSHIP + 1]) }

/** A data entry under a bee key, validated as a whole: the user key and the entry must both be sane. */
export function decodeData (beeKey: Uint8Array, value: Uint8Array): DataEntry {
  if (beeKey.byteLength - 1 > MAX_KEY_BYTES) bad('oversize key')
  const e = decodeEntry(value)
  if (e.type !== PUT && e.type !== DEL && e.type !== STATE) bad('membership entry under a data key')
  return e
}

/** A membership entry under a bee key; the key must name the same writer as the entry. */
export function decodeMembership (beeKey: Uint8Array, value: Uint8Array): MembershipEntry {
  const e = decodeEntry(value)
  if (e.type !== ADD_WRITER && e.type !== REMOVE_WRITER) bad('data entry under a membership key')
  const expected = membershipKey(e.type, e.writer)
  if (!Buffer.from(beeKey.buffer, beeKey.byteOffset, beeKey.byteLength).equals(expected)) bad('membership key mismatch')
  return e
}

/** The writer's contribution to a key, as a key state. A STATE payload is decoded strictly. */
export function slotState (e: DataEntry, writer: Uint8Array): KeyState {
  switch (e.type) {
    case PUT: return { ...EMPTY, reg: { stamp: e.stamp, writer, value: e.value } }
    case DEL: return { ...EMPTY, reg: { stamp: e.stamp, writer, value: null } }
    case STATE: {
      let s: KeyState
      try {
        s = decodeState(e.state)
      } catch (err) {
        bad((err as Error).message)
      }
      return s
    }
  }
}

/**
 * The merged key state of a key's slots: each a writer's latest entry for the key, all of which
 * validated when they were folded in.
 */
export function mergeSlots (slots: ReadonlyArray<{ readonly writer: Uint8Array, readonly entry: Uint8Array }>): KeyState {
  return mergeAll(slots.map((s) => slotState(decodeEntry(s.entry) as DataEntry, s.writer)))
}

export { encodeState }
