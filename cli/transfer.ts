/**
 * `meshbee import` and `meshbee export`: NDJSON, one entry per line. A whole value is
 * `{"key":…,"value":…}`; a document `{"key":…,"type":"doc","value":{…}}` and a set
 * `{"key":…,"type":"set","value":[…]}`, so that an import makes them a document and a set again.
 */
import { SingleBar, Presets } from 'cli-progress'
import { open } from 'node:fs/promises'
import { resolve } from 'node:path'
import { finished } from 'node:stream/promises'
import { createInterface } from 'node:readline'
import { MAX_KEY_BYTES, MAX_VALUE_BYTES } from '../lib/entry.js'
import type { WriteOperation } from '../lib/types.js'
import { CliError, decodeStored, drained, fileError, parseJson, type DB, type Io, type Json } from './context.js'

/** Lines per batch: each is parsed and checked whole before any of it is written. */
export const IMPORT_BATCH = 500
/** The library's limits on a key and a value (README, MESHBEE_TOO_LARGE). */

/** Range options of `ls` and `export`. */
export interface Range { gt?: string, gte?: string, lt?: string, lte?: string, limit?: number, reverse?: boolean }

/** The range options that were given, without the absent ones. */
export function rangeOf (o: Range): Range {
  const r: Range = {}
  for (const k of ['gt', 'gte', 'lt', 'lte', 'limit', 'reverse'] as const) if (o[k] !== undefined) (r as Record<string, unknown>)[k] = o[k]
  return r
}

/** One line of an export. `type` is absent for a whole value. */
export interface Entry { key: string, type?: 'doc' | 'set', value: Json }

const isObject = (v: unknown): v is Record<string, Json> => v !== null && typeof v === 'object' && !Array.isArray(v)

/**
 * The view's entries in a range, values decoded as JSON (or the string when not JSON); with
 * `types`, a document or set says so (`db.typeOf`).
 */
export async function * entries (db: DB, range: Range, types = false): AsyncGenerator<Entry> {
  const it = db.iterator({ ...rangeOf(range), valueEncoding: 'utf8' })
  try {
    while (true) {
      const batch = await it.nextv(1000) as unknown as Array<[string, string]>
      if (batch.length === 0) break
      for (const [key, raw] of batch) {
        const value = decodeStored(raw)
        // the shape check guards against a write landing between the iterator's read and typeOf
        // only an object or an array can be a document or a set
        const type = types && (isObject(value) || Array.isArray(value)) ? await db.typeOf(key) : undefined
        if (type === 'doc' && isObject(value)) yield { key, type, value }
        else if (type === 'set' && Array.isArray(value)) yield { key, type, value }
        else yield { key, value }
      }
    }
  } finally {
    await it.close()
  }
}

/**
 * Writes every entry as an NDJSON line to `file` (relative to `io.cwd`; refused if it exists,
 * unless `force`) or to stdout (no file, or '-'). Returns how many.
 */
export async function exportTo (db: DB, io: Io, file: string | undefined, range: Range, force: boolean): Promise<number> {
  const toStdout = file === undefined || file === '-'
  let stream = io.stdout
  if (!toStdout) {
    try {
      stream = (await open(resolve(io.cwd, file), force ? 'w' : 'wx')).createWriteStream()
    } catch (err) {
      const e = fileError(err, file)
      if (e instanceof CliError && e.code === 'MESHBEE_FILE_EXISTS') throw new CliError(e.code, `${e.message} (add --force to overwrite it)`)
      throw e
    }
  }
  let n = 0
  for await (const e of entries(db, range, true)) {
    if (!stream.write(JSON.stringify(e) + '\n')) await drained(stream)
    n++
  }
  if (!toStdout) {
    stream.end()
    await finished(stream)
  }
  return n
}

type Line =
  | { type: 'put', key: string, value: Json }
  | { type: 'del', key: string }
  | { type: 'doc', key: string, fields: Record<string, Json> }
  | { type: 'set', key: string, members: Json[] }

/** An import line, or why it is refused. */
function parseLine (text: string): Line | string {
  const r = parseJson(text)
  if ('problem' in r) return r.problem
  const line = r.value
  if (!isObject(line)) return 'expected {"key":…,"value":…}'
  const { key, value, type } = line
  if (typeof key !== 'string') return '"key" must be a string'
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) return `the key is over ${MAX_KEY_BYTES} bytes`
  if (value === undefined) return '"value" is missing'
  if (Buffer.byteLength(JSON.stringify(value)) > MAX_VALUE_BYTES) return 'the value is over 4 MiB'
  if (type === undefined) return value === null ? { type: 'del', key } : { type: 'put', key, value }
  if (type === 'doc') return isObject(value) ? { type, key, fields: value } : 'the value of a "doc" must be a JSON object'
  if (type === 'set') return Array.isArray(value) ? { type, key, members: value } : 'the value of a "set" must be a JSON array'
  return `unknown "type" ${JSON.stringify(type)} (expected "doc", "set", or none for a whole value)`
}

/** What an import wrote: whole values, deletes, documents and sets. */
export interface Imported { puts: number, dels: number, docs: number, sets: number }

const written = (n: Imported): number => n.puts + n.dels + n.docs + n.sets

/**
 * Writes one checked batch, in line order, as one atomic append (`db.write`): a whole value is a
 * put or a delete; a document or set line resets the key (a delete) and then patches its fields
 * or adds its members, so the imported key holds exactly what the line says and later `patch` and
 * `sadd` merge into it.
 */
async function apply (db: DB, batch: Line[], n: Imported): Promise<void> {
  const ops: Array<WriteOperation<string, Json>> = []
  for (const line of batch) {
    if (line.type === 'put' || line.type === 'del') {
      ops.push(line)
      n[line.type === 'put' ? 'puts' : 'dels']++
      continue
    }
    ops.push({ type: 'del', key: line.key })
    if (line.type === 'doc') {
      // an empty document stays a document: a deleted field marks it as one
      ops.push({ type: 'patch', key: line.key, fields: Object.keys(line.fields).length > 0 ? line.fields : { '': undefined } })
      n.docs++
    } else {
      for (const member of line.members) ops.push({ type: 'sadd', key: line.key, member })
      // an empty set stays a set: an add and its remove mark it as one
      if (line.members.length === 0) ops.push({ type: 'sadd', key: line.key, member: null }, { type: 'srem', key: line.key, member: null })
      n.sets++
    }
  }
  await db.write(ops)
}

/**
 * Reads NDJSON lines from `file` (relative to `io.cwd`, or stdin for '-') and writes them in
 * batches of {@link IMPORT_BATCH} lines. Every line of a batch is checked before any of it is
 * written: a bad line fails with `MESHBEE_INVALID_INPUT` (file, line, reason, and how many entries
 * the batches before it wrote) and nothing of its batch is written. A progress bar on stderr when
 * `progress`.
 */
export async function importFrom (db: DB, io: Io, file: string, progress: boolean): Promise<Imported> {
  const fromStdin = file === '-'
  const name = fromStdin ? 'stdin' : file
  let input: NodeJS.ReadableStream
  let size = 0
  if (fromStdin) input = io.stdin()
  else {
    try {
      const handle = await open(resolve(io.cwd, file), 'r')
      const st = await handle.stat()
      if (st.isDirectory()) {
        await handle.close()
        throw Object.assign(new Error('is a directory'), { code: 'EISDIR' })
      }
      size = st.size
      input = handle.createReadStream()
    } catch (err) {
      throw fileError(err, file)
    }
  }
  const lines = createInterface({ input, crlfDelay: Infinity })
  const bar = progress && size > 0
    ? new SingleBar({ format: 'importing [{bar}] {percentage}% | {keys} keys | {eta_formatted} left', hideCursor: true, stream: io.stderr as NodeJS.WritableStream & NodeJS.WriteStream }, Presets.shades_classic)
    : null
  bar?.start(size, 0, { keys: 0 })
  let batch: Line[] = []
  let bytes = 0
  let lineNo = 0
  const n: Imported = { puts: 0, dels: 0, docs: 0, sets: 0 }
  const flush = async (): Promise<void> => {
    await apply(db, batch, n)
    batch = []
    bar?.update(bytes, { keys: written(n) })
  }
  try {
    for await (const text of lines) {
      lineNo++
      bytes += Buffer.byteLength(text) + 1
      if (text.trim() === '') continue
      const line = parseLine(text)
      if (typeof line === 'string') {
        throw new CliError('MESHBEE_INVALID_INPUT',
          `${name}:${lineNo}: ${line} (nothing of its batch of up to ${IMPORT_BATCH} lines was written; ${written(n)} entries were written before it)`,
          undefined, { file: name, line: lineNo, reason: line, written: written(n) })
      }
      batch.push(line)
      if (batch.length >= IMPORT_BATCH) await flush()
    }
    await flush()
    bar?.update(size, { keys: written(n) })
  } catch (err) {
    throw fileError(err, name)
  } finally {
    bar?.stop()
    lines.close()
  }
  return n
}
