/**
 * Secondary indexes over the view: each a pure function of a key's value (a field path of a JSON
 * document, or the app's `map`), kept in the same atomic batch as the view commit that changes
 * the key (`Indexes.stage`), so an index is always exactly its view's, and so the same on every
 * peer whose view is the same. An index is rebuilt from the view when it is declared or its
 * version changes, and dropped when it is no longer declared.
 *
 * Declarations are kept in the view's meta ('indexes'): a field index is data, so every process
 * opening the database (the CLI too) keeps it up to date. A map index is code: a process that
 * opens the database without it cannot keep it, so the first commit there marks it stale, and the
 * next open that declares it again rebuilds it.
 */
import type { Logger } from 'pino'
import c from 'compact-encoding'
import { decodeIndexKey, encodeIndexKey, fieldKeys, isIndexKey, prefixEnd, type IndexKey } from './collate.js'
import { indexNotFound, indexStale, invalidArgument } from './errors.js'
import { readRow } from './render.js'
import { bm25, corpusKey, decodeCorpus, dfKey, encodeCorpus, fieldsText, postingKey, readUint, termPrefix, termsOf, tokenize, uintBytes } from './text.js'
import { pack, unpack } from '../crdt/codec.js'
import type { Stats } from './types.js'
import type { BatchOp, ViewSnapshot, ViewStore } from './view.js'
import type { Json } from '../crdt/json.js'

type Bytes = Buffer

const EMPTY = Buffer.alloc(0)
/** An index entry that holds its key's value: this byte, then the value as the view renders it. */
const COVERED = Buffer.from([1])
/** Values up to this size, of keys with at most COVER_MAX_ENTRIES entries in an index, are copied into them. */
const COVER_MAX_BYTES = 1024
const COVER_MAX_ENTRIES = 4

/** A map index's function, on stored bytes (MeshDB wraps the app's with its encodings). */
export type RawMap = (key: Bytes, value: Bytes) => unknown

/** A text index's function, on stored bytes: the text to index. */
export type RawText = (key: Bytes, value: Bytes) => unknown

/** An index as it is declared: a field path, code, or full text (fields, or code). */
export type IndexSpec =
  | { readonly version: number, readonly field: string }
  | { readonly version: number, readonly map: RawMap }
  | { readonly version: number, readonly text: readonly string[] | RawText }

/** An index as the meta table keeps it ('text' with `fields` is data; without, code). */
interface Stored { version: number, kind: 'field' | 'map' | 'text', field?: string, fields?: string[], stale?: boolean }

/** A declared index, as `db.indexes()` lists it. */
export interface IndexInfo {
  /** Its name (what `db.query` takes). */
  name: string
  /** The declaration's version. */
  version: number
  /** 'field': by a field path (kept by every process); 'map': by a function (kept where it is declared); 'text': full text. */
  kind: 'field' | 'map' | 'text'
  /** The field path of a field index. */
  field?: string
  /** The fields a text index reads (absent: a function, kept where it is declared). */
  fields?: string[]
  /** Whether this process keeps it up to date. */
  live: boolean
  /** Whether a process that could not keep it wrote since: `query` refuses it until it is declared again. */
  stale: boolean
}

interface Live {
  name: string
  prefix: Bytes
  /** A key index's keys for a value. */
  extract?: (key: Bytes, value: Bytes) => IndexKey[]
  /** A text index's text for a value. */
  text?: (key: Bytes, value: Bytes) => string
}

/** A text index's changes staged in one batch, not yet in the view: df deltas, documents, length. */
interface TextDeltas { df: Map<string, number>, n: number, total: number }

/** The bytes every entry of index `name` starts with. */
export function indexPrefix (name: string): Bytes {
  return Buffer.concat([c.encode(c.uint, Buffer.byteLength(name)), Buffer.from(name)])
}

/** A JSON value from stored bytes (a document or set is canonical JSON); undefined if it is not JSON. */
function parseJson (value: Bytes): Json | undefined {
  try {
    return JSON.parse(value.toString('utf8')) as Json
  } catch {
    return undefined
  }
}

export function checkSpec (name: string, spec: unknown): IndexSpec {
  if (typeof name !== 'string' || name === '' || Buffer.byteLength(name) > 255) throw invalidArgument('an index name must be a non-empty string of at most 255 bytes')
  if (spec === null || typeof spec !== 'object') throw invalidArgument(`index ${name}: a declaration must be an object`)
  const { version, field, map, text } = spec as { version?: unknown, field?: unknown, map?: unknown, text?: unknown }
  if (!Number.isSafeInteger(version) || (version as number) < 0) throw invalidArgument(`index ${name}: version must be a whole number, 0 or more`)
  if ([field, map, text].filter((x) => x !== undefined).length !== 1) throw invalidArgument(`index ${name}: give one of field (a dotted path), map (a function) or text (fields, or a function)`)
  if (field !== undefined && typeof field !== 'string') throw invalidArgument(`index ${name}: field must be a dotted path`)
  if (map !== undefined && typeof map !== 'function') throw invalidArgument(`index ${name}: map must be a function (key, value) => index keys`)
  if (text !== undefined && typeof text !== 'function' && !(Array.isArray(text) && text.length > 0 && text.every((f) => typeof f === 'string'))) {
    throw invalidArgument(`index ${name}: text must be a list of dotted field paths, or a function (key, value) => text`)
  }
  return spec as IndexSpec
}

export class Indexes {
  /** Every declared index, as the meta table keeps them. */
  private stored = new Map<string, Stored>()
  /** The indexes this process keeps up to date. */
  private readonly live = new Map<string, Live>()
  /** The map indexes declared in this process (their code). */
  private readonly code = new Map<string, RawMap | RawText>()
  /** Text index changes staged per batch (keyed by the batch's op list), until `finish`. */
  private readonly pending = new WeakMap<object, Map<string, TextDeltas>>()

  constructor (private readonly view: ViewStore, private readonly stats: Stats, private readonly log: Logger, private readonly emit: (event: string, ...args: unknown[]) => void) {}

  /** Whether a commit must compute its changed keys' values for the indexes. */
  get active (): boolean {
    return this.live.size > 0
  }

  /** Whether a map index is declared that this process cannot keep, not yet marked stale. */
  get unkept (): boolean {
    return [...this.stored].some(([name, s]) => isCode(s) && s.stale !== true && !this.live.has(name))
  }

  /**
   * Reads the declarations from the view. `code`: the functions of the map and text indexes this
   * process declares, given before the open's fold so that it keeps them (a fold without them would
   * mark them stale, and the declaration after it rebuild them).
   */
  async open (code: ReadonlyMap<string, RawMap | RawText> = new Map()): Promise<void> {
    for (const [name, fn] of code) this.code.set(name, fn)
    const raw = await this.view.getMeta('indexes')
    this.stored = new Map(raw === undefined ? [] : Object.entries(JSON.parse(raw.toString('utf8')) as Record<string, Stored>))
    for (const [name, s] of this.stored) this.enliven(name, s)
  }

  /**
   * Rebuilds every stale index this process can keep (a build cut short by a crash or a stop, or a
   * map index declared here again): the caller holds the engine's queue.
   */
  async repair (): Promise<void> {
    for (const [name, s] of [...this.stored]) {
      if (s.stale !== true || (isCode(s) && !this.code.has(name))) continue
      const spec: IndexSpec = s.kind === 'field'
        ? { version: s.version, field: s.field ?? '' }
        : s.kind === 'map'
          ? { version: s.version, map: this.code.get(name) as RawMap }
          : { version: s.version, text: s.fields ?? (this.code.get(name) as RawText) }
      await this.define(name, spec)
    }
  }

  /** The declared indexes. */
  list (): IndexInfo[] {
    return [...this.stored].map(([name, s]) => ({
      name,
      version: s.version,
      kind: s.kind,
      ...(s.field !== undefined ? { field: s.field } : {}),
      ...(s.fields !== undefined ? { fields: s.fields } : {}),
      live: this.live.has(name),
      stale: s.stale === true
    }))
  }

  /**
   * Declares the index `name` (replacing one of that name): rebuilds it from the view when it is
   * new, its version or definition changed, or it went stale. The caller holds the engine's queue.
   */
  async define (name: string, spec: unknown): Promise<boolean> {
    const s = checkSpec(name, spec)
    const want: Stored = 'field' in s
      ? { version: s.version, kind: 'field', field: s.field }
      : 'map' in s
        ? { version: s.version, kind: 'map' }
        : typeof s.text === 'function' ? { version: s.version, kind: 'text' } : { version: s.version, kind: 'text', fields: [...s.text] }
    if ('map' in s) this.code.set(name, s.map)
    if ('text' in s && typeof s.text === 'function') this.code.set(name, s.text)
    const had = this.stored.get(name)
    const same = had !== undefined && had.version === want.version && had.kind === want.kind && had.field === want.field &&
      JSON.stringify(had.fields) === JSON.stringify(want.fields) && had.stale !== true
    if (same) {
      this.enliven(name, had)
      return false
    }
    this.live.delete(name)
    this.stored.set(name, { ...want, stale: true })
    await this.saveDeclarations()
    await this.rebuild(name)
    this.stored.set(name, want)
    await this.saveDeclarations()
    this.enliven(name, want)
    return true
  }

  /** Removes the index `name` and its entries. */
  async drop (name: string): Promise<boolean> {
    if (!this.stored.has(name)) return false
    this.live.delete(name)
    this.code.delete(name)
    this.stored.delete(name)
    await this.saveDeclarations()
    await this.view.clearIndex(indexPrefix(name))
    return true
  }

  /**
   * The index entries of one changed key, staged with its commit: the value it reads as after the
   * commit (undefined: absent) gives each live index its keys, against the ones it held.
   */
  stage (ops: BatchOp[], key: Bytes, value: Bytes | undefined, indexes: Iterable<Live> = this.live.values()): void {
    for (const ix of indexes) {
      if (ix.text !== undefined) {
        this.stageText(ops, ix, key, value)
        continue
      }
      const extract = ix.extract as (key: Bytes, value: Bytes) => IndexKey[]
      let keys: IndexKey[] = []
      if (value !== undefined) {
        try {
          keys = extract(key, value)
        } catch (err) {
          this.stats.indexErrors++
          this.log.warn({ index: ix.name, key: key.toString('hex'), err: thrown(err) }, 'an index skipped a key')
          keys = []
        }
      }
      const ref = Buffer.concat([ix.prefix, key])
      const before = this.view.getIndexedSync(ref)
      const old = new Set<string>()
      if (before !== undefined) {
        for (let at = 0; at < before.length;) {
          const { size } = decodeIndexKey(before.subarray(at))
          old.add(before.subarray(at, at + size).toString('latin1'))
          at += size
        }
      }
      const next = new Set(keys.map((k) => encodeIndexKey(k).toString('latin1')))
      for (const o of old) if (!next.has(o)) ops.push(this.view.putIndexEntry(Buffer.concat([ix.prefix, Buffer.from(o, 'latin1'), key]), null))
      // a small value with few entries is copied into them (a query then reads no other row);
      // they are written again whenever the value changes (this is only called then)
      const covered = value !== undefined && value.byteLength <= COVER_MAX_BYTES && next.size <= COVER_MAX_ENTRIES
      const entry = covered ? Buffer.concat([COVERED, value]) : EMPTY
      for (const n of next) {
        if (covered || !old.has(n) || old.size <= COVER_MAX_ENTRIES) ops.push(this.view.putIndexEntry(Buffer.concat([ix.prefix, Buffer.from(n, 'latin1'), key]), entry))
      }
      if (next.size === 0 ? before !== undefined : !setsEqual(old, next)) {
        ops.push(this.view.putIndexed(ref, next.size === 0 ? null : Buffer.concat([...next].sort().map((x) => Buffer.from(x, 'latin1')))))
      }
    }
  }

  /** One changed key in a text index: its postings, and the statistics' deltas (see `finish`). */
  private stageText (ops: BatchOp[], ix: Live, key: Bytes, value: Bytes | undefined): void {
    let after: { tf: Map<string, number>, length: number } | null = null
    if (value !== undefined) {
      try {
        after = termsOf((ix.text as (k: Bytes, v: Bytes) => string)(key, value))
      } catch (err) {
        this.stats.indexErrors++
        this.log.warn({ index: ix.name, key: key.toString('hex'), err: thrown(err) }, 'an index skipped a key')
      }
      if (after !== null && after.length === 0) after = null
    }
    const ref = Buffer.concat([ix.prefix, key])
    const raw = this.view.getIndexedSync(ref)
    const [oldTerms, oldLength] = raw === undefined ? [[], 0] : unpack(raw) as [Array<[string, number]>, number]
    if (raw === undefined && after === null) return
    let batch = this.pending.get(ops)
    if (batch === undefined) this.pending.set(ops, batch = new Map())
    let d = batch.get(ix.name)
    if (d === undefined) batch.set(ix.name, d = { df: new Map(), n: 0, total: 0 })
    const old = new Map(oldTerms)
    const next = after?.tf ?? new Map<string, number>()
    for (const [t] of old) {
      if (next.has(t)) continue
      ops.push(this.view.putIndexEntry(postingKey(ix.prefix, t, key), null))
      d.df.set(t, (d.df.get(t) ?? 0) - 1)
    }
    for (const [t, tf] of next) {
      if (old.get(t) !== tf) ops.push(this.view.putIndexEntry(postingKey(ix.prefix, t, key), uintBytes(tf)))
      if (!old.has(t)) d.df.set(t, (d.df.get(t) ?? 0) + 1)
    }
    d.n += (after === null ? 0 : 1) - (raw === undefined ? 0 : 1)
    d.total += (after?.length ?? 0) - oldLength
    ops.push(this.view.putIndexed(ref, after === null ? null : Buffer.from(pack([[...next], after.length]))))
  }

  /** Adds to a batch the text indexes' statistics its staged keys changed (before it is written). */
  finish (ops: BatchOp[]): void {
    const batch = this.pending.get(ops)
    if (batch === undefined) return
    this.pending.delete(ops)
    for (const [name, d] of batch) {
      const prefix = indexPrefix(name)
      for (const [t, delta] of d.df) {
        if (delta === 0) continue
        const df = readUint(this.view.getIndexRow('index', dfKey(prefix, t))) + delta
        ops.push(this.view.putIndexEntry(dfKey(prefix, t), df <= 0 ? null : uintBytes(df)))
      }
      const corpus = decodeCorpus(this.view.getIndexRow('index', corpusKey(prefix)))
      const n = corpus.n + d.n
      ops.push(this.view.putIndexEntry(corpusKey(prefix), n <= 0 ? null : encodeCorpus(n, corpus.total + d.total)))
    }
  }

  /**
   * The keys of text index `name` that hold every term of `query`, the last as a prefix (so a
   * query can be typed as it is searched), best first by BM25 over the index's statistics, at `snap`.
   */
  async search (name: string, query: string, limit: number, snap: ViewSnapshot): Promise<Array<{ key: Bytes, score: number }>> {
    const s = this.stored.get(name)
    if (s === undefined) throw indexNotFound(name)
    if (s.kind !== 'text') throw invalidArgument(`index ${name} is not a text index: query it with db.query`)
    if (s.stale === true && !this.live.has(name)) throw indexStale(name, isCode(s))
    const terms = tokenize(query)
    if (terms.length === 0) return []
    const prefix = indexPrefix(name)
    const corpus = decodeCorpus(this.view.getIndexRow('index', corpusKey(prefix), snap))
    const lengths = new Map<string, number>()
    const lengthOf = (key: Bytes): number => {
      const id = key.toString('latin1')
      let l = lengths.get(id)
      if (l === undefined) {
        const raw = this.view.getIndexRow('indexed', Buffer.concat([prefix, key]), snap)
        lengths.set(id, l = raw === undefined ? 0 : (unpack(raw) as [unknown, number])[1])
      }
      return l
    }
    // per query term: each key holding it (or, for the last, a term it starts), and its best score
    let scores: Map<string, number> | null = null
    for (const [i, term] of terms.entries()) {
      const last = i === terms.length - 1
      const here = new Map<string, number>()
      const from = termPrefix(prefix, term, !last)
      const dfs = new Map<string, number>()
      for await (const [row, tf] of this.view.scan('index', from, snap)) {
        const rest = row.subarray(prefix.length + 1)
        const zero = rest.indexOf(0)
        const t = rest.subarray(0, zero).toString('utf8')
        const key = rest.subarray(zero + 1)
        const id = key.toString('latin1')
        if (scores !== null && !scores.has(id)) continue
        let df = dfs.get(t)
        if (df === undefined) dfs.set(t, df = readUint(this.view.getIndexRow('index', dfKey(prefix, t), snap)))
        const score = bm25(readUint(tf), df, lengthOf(key), corpus)
        here.set(id, Math.max(here.get(id) ?? 0, score))
      }
      if (scores === null) scores = here
      else {
        const next: Map<string, number> = new Map()
        for (const [id, sc] of here) next.set(id, (scores.get(id) as number) + sc)
        scores = next
      }
      if (scores.size === 0) return []
    }
    return [...(scores as Map<string, number>)].map(([id, score]) => ({ key: Buffer.from(id, 'latin1'), score }))
      .sort((a, b) => b.score - a.score || Buffer.compare(a.key, b.key)).slice(0, limit)
  }

  /**
   * A commit is about to be written in a process that cannot keep a map index (its code is not
   * declared here): the index is marked stale first, and rebuilt when a process declares it again.
   */
  async markStale (): Promise<void> {
    for (const [name, s] of this.stored) if (isCode(s) && !this.live.has(name)) s.stale = true
    await this.saveDeclarations()
  }

  /**
   * The entries of index `name` in a range of index keys, in order, at `snap`: the index key and
   * the user key of each, and its value when the entry holds it (small values: see COVERED), a
   * batch at a time.
   */
  async * range (name: string, opts: { gt?: unknown, gte?: unknown, lt?: unknown, lte?: unknown, reverse?: boolean, limit?: number }, snap: ViewSnapshot): AsyncGenerator<Array<{ indexKey: IndexKey, key: Bytes, value: Bytes | undefined }>> {
    const s = this.stored.get(name)
    if (s === undefined) throw indexNotFound(name)
    if (s.kind === 'text') throw invalidArgument(`index ${name} is a text index: search it with db.search`)
    if (s.stale === true && !this.live.has(name)) throw indexStale(name, isCode(s))
    const prefix = indexPrefix(name)
    const bound = (v: unknown, what: string): Bytes => {
      if (!isIndexKey(v)) throw invalidArgument(`query ${what} must be null, a boolean, a finite number or a string`)
      return Buffer.concat([prefix, encodeIndexKey(v)])
    }
    const range: { gt?: Bytes, gte?: Bytes, lt?: Bytes, lte?: Bytes, reverse?: boolean, limit?: number } = { reverse: opts.reverse === true }
    if (opts.gte !== undefined) range.gte = bound(opts.gte, 'gte')
    else if (opts.gt !== undefined) range.gte = prefixEnd(bound(opts.gt, 'gt'))
    if (opts.lte !== undefined) range.lt = prefixEnd(bound(opts.lte, 'lte'))
    else if (opts.lt !== undefined) range.lt = bound(opts.lt, 'lt')
    if (opts.limit !== undefined && opts.limit !== Infinity) {
      if (!Number.isSafeInteger(opts.limit) || opts.limit < 0) throw invalidArgument('query limit must be a whole number, 0 or more')
      range.limit = opts.limit
    }
    for await (const batch of this.view.scanv('index', prefix, snap, range)) {
      yield batch.map(([entry, held]) => {
        const rest = entry.subarray(prefix.length)
        const { value, size } = decodeIndexKey(rest)
        return { indexKey: value, key: rest.subarray(size), value: held.byteLength > 0 && held[0] === 1 ? held.subarray(1) : undefined }
      })
    }
  }

  /** Fills index `name` from the view as it is (its entries cleared first), with progress events. */
  private async rebuild (name: string): Promise<void> {
    const prefix = indexPrefix(name)
    await this.view.clearIndex(prefix)
    const s = this.stored.get(name) as Stored
    const ix = this.liveOf(name, s)
    if (ix === null) return
    const snap = this.view.snapshot()
    let done = 0
    try {
      const it = this.view.valueIterator({ keys: true, values: true }, snap)
      try {
        while (true) {
          const batch = await it.nextv(512)
          if (batch.length === 0) break
          const ops: BatchOp[] = []
          for (const [root, row] of batch) {
            const key = root.subarray(this.view.valuesPrefix.byteLength)
            const value = await readRow(this.view, key, row, snap)
            this.stage(ops, key, value, [ix])
          }
          this.finish(ops)
          await this.view.write(ops)
          done += batch.length
          this.emit('index-progress', { name, done })
        }
      } finally {
        await it.close()
      }
    } finally {
      await snap.inner.close().catch(() => {})
    }
    this.log.info({ index: name, keys: done }, 'index built')
  }

  private enliven (name: string, s: Stored): void {
    if (s.stale === true) return
    const ix = this.liveOf(name, s)
    if (ix !== null) this.live.set(name, ix)
  }

  /** How this process keeps index `name`, or null for code not declared here. */
  private liveOf (name: string, s: Stored): Live | null {
    const prefix = indexPrefix(name)
    if (s.kind !== 'text') {
      const extract = this.extractor(name, s)
      return extract === null ? null : { name, prefix, extract }
    }
    if (s.fields !== undefined) {
      const fields = s.fields
      return { name, prefix, text: (_key, value) => fieldsText(parseJson(value), fields) }
    }
    const fn = this.code.get(name) as RawText | undefined
    if (fn === undefined) return null
    return {
      name,
      prefix,
      text: (key, value) => {
        const t = fn(key, value)
        if (t === undefined || t === null) return ''
        if (typeof t !== 'string') throw new TypeError('text returned something other than a string')
        return t
      }
    }
  }

  /** The function from a key's stored value to its index keys, or null for code not declared here. */
  private extractor (name: string, s: Stored): ((key: Bytes, value: Bytes) => IndexKey[]) | null {
    if (s.kind === 'field') {
      const path = (s.field ?? '') === '' ? [] : (s.field as string).split('.')
      return (_key, value) => fieldKeys(parseJson(value), path)
    }
    const map = this.code.get(name) as RawMap | undefined
    if (map === undefined) return null
    return (key, value) => {
      const out = map(key, value)
      const list = Array.isArray(out) ? out : [out]
      if (list.some((k) => k !== undefined && !isIndexKey(k))) throw new TypeError('map returned an index key that is not null, a boolean, a finite number or a string')
      return list.filter((k): k is IndexKey => k !== undefined)
    }
  }

  private async saveDeclarations (): Promise<void> {
    const out: Record<string, Stored> = Object.create(null) as Record<string, Stored>
    for (const [name, s] of this.stored) out[name] = s
    await this.view.write([this.view.putMeta('indexes', Buffer.from(JSON.stringify(out)))])
  }
}

/** What was thrown, as text, whatever it was (a map function may throw anything, null too). */
function thrown (err: unknown): string {
  try {
    return err instanceof Error ? err.message : String(err)
  } catch {
    return 'an unprintable value'
  }
}

/** Whether an index is code (a map, or a text function): kept only where it is declared. */
function isCode (s: Stored): boolean {
  return s.kind === 'map' || (s.kind === 'text' && s.fields === undefined)
}

function setsEqual (a: Set<string>, b: Set<string>): boolean {
  if (a.size !== b.size) return false
  for (const x of a) if (!b.has(x)) return false
  return true
}
