import { expect } from 'chai'
import fc from 'fast-check'
import { encode as pack } from '@msgpack/msgpack'
import {
  decodeMap, decodeRegister, decodeSet, decodeState,
  encodeMap, encodeRegister, encodeSet, encodeState
} from '../../crdt/codec.js'
import { type Version } from '../../crdt/hlc.js'
import { canonicalJson, isJson, isWellFormed, type Json } from '../../crdt/json.js'
import { EMPTY, merge, render, type KeyState } from '../../crdt/keystate.js'
import { tagId } from '../../crdt/orset.js'
import {
  check, expectBytes, keyStateArbFrom, mapArbFrom, MAX_COUNTER, poolArb, registerArbFrom, setArbFrom,
  stampArb, writerArb
} from './arbitraries.js'

interface Codec<S> { name: string, encode: (s: S) => Uint8Array, decode: (b: Uint8Array, writerLength?: number | null) => S }

const codecs: Array<Codec<any>> = [
  { name: 'key state', encode: encodeState, decode: decodeState },
  { name: 'register', encode: encodeRegister, decode: decodeRegister },
  { name: 'map', encode: encodeMap, decode: decodeMap },
  { name: 'set', encode: encodeSet, decode: decodeSet }
]

const statesArb = poolArb.chain((pool) => fc.record({
  state: keyStateArbFrom(pool),
  register: registerArbFrom(pool),
  map: mapArbFrom(pool),
  set: setArbFrom(pool)
}))

/** Any string, lone surrogates too, short or long (msgpack encodes those two differently). */
const wildStringArb = (minLength: number, maxLength: number): fc.Arbitrary<string> => fc.string({
  minLength,
  maxLength,
  unit: fc.oneof(
    { arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }), weight: 20 },
    { arbitrary: fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c)), weight: 1 }
  )
})

/** JSON with any strings and any keys (`__proto__` too), as users might send. */
const wildJsonArb: fc.Arbitrary<unknown> = fc.letrec<{ json: unknown }>((tie) => ({
  json: fc.oneof(
    { depthSize: 'small', maxDepth: 3 },
    fc.constant(null), fc.boolean(), fc.double(), fc.integer(),
    wildStringArb(0, 4),
    wildStringArb(60, 80),
    fc.array(tie('json'), { maxLength: 3 }),
    fc.array(fc.tuple(fc.oneof(wildStringArb(0, 3), fc.constantFrom('__proto__', 'constructor', '1', '')), tie('json')), { maxLength: 3 })
      .map((kv) => Object.fromEntries(kv))
  )
})).json

/** A key state whose stamps, writers and values range over everything valid. */
const wideStateArb: fc.Arbitrary<KeyState> = fc.record({
  reg: fc.option(fc.record({ stamp: stampArb, writer: writerArb, value: fc.option(fc.uint8Array({ maxLength: 300 })) })),
  fields: fc.array(fc.tuple(fc.oneof(wildStringArb(0, 4), wildStringArb(60, 80), fc.constant('__proto__')), stampArb, writerArb, fc.option(wildJsonArb)), { maxLength: 3 })
    .map((fs) => new Map(fs.map(([name, stamp, writer, v]) => [name, { stamp, writer, value: v === null ? null : [v as Json] as const }]))),
  adds: fc.array(fc.tuple(stampArb, writerArb, wildJsonArb), { maxLength: 3 })
    .map((as) => new Map(as.map(([stamp, writer, member]) => [tagId({ stamp, writer }), { tag: { stamp, writer }, member: member as Json }]))),
  removed: fc.array(fc.record({ stamp: stampArb, writer: writerArb }), { maxLength: 3 })
    .map((rs) => new Map(rs.map((t) => [tagId(t), t])))
})

function jsonValues (s: KeyState): unknown[] {
  return [...[...s.fields.values()].map((r) => r.value?.[0] ?? null), ...[...s.adds.values()].map((a) => a.member)]
}

// --- malformed input ---------------------------------------------------------------------------

const junkArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(null), fc.boolean(), fc.integer(), fc.double(), fc.string({ maxLength: 3 }),
  fc.constantFrom(-1, 0.5, 2 ** 53, 2 ** 64, MAX_COUNTER + 1, NaN, Infinity, -0),
  fc.uint8Array({ maxLength: 33 }), fc.array(fc.nat(), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 2 }), fc.nat(), { maxKeys: 2 }), fc.constant({ ['__proto__']: 1 })
)

function near<T> (valid: fc.Arbitrary<T>): fc.Arbitrary<unknown> {
  return fc.oneof({ arbitrary: valid, weight: 5 }, { arbitrary: junkArb, weight: 1 })
}

/** Sometimes one element short, sometimes one too many. */
function mangled (arr: fc.Arbitrary<unknown[]>): fc.Arbitrary<unknown[]> {
  return fc.tuple(arr, fc.constantFrom(0, 0, 0, 0, -1, 1)).map(([a, d]) => d < 0 ? a.slice(0, -1) : d > 0 ? [...a, null] : a)
}

const versionWire = [near(fc.nat({ max: 4 })), near(fc.nat({ max: 4 })), near(fc.uint8Array({ minLength: 32, maxLength: 32 }))] as const
const listOf = (item: fc.Arbitrary<unknown[]>): fc.Arbitrary<unknown> => near(fc.array(mangled(item), { maxLength: 3 }))
const regWire = fc.oneof(fc.constant(null), mangled(fc.tuple(...versionWire, near(fc.option(fc.uint8Array({ maxLength: 3 }))))))
const resetWire = fc.oneof(fc.constant(null), mangled(fc.tuple(...versionWire)))
const fieldsWire = listOf(fc.tuple(near(fc.constantFrom('a', 'b')), ...versionWire, near(fc.option(fc.tuple(fc.jsonValue({ maxDepth: 1 }))))))
const addsWire = listOf(fc.tuple(...versionWire, near(fc.jsonValue({ maxDepth: 1 }))))
const removedWire = listOf(fc.tuple(...versionWire))
const format = near(fc.constant(1))

/** msgpack of values shaped almost like each encoding. */
const nearlyValidArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  mangled(fc.tuple(format, regWire, fieldsWire, addsWire, removedWire)),
  mangled(fc.tuple(format, regWire)),
  mangled(fc.tuple(format, resetWire, fieldsWire)),
  mangled(fc.tuple(format, resetWire, addsWire, removedWire))
).map((v) => pack(v))

type Mutation = { at: number, byte: number, kind: 'flip' | 'insert' | 'delete' | 'truncate' }

function mutate (bytes: Uint8Array, ms: Mutation[]): Uint8Array {
  let b = [...bytes]
  for (const m of ms) {
    const at = m.at % (b.length + 1)
    if (m.kind === 'flip' && at < b.length) b[at] ^= m.byte || 1
    else if (m.kind === 'insert') b.splice(at, 0, m.byte)
    else if (m.kind === 'delete') b.splice(at, 1)
    else if (m.kind === 'truncate') b = b.slice(0, at)
  }
  return Uint8Array.from(b)
}

const mutationArb: fc.Arbitrary<Mutation[]> = fc.array(
  fc.record({ at: fc.nat(), byte: fc.nat({ max: 255 }), kind: fc.constantFrom('flip', 'insert', 'delete', 'truncate') }),
  { minLength: 1, maxLength: 3 })

const malformedArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 64 }),
  nearlyValidArb,
  fc.tuple(statesArb, fc.nat({ max: 3 }), mutationArb)
    .map(([s, i, ms]) => mutate(codecs[i].encode([s.state, s.register, s.map, s.set][i]), ms))
)

/** Decodes or throws a RangeError; whatever it accepts is a state that re-encodes stably. */
function decodesOrRangeError<S> (codec: Codec<S>, bytes: Uint8Array): void {
  let s: S
  try {
    s = codec.decode(bytes)
  } catch (err) {
    expect(err, `${codec.name}: ${String(err)}`).to.be.instanceOf(RangeError)
    return
  }
  const again = codec.encode(s)
  expectBytes(codec.encode(codec.decode(again)), again, codec.name)
}

describe('crdt/codec: msgpack encodings', () => {
  it('encode/decode round trip, for each kind of state', () => {
    check(statesArb, (s) => {
      const values = [s.state, s.register, s.map, s.set]
      codecs.forEach((codec, i) => {
        const bytes = codec.encode(values[i])
        expectBytes(codec.encode(codec.decode(bytes)), bytes, codec.name)
      })
      expectBytes(render(decodeState(encodeState(s.state))), render(s.state), 'render()')
    })
  })

  it('every state made of values isJson accepts round trips', () => {
    check(wideStateArb, (s) => {
      fc.pre(jsonValues(s).every((v) => isJson(v)) && [...s.fields.keys()].every(isWellFormed))
      const back = decodeState(encodeState(s))
      const canonical = (st: KeyState): string[] => jsonValues(st).map((v) => canonicalJson(v as Json)).sort()
      expect(canonical(back)).to.deep.equal(canonical(s))
      expect([...back.fields.keys()]).to.deep.equal([...s.fields.keys()].sort((a, b) => a < b ? -1 : a > b ? 1 : 0))
      expectBytes(render(back), render(s), 'render()')
      expectBytes(encodeState(back), encodeState(s), 'key state')
    })
  })

  it('isJson refuses what the encoding cannot carry', () => {
    expect(isJson('\ud800')).to.equal(false)
    expect(isJson(['x'.repeat(100) + '\udc00'])).to.equal(false)
    expect(isJson({ ok: { ['\ud83d']: 1 } })).to.equal(false)
    expect(isJson(JSON.parse('{"a":{"__proto__":1}}'))).to.equal(false)
    expect(isJson({ emoji: '\ud83d\ude00', constructor: 1 })).to.equal(true)
    const field = (name: string): unknown[] => [[name, 1, 0, new Uint8Array(32), [1]]]
    expect(() => decodeMap(pack([1, null, field('x'.repeat(10) + '\ud800')]))).to.throw(RangeError)
  })

  it('a field named __proto__ is a field like any other', () => {
    const s = decodeState(pack([1, null, [['__proto__', 1, 0, new Uint8Array(32), [{ a: 1 }]]], [], []]))
    expect(new TextDecoder().decode(render(s) as Uint8Array)).to.equal('{"__proto__":{"a":1}}')
  })

  it('JSON-equal states encode to equal bytes', () => {
    check(fc.tuple(fc.dictionary(fc.string({ maxLength: 3 }), fc.jsonValue({ maxDepth: 1 }), { minKeys: 2 }), stampArb, writerArb), ([obj, stamp, writer]) => {
      const reversed = Object.fromEntries(Object.entries(obj).reverse()) as Json
      const state = (member: Json): KeyState => ({ ...EMPTY, adds: new Map([[tagId({ stamp, writer }), { tag: { stamp, writer }, member }]]) })
      expectBytes(encodeState(state(reversed)), encodeState(state(obj as Json)))
    })
  })

  it('decoding rejects malformed bytes with RangeError', () => {
    check(malformedArb, (bytes) => {
      for (const codec of codecs) decodesOrRangeError(codec, bytes)
    })
  })

  it('one kind of state never decodes as another', () => {
    check(statesArb, (s) => {
      const values = [s.state, s.register, s.map, s.set]
      codecs.forEach((from, i) => {
        const bytes = from.encode(values[i])
        codecs.forEach((to, j) => {
          if (i !== j) expect(() => to.decode(bytes), `${from.name} as ${to.name}`).to.throw(RangeError)
        })
      })
    })
  })

  it('writer keys of the wrong length are rejected unless writerLength is null', () => {
    const v: Version = { stamp: { wall: 1, counter: 0 }, writer: new Uint8Array(16) }
    const state: KeyState = { ...EMPTY, reg: { ...v, value: null } }
    expect(() => decodeState(encodeState(state))).to.throw(RangeError)
    expectBytes(encodeState(decodeState(encodeState(state), null)), encodeState(state))
    expect(() => decodeRegister(encodeRegister(state.reg), 32)).to.throw(RangeError)
    expect(() => decodeMap(encodeMap({ reset: v, fields: new Map() }))).to.throw(RangeError)
    expect(() => decodeSet(encodeSet({ reset: null, adds: new Map(), removed: new Map([[tagId(v), v]]) }))).to.throw(RangeError)
  })
})
