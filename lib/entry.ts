/**
 * The on-log format: every record a writer appends, in one place.
 *
 * A writer log is a Hyperbee. Its keys are namespaced by the first byte:
 *
 *   'd' ‖ user key                       → the writer's latest whole-value entry for the key
 *                                          (PUT or DEL; a format-1 log's STATE)
 *   'f' ‖ uint len ‖ user key ‖ name      → the writer's latest write of one document field
 *                                          (FIELD; name in UTF-8)
 *   'e' ‖ uint len ‖ user key ‖ member    → the writer's state of one set member (MEMBER; the
 *                                          member as canonical JSON)
 *   'm' ‖ 'a' ‖ writer key               → ADD_WRITER of that writer
 *   'm' ‖ 'r' ‖ writer key               → REMOVE_WRITER of that writer (or reader)
 *   'm' ‖ 'o' ‖ reader key               → ADD_READER of that key (an encrypted database's reader)
 *   'm' ‖ 'k' ‖ epoch id ‖ recipient     → KEY_GRANT: an epoch key sealed to one recipient
 *   'm' ‖ 'p'                            → PRINCIPAL: the writer's public key for sealed epoch keys
 *   'm' ‖ 'n' ‖ epoch id                 → EPOCH: how far its maker had read each log's membership
 *
 * An entry value (compact-encoding) starts with its format version, so the format can evolve:
 *
 *   uint version · uint type · uint wall · uint counter · [clock] · payload
 *
 *   version 1
 *   PUT 1            buffer value
 *   DEL 2            (nothing)
 *   STATE 3          buffer msgpack KeyState: the writer's whole contribution to the key
 *                    (register, document fields, set tags) — see crdt/codec.ts; read, no longer written
 *   ADD_WRITER 10    fixed32 writer key
 *   REMOVE_WRITER 11 fixed32 writer key · uint length of its log the remover had seen
 *
 *   version 2
 *   FIELD 4          buffer msgpack [json] (the field's value) or nil (the field deleted)
 *   MEMBER 5         buffer msgpack member state (crdt/codec.ts): the writer's newest add of the
 *                    member, and per adder the newest add of it the writer removed
 *
 *   version 3: every type but STATE, its version-1/2 payload after a clock; and
 *   ADD_READER 12    fixed32 reader key
 *   KEY_GRANT 13     fixed8 epoch id · fixed32 recipient · fixed80 the epoch key sealed to the
 *                    recipient (lib/crypt.ts)
 *   PRINCIPAL 14     fixed32 the writer's X25519 public key (its signing key pair, converted)
 *   EPOCH 15         fixed8 epoch id · uint n · n × (fixed32 writer key · uint length)
 *   clock            uint seen · int reading: the wall time of the newest stamp the writer had
 *                    observed from another writer when it wrote (0: none yet), and its wall
 *                    clock's reading minus the stamp's wall (zigzag)
 *
 * The lead rule (version 3): an entry whose `seen` is not 0 and whose stamp's wall runs more than
 * MAX_LEAD past it is rejected. A writer's clock never issues such a stamp (crdt/hlc.ts, the
 * cap), so a device whose clock runs ahead wins conflicts at most MAX_LEAD past what it had seen
 * of the others, and the rule, read from the entry's own bytes, holds the same on every peer.
 *
 * Versions 1 and 2 stay readable: a type kept the version it was introduced with while its shape
 * stayed the same (a release that knows only version 1 reads whole values and membership from a
 * format-2 log). Version 3 changes every header, so a format-2 release skips version-3 entries
 * (as it skips any unknown version, alike on every peer). Decoding is
 * strict: trailing bytes, unknown versions or types, a type under another version, oversize
 * payloads and keys whose namespace does not match the type are all rejected. A rejected entry is
 * skipped by every peer alike, because the rule looks only at the bytes (and the log's key).
 */
import c from 'compact-encoding'
import { decodeField, decodeMember, decodeState, encodeMember, encodeState, fieldValue, pack, unpack } from '../crdt/codec.js'
import { type Stamp, stamp as mkStamp } from '../crdt/hlc.js'
import { canonicalJson, isJson, type Json } from '../crdt/json.js'
import { EMPTY, mergeAll, type KeyState } from '../crdt/keystate.js'
import { mergeRegisters, type Register } from '../crdt/lww.js'
import { type FieldValue } from '../crdt/lwwmap.js'
import { EMPTY_MEMBER, mergeMembers, type MemberState } from '../crdt/orset.js'
import { legacyParts, renderParts } from '../crdt/parts.js'

/** The newest format version: what a log written now uses. */
export const FORMAT = 3

/** The lead rule's bound (ms): how far a version-3 stamp may run past the newest remote stamp its writer had seen. */
export const MAX_LEAD = 60 * 60 * 1000

export const PUT = 1
export const DEL = 2
export const STATE = 3
export const FIELD = 4
export const MEMBER = 5
export const ADD_WRITER = 10
export const REMOVE_WRITER = 11
export const ADD_READER = 12
export const KEY_GRANT = 13
export const PRINCIPAL = 14
export const EPOCH = 15
/** A stability record: how far its writer had folded every log (lib/stability.ts). */
export const CUTS = 16
/** At most this many logs in an EPOCH entry's vector. */
export const MAX_VECTOR = 65536
/** Bytes of an epoch id (lib/crypt.ts) and of a sealed epoch key. */
export const EPOCH_ID_BYTES = 8
export const SEALED_KEY_BYTES = 80

/** Largest user key, in bytes. */
export const MAX_KEY_BYTES = 4096
/** Largest value or encoded state, in bytes. */
export const MAX_VALUE_BYTES = 4 * 1024 * 1024
/** Largest document field name (UTF-8) or set member (canonical JSON), in bytes. */
export const MAX_NAME_BYTES = 4096

export const DATA = 0x64 // 'd'
export const MEMBER_NS = 0x65 // 'e': set elements
export const FIELD_NS = 0x66 // 'f'
export const MEMBERSHIP = 0x6d // 'm'
/** The bee key of a writer's stability record (one per log, overwritten): read by the data fold. */
export const CUTS_NS = 0x63 // 'c'
const ADD = 0x61 // 'a'
const REMOVE = 0x72 // 'r'
const READER = 0x6f // 'o'
const GRANT = 0x6b // 'k'
const BOX = 0x70 // 'p'
const NEW_EPOCH = 0x6e // 'n'

/**
 * A version-3 entry's clock: what its writer had seen of the others, and what its own clock said.
 * An entry without one is version 1 or 2 (written before the lead rule).
 */
export interface EntryClock {
  /** The wall time (ms) of the newest stamp the writer had observed from another writer; 0 if none. */
  readonly seen: number
  /** The writer's wall clock reading (ms) when it stamped the entry (the stamp may differ: capped, or following others). */
  readonly reading: number
}

interface Clocked { clock?: EntryClock }

export type DataEntry = Clocked & (
  | { type: typeof PUT, stamp: Stamp, value: Uint8Array }
  | { type: typeof DEL, stamp: Stamp }
  | { type: typeof STATE, stamp: Stamp, state: Uint8Array }
  | { type: typeof FIELD, stamp: Stamp, value: FieldValue | null }
  | { type: typeof MEMBER, stamp: Stamp, state: MemberState })

export type MembershipEntry = Clocked & (
  | { type: typeof ADD_WRITER, stamp: Stamp, writer: Uint8Array }
  | { type: typeof REMOVE_WRITER, stamp: Stamp, writer: Uint8Array, length: number }
  | { type: typeof ADD_READER, stamp: Stamp, writer: Uint8Array }
  | { type: typeof KEY_GRANT, stamp: Stamp, epoch: Uint8Array, writer: Uint8Array, sealed: Uint8Array }
  | { type: typeof PRINCIPAL, stamp: Stamp, box: Uint8Array }
  | { type: typeof EPOCH, stamp: Stamp, epoch: Uint8Array, vector: Array<[Uint8Array, number]> })

/**
 * A stability record (lib/stability.ts): the writer's clock when it wrote it (every later stamp of
 * the writer is greater), and for every log it had folded, the length folded.
 */
export type CutsEntry = Clocked & { type: typeof CUTS, stamp: Stamp, at: Stamp, vector: Array<[Uint8Array, number]> }

export type Entry = DataEntry | MembershipEntry | CutsEntry

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

/** The format version each type was introduced with. */
function versionOf (type: number): number {
  if (type === ADD_READER || type === KEY_GRANT || type === PRINCIPAL || type === EPOCH || type === CUTS) return 3
  return type === FIELD || type === MEMBER ? 2 : 1
}

function fixed (s: S, b: Uint8Array, n: number, m: Mode): void {
  if (b.byteLength !== n) throw new EntryError(`expected ${n} bytes, got ${b.byteLength}`)
  if (m === 'pre') {
    s.end += n
    return
  }
  s.buffer.set(b, s.start)
  s.start += n
}

function readFixed (s: { start: number, end: number, buffer: Uint8Array }, n: number): Uint8Array {
  if (s.end - s.start < n) bad('truncated')
  const out = s.buffer.subarray(s.start, s.start + n)
  s.start += n
  return out
}

function header (s: S, e: Entry, m: Mode): void {
  if (e.clock !== undefined && e.type === STATE) throw new EntryError('a STATE entry has no version 3')
  if (e.clock === undefined && versionOf(e.type) === 3) throw new EntryError(`a type ${e.type} entry needs a clock (version 3)`)
  uint(s, e.clock === undefined ? versionOf(e.type) : 3, m)
  uint(s, e.type, m)
  uint(s, e.stamp.wall, m)
  uint(s, e.stamp.counter, m)
  if (e.clock !== undefined) {
    uint(s, e.clock.seen, m)
    if (m === 'pre') c.int.preencode(s, e.clock.reading - e.stamp.wall)
    else c.int.encode(s, e.clock.reading - e.stamp.wall)
  }
}

function payload (s: S, e: Entry, m: Mode): void {
  switch (e.type) {
    case PUT: bytes(s, e.value, m); break
    case DEL: break
    case STATE: bytes(s, e.state, m); break
    case FIELD: bytes(s, pack(e.value === null ? null : [e.value[0]]), m); break
    case MEMBER: bytes(s, encodeMember(e.state), m); break
    case ADD_WRITER: fixed32(s, e.writer, m); break
    case REMOVE_WRITER: fixed32(s, e.writer, m); uint(s, e.length, m); break
    case ADD_READER: fixed32(s, e.writer, m); break
    case KEY_GRANT: fixed(s, e.epoch, EPOCH_ID_BYTES, m); fixed32(s, e.writer, m); fixed(s, e.sealed, SEALED_KEY_BYTES, m); break
    case PRINCIPAL: fixed32(s, e.box, m); break
    case EPOCH:
      fixed(s, e.epoch, EPOCH_ID_BYTES, m)
      vector(s, e.vector, m)
      break
    case CUTS: uint(s, e.at.wall, m); uint(s, e.at.counter, m); vector(s, e.vector, m); break
  }
}

function vector (s: S, v: ReadonlyArray<[Uint8Array, number]>, m: Mode): void {
  uint(s, v.length, m)
  for (const [w, len] of v) { fixed32(s, w, m); uint(s, len, m) }
}

function readVector (s: { start: number, end: number, buffer: Uint8Array }): Array<[Uint8Array, number]> {
  const n = c.uint.decode(s)
  if (n > MAX_VECTOR) bad('vector too long')
  const out: Array<[Uint8Array, number]> = []
  for (let i = 0; i < n; i++) {
    const w = c.fixed32.decode(s)
    const len = c.uint.decode(s)
    if (!Number.isSafeInteger(len)) bad('length out of range')
    out.push([w, len])
  }
  return out
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
    if (version !== 1 && version !== 2 && version !== 3) bad('unknown format version ' + version)
    const type = c.uint.decode(s)
    if (version === 3 ? type === STATE : versionOf(type) !== version) bad(`type ${type} under format version ${version}`)
    const wall = c.uint.decode(s)
    const counter = c.uint.decode(s)
    if (!Number.isSafeInteger(wall) || counter > 0xffffffff) bad('stamp out of range')
    const st = mkStamp(wall, counter)
    let clock: EntryClock | undefined
    if (version === 3) {
      const seen = c.uint.decode(s)
      const reading = wall + c.int.decode(s)
      if (!Number.isSafeInteger(seen) || !Number.isSafeInteger(reading) || reading < 0) bad('clock out of range')
      if (seen !== 0 && wall > seen + MAX_LEAD) bad(`stamp runs ${wall - seen} ms past what its writer had seen (the lead rule allows ${MAX_LEAD})`)
      clock = { seen, reading }
    }
    switch (type) {
      case PUT: e = { type, stamp: st, value: c.buffer.decode(s) ?? Buffer.alloc(0) }; break
      case DEL: e = { type, stamp: st }; break
      case STATE: e = { type, stamp: st, state: c.buffer.decode(s) ?? Buffer.alloc(0) }; break
      case FIELD: e = { type, stamp: st, value: fieldValue(unpack(c.buffer.decode(s) ?? Buffer.alloc(0))) }; break
      case MEMBER: e = { type, stamp: st, state: decodeMember(c.buffer.decode(s) ?? Buffer.alloc(0)) }; break
      case ADD_WRITER: e = { type, stamp: st, writer: c.fixed32.decode(s) }; break
      case REMOVE_WRITER: {
        const writer = c.fixed32.decode(s)
        const length = c.uint.decode(s)
        if (!Number.isSafeInteger(length)) bad('length out of range')
        e = { type, stamp: st, writer, length }
        break
      }
      case ADD_READER: e = { type, stamp: st, writer: c.fixed32.decode(s) }; break
      case PRINCIPAL: e = { type, stamp: st, box: c.fixed32.decode(s) }; break
      case EPOCH: e = { type, stamp: st, epoch: readFixed(s, EPOCH_ID_BYTES), vector: readVector(s) }; break
      case CUTS: {
        const wall = c.uint.decode(s)
        const counter = c.uint.decode(s)
        if (!Number.isSafeInteger(wall) || counter > 0xffffffff) bad('stamp out of range')
        e = { type, stamp: st, at: mkStamp(wall, counter), vector: readVector(s) }
        break
      }
      case KEY_GRANT: e = { type, stamp: st, epoch: readFixed(s, EPOCH_ID_BYTES), writer: c.fixed32.decode(s), sealed: readFixed(s, SEALED_KEY_BYTES) }; break
      default: bad('unknown type ' + type)
    }
    if (clock !== undefined) e.clock = clock
  } catch (err) {
    if (err instanceof EntryError) throw err
    bad('undecodable (' + (err as Error).message + ')')
  }
  if (s.start !== s.end) bad('trailing bytes')
  if ((e.type === PUT && e.value.byteLength > MAX_VALUE_BYTES) || (e.type === STATE && e.state.byteLength > MAX_VALUE_BYTES)) {
    bad('oversize value')
  }
  if ((e.type === FIELD || e.type === MEMBER) && buf.byteLength > MAX_VALUE_BYTES + 64) bad('oversize value')
  return e
}

export function dataKey (key: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(key.byteLength + 1)
  out[0] = DATA
  out.set(key, 1)
  return out
}

export function membershipKey (type: typeof ADD_WRITER | typeof REMOVE_WRITER | typeof ADD_READER, writer: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(34)
  out[0] = MEMBERSHIP
  out[1] = type === ADD_WRITER ? ADD : type === ADD_READER ? READER : REMOVE
  out.set(writer, 2)
  return out
}

/** The bee key of a writer's PRINCIPAL entry (one per log). */
export const PRINCIPAL_KEY = Buffer.from([MEMBERSHIP, BOX])

/** The bee key of an EPOCH entry (one per epoch, by its maker). */
export function epochKey (epoch: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(2 + EPOCH_ID_BYTES)
  out[0] = MEMBERSHIP
  out[1] = NEW_EPOCH
  out.set(epoch, 2)
  return out
}

/** The bee key of a key grant: one per epoch and recipient. */
export function grantKey (epoch: Uint8Array, recipient: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(2 + EPOCH_ID_BYTES + 32)
  out[0] = MEMBERSHIP
  out[1] = GRANT
  out.set(epoch, 2)
  out.set(recipient, 2 + EPOCH_ID_BYTES)
  return out
}

/** Every data entry: whole values ('d'), set members ('e') and document fields ('f'). */
export const DATA_RANGE = { gte: Buffer.from([DATA]), lt: Buffer.from([FIELD_NS + 1]) }
/** The bee key of a writer's stability record. */
export const CUTS_KEY = Buffer.from([CUTS_NS])
/** What the data fold reads of a log: its stability record and its data entries (one diff). */
export const FOLD_RANGE = { gte: CUTS_KEY, lt: DATA_RANGE.lt }

/** A stability record under its bee key. */
export function decodeCuts (beeKey: Uint8Array, value: Uint8Array): CutsEntry {
  if (!CUTS_KEY.equals(Buffer.from(beeKey.buffer, beeKey.byteOffset, beeKey.byteLength))) bad('not the stability key')
  const e = decodeEntry(value)
  if (e.type !== CUTS) bad('no stability record under the stability key')
  return e
}
export const MEMBERSHIP_RANGE = { gte: Buffer.from([MEMBERSHIP]), lt: Buffer.from([MEMBERSHIP + 1]) }

/** Which part of a key a data entry is about: the whole value, a document field or a set member. */
export type PartKind = typeof FIELD_NS | typeof MEMBER_NS

/** A data bee key, parsed: the user key, and for a field or member entry its kind and name. */
export interface DataKey {
  key: Buffer
  part: { kind: PartKind, name: Buffer } | null
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

function asBuffer (b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength)
}

/** The bee key of a field ('f') or member ('e') of `key`; `name` is the UTF-8 name or canonical JSON. */
export function partBeeKey (kind: PartKind, key: Uint8Array, name: Uint8Array): Buffer {
  const len = c.encode(c.uint, key.byteLength)
  return Buffer.concat([Buffer.from([kind]), len, key, name])
}

/**
 * Parses a data bee key. Throws EntryError for one that is not well-formed: an oversize key or
 * name, a length prefix that does not fit, a field name that is not UTF-8, a member that is not
 * canonical JSON.
 */
export function parseDataKey (beeKey: Uint8Array): DataKey {
  const b = asBuffer(beeKey)
  if (b.byteLength < 1) bad('empty key')
  const ns = b[0]
  if (ns === DATA) {
    if (b.byteLength - 1 > MAX_KEY_BYTES) bad('oversize key')
    return { key: b.subarray(1), part: null }
  }
  if (ns !== FIELD_NS && ns !== MEMBER_NS) bad('not a data key')
  const s = { start: 1, end: b.byteLength, buffer: b }
  let len: number
  try {
    len = c.uint.decode(s)
  } catch {
    bad('part key length')
  }
  if (len > MAX_KEY_BYTES) bad('oversize key')
  if (s.start + len > b.byteLength) bad('part key length')
  const key = b.subarray(s.start, s.start + len)
  const name = b.subarray(s.start + len)
  if (name.byteLength > MAX_NAME_BYTES) bad('oversize name')
  let text: string
  try {
    text = utf8.decode(name)
  } catch {
    bad('name not UTF-8')
  }
  if (ns === MEMBER_NS) {
    let member: unknown
    try {
      member = JSON.parse(text)
    } catch {
      bad('member not JSON')
    }
    if (!isJson(member) || canonicalJson(member) !== text) bad('member not canonical JSON')
  }
  return { key, part: { kind: ns, name } }
}

/** A data entry under a bee key, validated as a whole: the key and the entry must both be sane and agree. */
export function decodeData (beeKey: Uint8Array, value: Uint8Array): DataEntry {
  const { part } = parseDataKey(beeKey)
  const e = decodeEntry(value)
  const want = part === null ? 'whole' : part.kind === FIELD_NS ? FIELD : MEMBER
  if (want === 'whole' ? (e.type !== PUT && e.type !== DEL && e.type !== STATE) : e.type !== want) bad('entry type does not match its key')
  return e as DataEntry
}

/** A membership entry under a bee key; the key must name the same writer as the entry. */
export function decodeMembership (beeKey: Uint8Array, value: Uint8Array): MembershipEntry {
  const e = decodeEntry(value)
  if (e.type !== ADD_WRITER && e.type !== REMOVE_WRITER && e.type !== ADD_READER && e.type !== KEY_GRANT && e.type !== PRINCIPAL && e.type !== EPOCH) bad('data entry under a membership key')
  const expected = e.type === KEY_GRANT ? grantKey(e.epoch, e.writer) : e.type === PRINCIPAL ? PRINCIPAL_KEY : e.type === EPOCH ? epochKey(e.epoch) : membershipKey(e.type, e.writer)
  if (!Buffer.from(beeKey.buffer, beeKey.byteOffset, beeKey.byteLength).equals(expected)) bad('membership key mismatch')
  return e
}

/** The writer's contribution to a key's whole value, as a key state. A STATE payload is decoded strictly. */
export function slotState (e: DataEntry, writer: Uint8Array): KeyState {
  switch (e.type) {
    case FIELD:
    case MEMBER: bad('a part entry is not a whole-value entry')
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

/** A field entry's register: the writer's latest write of the field. */
export function fieldState (e: DataEntry, writer: Uint8Array): Register<FieldValue> {
  if (e.type !== FIELD) bad('not a field entry')
  return { stamp: e.stamp, writer, value: e.value }
}

/**
 * A member entry's state. Its adds may only be the writer's own (an add names its adder): the
 * rule depends on the bytes and the log's key, so every peer skips the same entries.
 */
export function memberState (e: DataEntry, writer: Uint8Array): MemberState {
  if (e.type !== MEMBER) bad('not a member entry')
  const own = asBuffer(writer).toString('hex')
  for (const w of e.state.adds.keys()) if (w !== own) bad('an add by another writer')
  return e.state
}

/** A member's bytes in its key: its canonical JSON, in UTF-8. */
export function memberName (member: Json): Buffer {
  return Buffer.from(canonicalJson(member))
}

/** One writer's latest entry for a key or a part (the view keeps them: view.ts `Slot`). */
export interface EntrySlot { readonly writer: Uint8Array, readonly entry: Uint8Array }

/**
 * The writer key of the slot that holds what format-1 STATE entries say of a part: their merged
 * state, encoded by crdt/codec.ts (`encodeField`, `encodeMember`) rather than as an entry.
 */
export const LEGACY = new Uint8Array(0)

/** The register a slot's whole-value entry holds (entries in the view were validated when folded). */
function slotRegister (s: EntrySlot): Register<Uint8Array> | null {
  const e = decodeEntry(s.entry) as DataEntry
  switch (e.type) {
    case PUT: return { stamp: e.stamp, writer: s.writer, value: e.value }
    case DEL: return { stamp: e.stamp, writer: s.writer, value: null }
    case STATE: return decodeState(e.state).reg
    default: return null
  }
}

/** The merged register of a key's whole-value slots. */
export function registerOf (slots: readonly EntrySlot[]): Register<Uint8Array> | null {
  let reg: Register<Uint8Array> | null = null
  for (const s of slots) reg = mergeRegisters(reg, slotRegister(s))
  return reg
}

export function isState (s: EntrySlot | undefined): boolean {
  return s !== undefined && (decodeEntry(s.entry) as DataEntry).type === STATE
}

/** The merged state of the format-1 STATE entries among a key's slots. */
export function legacyState (slots: readonly EntrySlot[]): KeyState {
  return mergeAll(slots.filter((s) => isState(s)).map((s) => decodeState((decodeEntry(s.entry) as { state: Uint8Array }).state)))
}

/** A field's merged register from its slots. */
export function mergeField (slots: readonly EntrySlot[]): Register<FieldValue> | null {
  let reg: Register<FieldValue> | null = null
  for (const s of slots) reg = mergeRegisters(reg, s.writer.byteLength === 0 ? decodeField(s.entry) : fieldState(decodeEntry(s.entry) as DataEntry, s.writer))
  return reg
}

/** A member's merged state from its slots. */
export function mergeMember (slots: readonly EntrySlot[]): MemberState {
  let m = EMPTY_MEMBER
  for (const s of slots) m = mergeMembers(m, s.writer.byteLength === 0 ? decodeMember(s.entry) : memberState(decodeEntry(s.entry) as DataEntry, s.writer))
  return m
}

export { encodeState }

/** One part's entries: every writer's latest entry for one document field or set member. */
export interface PartSlots { readonly kind: PartKind, readonly name: Uint8Array, readonly slots: readonly EntrySlot[] }

/**
 * What a key reads as, from all of its entries at once: its whole-value slots and its parts.
 * Inspection reads keys this way (`checkout`, `versions`); the view renders the same part by part.
 */
export function renderKey (whole: readonly EntrySlot[], parts: Iterable<PartSlots>): Uint8Array | null {
  const legacy = legacyParts(legacyState(whole))
  const fields = new Map(legacy.fields)
  const members = new Map(legacy.members)
  for (const p of parts) {
    if (p.kind === FIELD_NS) {
      const name = asBuffer(p.name).toString('utf8')
      const f = mergeRegisters(fields.get(name) ?? null, mergeField(p.slots))
      if (f !== null) fields.set(name, f)
    } else {
      const name = asBuffer(p.name).toString('utf8')
      members.set(name, mergeMembers(members.get(name) ?? EMPTY_MEMBER, mergeMember(p.slots)))
    }
  }
  return renderParts({ reg: registerOf(whole), fields, members, removed: legacy.removed })
}
