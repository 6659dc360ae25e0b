/**
 * `meshbee import` and `meshbee export`: NDJSON, one `{"key":…,"value":…}` per line.
 */
import { SingleBar, Presets } from 'cli-progress'
import { createReadStream, createWriteStream, statSync } from 'node:fs'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { CliError, decodeStored, type DB, type Json } from './context.js'

/** Puts per batch: one atomic append to the own log and one view commit each. */
export const IMPORT_BATCH = 500

export interface Range { gt?: string, gte?: string, lt?: string, lte?: string, limit?: number, reverse?: boolean }

export function rangeOf (o: Range): Range {
  const r: Range = {}
  for (const k of ['gt', 'gte', 'lt', 'lte', 'limit', 'reverse'] as const) if (o[k] !== undefined) (r as Record<string, unknown>)[k] = o[k]
  return r
}

/** The view's entries in a range, values decoded as JSON (or the string when not JSON). */
export async function * entries (db: DB, range: Range): AsyncGenerator<{ key: string, value: Json }> {
  const it = db.iterator({ ...rangeOf(range), valueEncoding: 'utf8' })
  try {
    while (true) {
      const batch = await it.nextv(1000) as unknown as Array<[string, string]>
      if (batch.length === 0) break
      for (const [key, value] of batch) yield { key, value: decodeStored(value) }
    }
  } finally {
    await it.close()
  }
}

/** Writes every entry as an NDJSON line to `file` (or stdout). Returns how many. */
export async function exportTo (db: DB, file: string | undefined, range: Range): Promise<number> {
  const toStdout = file === undefined || file === '-'
  const stream = toStdout ? process.stdout : createWriteStream(file)
  let n = 0
  for await (const e of entries(db, range)) {
    if (!stream.write(JSON.stringify(e) + '\n')) await once(stream, 'drain')
    n++
  }
  if (!toStdout) {
    const done = once(stream, 'finish')
    stream.end()
    await done
  }
  return n
}

type Op = { type: 'put', key: string, value: Json } | { type: 'del', key: string }

function parseLine (line: string, where: string): Op {
  let doc: unknown
  try {
    doc = JSON.parse(line)
  } catch {
    throw new CliError('MESHBEE_INVALID_INPUT', `${where}: not JSON`)
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new CliError('MESHBEE_INVALID_INPUT', `${where}: expected {"key":…,"value":…}`)
  const { key, value } = doc as { key?: unknown, value?: unknown }
  if (typeof key !== 'string') throw new CliError('MESHBEE_INVALID_INPUT', `${where}: "key" must be a string`)
  if (value === undefined) throw new CliError('MESHBEE_INVALID_INPUT', `${where}: "value" is missing`)
  return value === null ? { type: 'del', key } : { type: 'put', key, value: value as Json }
}

/**
 * Reads NDJSON lines from `file` (or stdin for '-') and writes them in batches of
 * {@link IMPORT_BATCH}. A progress bar on stderr when `progress` (a terminal, not --json).
 * A bad line stops the import; the batches before it stay written.
 */
export async function importFrom (db: DB, file: string, progress: boolean): Promise<{ puts: number, dels: number }> {
  const fromStdin = file === '-'
  const size = fromStdin ? 0 : statSync(file).size
  const input = fromStdin ? process.stdin : createReadStream(file)
  const lines = createInterface({ input, crlfDelay: Infinity })
  const bar = progress && size > 0
    ? new SingleBar({ format: 'importing [{bar}] {percentage}% | {keys} keys | {eta_formatted} left', hideCursor: true, stream: process.stderr }, Presets.shades_classic)
    : null
  bar?.start(size, 0, { keys: 0 })
  let batch: Op[] = []
  let bytes = 0
  let lineNo = 0
  const done = { puts: 0, dels: 0 }
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return
    await db.batch(batch)
    for (const op of batch) done[op.type === 'put' ? 'puts' : 'dels']++
    batch = []
    bar?.update(bytes, { keys: done.puts + done.dels })
  }
  try {
    for await (const line of lines) {
      lineNo++
      bytes += Buffer.byteLength(line) + 1
      if (line.trim() === '') continue
      batch.push(parseLine(line, `${fromStdin ? 'stdin' : file}:${lineNo}`))
      if (batch.length >= IMPORT_BATCH) await flush()
    }
    await flush()
    bar?.update(size, { keys: done.puts + done.dels })
  } finally {
    bar?.stop()
    lines.close()
  }
  return done
}
