/**
 * Many concurrent writes of one map key, after crdt-benchmarks' B3.1 ("20√N clients concurrently
 * set number in Map", dmonad/crdt-benchmarks js-lib/b3.js): `clients` = 20·⌊√N⌋ writers (1,540
 * for its N = 6,000), each on its own replica, set key 'v' of one map to their index i. Every
 * update is then applied to replica 0 (the reference, untimed) and to replica 1 (timed: "time"),
 * and the two are compared. Also as B3.1: the updates' total size ("updateSize"), the time to
 * encode replica 0 ("encodeTime") and its size ("docSize"), and the time to load that encoding
 * into a fresh replica ("parseTime").
 *
 *   meshbee    the pure merge core (crdt/): each writer's write is an LWW field register, a
 *              distinct version (an HLC stamp from its own clock + a 32-byte writer key) holding
 *              [i]; its update is the field's name and `encodeField` (crdt/codec.ts), the bytes of
 *              a format-2 field part. Applying one: `decodeField`, then `mergeRegisters` with the
 *              replica's field. The writers' field maps merged with `mergeFields` must give the
 *              same register. Encoded state: name + `encodeField` of the merged register.
 *              Every clock reads the same wall time, so all stamps tie and the writer key decides.
 *   yjs        one Y.Doc per writer, `getMap('map').set('v', i)`; updates are the V2 updates the
 *              docs emit, applied with `Y.applyUpdateV2` inside one transaction; state
 *              `Y.encodeStateAsUpdateV2` (as crdt-benchmarks' Yjs factory)
 *   automerge  `@automerge/automerge`: every writer loads one saved initial document
 *              `{ array: [], map: {}, text: '' }`, sets `map.v = i` in a `change`; updates are
 *              `saveIncremental`, applied with `loadIncremental`; state `save`, loaded with `load`
 *              (as crdt-benchmarks' Automerge factory)
 */
import type { Doc } from '@automerge/automerge'
import { decodeField, encodeField } from '../../crdt/codec.js'
import { HLC } from '../../crdt/hlc.js'
import { mergeRegisters, type Register } from '../../crdt/lww.js'
import { mergeFields, type FieldValue } from '../../crdt/lwwmap.js'
import { mulberry32, now } from './common.js'
import type { B3Params, Result } from './types.js'

const KEY = 'v'

function gc (): void {
  (globalThis as { gc?: () => void }).gc?.()
}

export async function runB3 (system: 'meshbee' | 'yjs' | 'automerge', p: B3Params): Promise<Result> {
  switch (system) {
    case 'meshbee': return meshbee(p)
    case 'yjs': return await yjs(p)
    case 'automerge': return await automerge(p)
  }
}

function meshbee (p: B3Params): Result {
  const rnd = mulberry32(31)
  const wall = Date.now()
  const regs: Array<Register<FieldValue>> = []
  const updates: Array<{ name: string, bytes: Uint8Array }> = []
  for (let i = 0; i < p.clients; i++) {
    const writer = new Uint8Array(32)
    for (let j = 0; j < 32; j++) writer[j] = Math.floor(rnd() * 256)
    const clock = new HLC({ wallClock: () => wall })
    const reg: Register<FieldValue> = { stamp: clock.now(), writer, value: [i] }
    regs.push(reg)
    updates.push({ name: KEY, bytes: encodeField(reg) })
  }
  const nameBytes = Buffer.byteLength(KEY)

  // replica i holds its own write and applies every update (its own included, as in B3.1)
  const apply = (replica: Map<string, Register<FieldValue>>): void => {
    for (const u of updates) {
      const reg = decodeField(u.bytes)
      replica.set(u.name, mergeRegisters(replica.get(u.name) ?? null, reg) as Register<FieldValue>)
    }
  }
  const ref = new Map([[KEY, regs[0]]])
  apply(ref)
  const replica = new Map([[KEY, regs[1]]])
  gc()
  let t = now()
  apply(replica)
  const ms = now() - t
  // a third derivation: every writer's field map merged with mergeFields
  let all = new Map<string, Register<FieldValue>>()
  for (const reg of regs) all = mergeFields(all, new Map([[KEY, reg]]), null)
  const a = ref.get(KEY)
  const b = replica.get(KEY)
  const c = all.get(KEY)
  if (a === undefined || b === undefined || c === undefined || a.value?.[0] !== b.value?.[0] || a.value?.[0] !== c.value?.[0]) {
    throw new Error(`meshbee replicas disagree: ${String(a?.value)}, ${String(b?.value)}, ${String(c?.value)}`)
  }

  t = now()
  const state = encodeField(a)
  const encodeMs = now() - t
  t = now()
  const loaded = decodeField(state)
  const parseMs = now() - t
  if (loaded.value?.[0] !== a.value?.[0]) throw new Error('meshbee: the encoded state does not load back')
  return {
    metrics: {
      ms,
      updateBytes: updates.reduce((n, u) => n + nameBytes + u.bytes.byteLength, 0),
      encodeMs,
      docBytes: nameBytes + state.byteLength,
      parseMs,
      updates: updates.length
    }
  }
}

async function yjs (p: B3Params): Promise<Result> {
  const Y = await import('yjs')
  const docs: Array<InstanceType<typeof Y.Doc>> = []
  const updates: Uint8Array[] = []
  let collecting = true
  for (let i = 0; i < p.clients; i++) {
    const doc = new Y.Doc()
    doc.on('updateV2', (u: Uint8Array) => { if (collecting) updates.push(u) })
    doc.getMap('map')
    docs.push(doc)
  }
  for (let i = 0; i < docs.length; i++) docs[i].getMap('map').set(KEY, i)
  collecting = false
  if (updates.length < p.clients) throw new Error(`yjs emitted ${updates.length} updates`)

  const apply = (doc: InstanceType<typeof Y.Doc>): void => {
    doc.transact(() => { for (const u of updates) Y.applyUpdateV2(doc, u) })
  }
  apply(docs[0])
  gc()
  let t = now()
  apply(docs[1])
  const ms = now() - t
  const a = JSON.stringify(docs[0].getMap('map').toJSON())
  if (a !== JSON.stringify(docs[1].getMap('map').toJSON())) throw new Error('yjs replicas disagree')

  t = now()
  const state = Y.encodeStateAsUpdateV2(docs[0])
  const encodeMs = now() - t
  t = now()
  const loaded = new Y.Doc()
  Y.applyUpdateV2(loaded, state)
  const parseMs = now() - t
  if (JSON.stringify(loaded.getMap('map').toJSON()) !== a) throw new Error('yjs: the encoded state does not load back')
  return {
    metrics: {
      ms,
      updateBytes: updates.reduce((n, u) => n + u.byteLength, 0),
      encodeMs,
      docBytes: state.byteLength,
      parseMs,
      updates: updates.length
    }
  }
}

type AmDoc = { array: number[], map: Record<string, number>, text: string }

async function automerge (p: B3Params): Promise<Result> {
  const A = await import('@automerge/automerge')
  const initial = A.save(A.from<AmDoc>({ array: [], map: {}, text: '' }))
  const docs: Array<Doc<AmDoc>> = []
  const updates: Uint8Array[] = []
  for (let i = 0; i < p.clients; i++) docs.push(A.load<AmDoc>(initial))
  for (let i = 0; i < docs.length; i++) {
    docs[i] = A.change(docs[i], (d) => { d.map[KEY] = i })
    updates.push(A.saveIncremental(docs[i]))
  }

  const apply = (doc: Doc<AmDoc>): Doc<AmDoc> => {
    for (const u of updates) doc = A.loadIncremental(doc, u)
    return doc
  }
  docs[0] = apply(docs[0])
  gc()
  let t = now()
  docs[1] = apply(docs[1])
  const ms = now() - t
  const a = JSON.stringify(docs[0].map)
  if (a !== JSON.stringify(docs[1].map)) throw new Error('automerge replicas disagree')

  t = now()
  const state = A.save(docs[0])
  const encodeMs = now() - t
  t = now()
  const loaded = A.load<AmDoc>(state)
  const parseMs = now() - t
  if (JSON.stringify(loaded.map) !== a) throw new Error('automerge: the encoded state does not load back')
  return {
    metrics: {
      ms,
      updateBytes: updates.reduce((n, u) => n + u.byteLength, 0),
      encodeMs,
      docBytes: state.byteLength,
      parseMs,
      updates: updates.length
    }
  }
}
