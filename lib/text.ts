/**
 * Full-text indexes: tokens, the inverted index's rows and BM25 ranking. A text index lives in the
 * `index` table under its name prefix (lib/indexes.ts), beside its statistics, all kept in the
 * view commit that changes a key, so ranking reads only what the index holds:
 *
 *   name ‖ 0x01 ‖ term ‖ 0x00 ‖ user key → uint tf    postings (terms have no 0x00)
 *   name ‖ 0x02 ‖ term                 → uint df    documents holding the term
 *   name ‖ 0x03                        → uint n · uint total length   the corpus
 *
 * and, in `indexed`, name ‖ user key → msgpack [[term, tf]…, length] (what to take back out).
 */
import c from 'compact-encoding'

type Bytes = Buffer

export const POSTING = 0x01
export const DF = 0x02
export const CORPUS = 0x03

/** BM25's parameters, the usual ones. */
const K1 = 1.2
const B = 0.75

/**
 * The terms of a text, in order: Unicode letters and digits, case-folded and without diacritics
 * (NFKD, combining marks dropped), everything else a separator.
 */
export function tokenize (text: string): string[] {
  return text.normalize('NFKD').replace(/\p{M}+/gu, '').toLowerCase().split(/[^\p{L}\p{N}]+/u).filter((t) => t !== '')
}

/** Term frequencies of a text, and its length in terms. */
export function termsOf (text: string): { tf: Map<string, number>, length: number } {
  const tf = new Map<string, number>()
  const tokens = tokenize(text)
  for (const t of tokens) tf.set(t, (tf.get(t) ?? 0) + 1)
  return { tf, length: tokens.length }
}

/** The text a declaration's fields pick out of a JSON value: each field's strings (arrays too), joined. */
export function fieldsText (value: unknown, fields: readonly string[]): string {
  const out: string[] = []
  const take = (v: unknown): void => {
    if (typeof v === 'string') out.push(v)
    else if (typeof v === 'number') out.push(String(v))
    else if (Array.isArray(v)) v.forEach(take)
  }
  for (const f of fields) {
    let v: unknown = value
    for (const p of f === '' ? [] : f.split('.')) v = v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>)[p] : undefined
    take(v)
  }
  return out.join(' ')
}

export function postingKey (prefix: Bytes, term: string, key: Uint8Array): Bytes {
  return Buffer.concat([prefix, Buffer.from([POSTING]), Buffer.from(term), Buffer.from([0]), key])
}

export function termPrefix (prefix: Bytes, term: string, exact: boolean): Bytes {
  return Buffer.concat([prefix, Buffer.from([POSTING]), Buffer.from(term), ...(exact ? [Buffer.from([0])] : [])])
}

export function dfKey (prefix: Bytes, term: string): Bytes {
  return Buffer.concat([prefix, Buffer.from([DF]), Buffer.from(term)])
}

export function corpusKey (prefix: Bytes): Bytes {
  return Buffer.concat([prefix, Buffer.from([CORPUS])])
}

export const uintBytes = (n: number): Bytes => Buffer.from(c.encode(c.uint, n))
export const readUint = (b: Uint8Array | undefined): number => b === undefined ? 0 : c.decode(c.uint, b)

export function encodeCorpus (n: number, total: number): Bytes {
  return Buffer.concat([uintBytes(n), uintBytes(total)])
}

export function decodeCorpus (b: Uint8Array | undefined): { n: number, total: number } {
  if (b === undefined) return { n: 0, total: 0 }
  const s = { start: 0, end: b.byteLength, buffer: b }
  return { n: c.uint.decode(s), total: c.uint.decode(s) }
}

/** BM25 of one term in one document. */
export function bm25 (tf: number, df: number, length: number, corpus: { n: number, total: number }): number {
  const avg = corpus.n === 0 ? 1 : corpus.total / corpus.n
  const idf = Math.log(1 + (corpus.n - df + 0.5) / (df + 0.5))
  return idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * length / (avg === 0 ? 1 : avg)))
}
