/**
 * What every CLI command shares: exit codes, errors, output (text or JSON), the logger, opening
 * the database and parsing values from the command line.
 */
import { CommanderError, InvalidArgumentError } from 'commander'
import { once } from 'node:events'
import { resolve } from 'node:path'
import { pino, type Logger } from 'pino'
import type { MeshDB } from '../lib/meshdb.js'
import { stampToString, type Stamp } from '../crdt/hlc.js'

// The database and the pretty printer load on first use, so that --help stays quick.

/** The exit codes of `meshbee`; stable, documented in the help epilog and the README. */
export const EXIT = { OK: 0, ERROR: 1, USAGE: 2, NOT_FOUND: 3, NOT_WRITABLE: 4, DAMAGED: 5 } as const

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json }

/** A database opened by the CLI: string keys, JSON values. */
export type DB = MeshDB<string, Json>

/**
 * An error the CLI raises itself, with a stable code, the exit code it maps to, and `details`
 * that the `--json` error carries beside code and message.
 */
export class CliError extends Error {
  constructor (readonly code: string, message: string, readonly exitCode: number = EXIT.ERROR, readonly details: Record<string, unknown> = {}) {
    super(message)
    this.name = 'CliError'
  }
}

export const usage = (message: string): CliError => new CliError('MESHBEE_USAGE', message, EXIT.USAGE)

/** Exit 3: the key (or the set) is not there. */
export const notFound = (message: string): CliError => new CliError('MESHBEE_NOT_FOUND', message, EXIT.NOT_FOUND)

/** Library error codes that mean the user passed a bad argument. */
const USAGE_CODES = new Set(['MESHBEE_INVALID_ARGUMENT', 'MESHBEE_INVALID_CUTS', 'MESHBEE_BAD_INVITE', 'LEVEL_INVALID_KEY', 'LEVEL_INVALID_VALUE'])

/** Node's file system error codes, each mapped to one CLI code. */
const FILE_CODES: Record<string, [string, string]> = {
  ENOENT: ['MESHBEE_FILE_NOT_FOUND', 'no such file or directory'],
  EEXIST: ['MESHBEE_FILE_EXISTS', 'the file exists'],
  EACCES: ['MESHBEE_FILE_ACCESS', 'permission denied'],
  EPERM: ['MESHBEE_FILE_ACCESS', 'operation not permitted'],
  EISDIR: ['MESHBEE_FILE_IS_DIRECTORY', 'is a directory'],
  ENOTDIR: ['MESHBEE_FILE_NOT_FOUND', 'a part of the path is not a directory']
}

const FILE_SYSCALLS = new Set(['open', 'read', 'write', 'stat', 'lstat', 'fstat', 'mkdir', 'rmdir', 'unlink', 'rename', 'close', 'scandir', 'access'])

/** A file system error as a CliError naming `path` (the path as the user gave it), once. */
export function fileError (err: unknown, path: string): unknown {
  const code = (err as { code?: unknown } | null)?.code
  if (typeof code !== 'string' || !/^E[A-Z]+$/.test(code)) return err
  const [cli, text] = FILE_CODES[code] ?? ['MESHBEE_FILE_ERROR', String((err as Error).message).replace(/^[A-Z]+: /, '')]
  return new CliError(cli, `${path}: ${text}`)
}

/** Whether the database's storage is locked by another process. */
export function isLocked (err: unknown): boolean {
  for (let e = err as { code?: unknown, message?: unknown, cause?: unknown } | null; e != null && typeof e === 'object'; e = e.cause as typeof e) {
    if (e.code === 'LEVEL_LOCKED' || (typeof e.message === 'string' && /could not be locked/.test(e.message))) return true
  }
  return false
}

/** The stable code, message, exit code and details of anything a command threw. */
export function describeError (err: unknown): { code: string, message: string, exitCode: number, details: Record<string, unknown> } {
  if (err instanceof CommanderError) {
    return { code: 'MESHBEE_USAGE', message: err.message.replace(/^error: /, ''), exitCode: err.exitCode === 0 ? EXIT.OK : EXIT.USAGE, details: {} }
  }
  if (err instanceof CliError) return { code: err.code, message: err.message, exitCode: err.exitCode, details: err.details }
  let e = err as { code?: unknown, message?: unknown, cause?: unknown, syscall?: unknown, path?: unknown, reason?: unknown } | null
  // abstract-level wraps a failed open: the library's own error is the cause
  while (e !== null && typeof e === 'object' && e.code === 'LEVEL_DATABASE_NOT_OPEN' && e.cause != null) {
    e = e.cause as typeof e
  }
  if (e?.code === 'EPIPE') return describeError(new CliError('MESHBEE_OUTPUT_CLOSED', 'the output was closed'))
  if (typeof e?.syscall === 'string' && FILE_SYSCALLS.has(e.syscall)) {
    const f = fileError(e, typeof e.path === 'string' ? e.path : e.syscall)
    if (f instanceof CliError) return describeError(f)
  }
  const code = typeof e?.code === 'string' ? e.code : 'MESHBEE_UNEXPECTED'
  const message = typeof e?.message === 'string' ? e.message : String(err)
  const exitCode = code === 'MESHBEE_NOT_WRITABLE' ? EXIT.NOT_WRITABLE : code === 'MESHBEE_INDEX_NOT_FOUND' ? EXIT.NOT_FOUND : USAGE_CODES.has(code) ? EXIT.USAGE : EXIT.ERROR
  // a refused invite says why when the member did (MESHBEE_INVITE_USED, MESHBEE_INVITE_EXPIRED)
  // a change feed that cannot list what a reader missed says from which seq on it can again
  const seq = (e as { seq?: unknown } | null)?.seq
  const details = code === 'MESHBEE_INVITE_REFUSED'
    ? { reason: typeof e?.reason === 'string' ? e.reason : null }
    : (code === 'MESHBEE_FEED_COMPACTED' || code === 'MESHBEE_FEED_RESET') && typeof seq === 'number' ? { seq } : {}
  return { code, message, exitCode, details }
}

/**
 * Where a command reads and writes: this process's stdio and working directory, or, for a
 * command that runs inside a running peer, the client's, carried over the control socket.
 */
export interface Io {
  stdout: NodeJS.WritableStream
  stderr: NodeJS.WritableStream
  /** Standard input, asked for on first use (a client sends its stdin only when a command reads it). */
  stdin: () => NodeJS.ReadableStream
  /** The directory relative paths resolve against. */
  cwd: string
  /** Whether progress bars may draw on stderr. */
  tty: boolean
}

/** This process's own stdio and working directory. */
export function processIo (): Io {
  return { stdout: process.stdout, stderr: process.stderr, stdin: () => process.stdin, cwd: process.cwd(), tty: process.stderr.isTTY === true }
}

/** Reads a stream to its end. */
export async function readAll (input: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const c of input) chunks.push(typeof c === 'string' ? Buffer.from(c) : c)
  return Buffer.concat(chunks)
}

/** Global options, as commander parses them. */
export interface GlobalOptions {
  json?: boolean
  dir: string
  verbose?: boolean
}

/**
 * Output of one command. Text for people; with `--json` one JSON document per command on
 * stdout, or one JSON document per line (NDJSON) for commands that stream.
 */
export class Output {
  constructor (readonly json: boolean, private readonly stdout: NodeJS.WritableStream = process.stdout) {}

  /** The single result of a command: `value` as JSON, or `text()` for people. */
  result (value: unknown, text: () => string): void {
    this.write(this.json ? JSON.stringify(value) : text())
  }

  /** One item of a stream: a JSON line, or a line of text. */
  item (value: unknown, text: () => string): void {
    this.write(this.json ? JSON.stringify(value) : text())
  }

  /** Writes a line, waiting when the pipe is full (large exports); rejects if the stream fails. */
  write (line: string): Promise<void> | undefined {
    if (this.stdout.write(line + '\n')) return undefined
    return drained(this.stdout)
  }
}

/** Resolves when `stream` drains; rejects when it fails or closes first. */
export async function drained (stream: NodeJS.WritableStream): Promise<void> {
  const s = stream as NodeJS.WritableStream & { destroyed?: boolean }
  if (s.destroyed === true) throw new CliError('MESHBEE_OUTPUT_CLOSED', 'the output was closed')
  const ac = new AbortController()
  try {
    await Promise.race([
      once(s, 'drain', { signal: ac.signal }),
      once(s, 'close', { signal: ac.signal }).then(() => { throw new CliError('MESHBEE_OUTPUT_CLOSED', 'the output was closed') })
    ])
  } finally {
    ac.abort()
  }
}

/** The library's logs: pino-pretty on stderr with `--verbose`, silent otherwise. */
export async function createLogger (verbose: boolean): Promise<Logger> {
  if (!verbose) return pino({ level: 'silent' })
  const { default: pretty } = await import('pino-pretty')
  return pino({ level: 'debug', base: { pid: process.pid } }, pretty({ destination: 2, sync: true, colorize: process.stderr.isTTY === true }))
}

export interface OpenOptions {
  /** Open (or create) the database with this key. */
  key?: string
  /** Create a new database if the directory holds none (init, seed). */
  create?: boolean
  /** Fail if the directory already holds a database (init). */
  exclusive?: boolean
  /** Create the database encrypted (init --encrypted; a new database only). */
  encrypted?: boolean
  /** A key of an encrypted database, handed over by hand (64 hex characters). */
  encryptionKey?: string
  /**
   * What this peer keeps of the logs: every block (`full`), or what the view still needs (`live`,
   * the library's default). The library remembers it for the directory: not given, the last one.
   */
  history?: History
  /** Compact on its own as the logs become stable (`join --auto-compact`): true, or at most every this many ms. */
  autoCompact?: boolean | number
}

/** `full`: keep every block of every log (an archive); `live`: clear the blocks every member has folded. */
export type History = 'full' | 'live'

/** What `db` keeps of the logs (the library remembers it for the directory). */
export function historyOf (db: DB): History {
  return db.history
}

/**
 * Opens the database in `dir` (relative to `cwd`); fails with a clear code when there is none
 * (`MESHBEE_NO_DATABASE`), when `exclusive` and there is one (`MESHBEE_DB_EXISTS`), or when
 * another process holds it (`MESHBEE_BUSY`).
 */
export async function openDb (dir: string, logger: Logger, opts: OpenOptions = {}, cwd = process.cwd()): Promise<DB> {
  const location = resolve(cwd, dir)
  const history = opts.history
  const { MeshDB } = await import('../lib/meshdb.js')
  const db = new MeshDB<string, Json>(location, {
    valueEncoding: 'json',
    logger,
    key: opts.key,
    createIfMissing: opts.create === true,
    errorIfExists: opts.exclusive === true,
    ...(opts.encrypted === true ? { encrypted: true } : {}),
    ...(opts.encryptionKey === undefined ? {} : { encryptionKey: opts.encryptionKey }),
    ...(history === undefined ? {} : { history }),
    ...(opts.autoCompact === undefined || opts.autoCompact === false ? {} : { autoCompact: opts.autoCompact })
  } as ConstructorParameters<typeof MeshDB<string, Json>>[1])
  try {
    await db.open()
  } catch (err) {
    const { code } = describeError(err)
    if (isLocked(err)) throw busy(location)
    if (code === 'MESHBEE_STORAGE' && opts.exclusive === true) throw dbExists(location)
    if (code === 'MESHBEE_STORAGE' && opts.create !== true) {
      throw new CliError('MESHBEE_NO_DATABASE', `no database in ${location}: run "meshbee init" (or pass --dir / set MESHBEE_DIR)`)
    }
    throw err
  }
  logger.debug({ dir: location, key: db.key.toString('hex'), writable: db.writable, history: db.history }, 'opened')
  return db
}

/** Another process holds the database in `location`. */
export const busy = (location: string): CliError =>
  new CliError('MESHBEE_BUSY', `${location} is open in another meshbee process (a "join" or "seed" runs there, or another command: try again)`)

/** `init` in a directory that holds a database. */
export const dbExists = (location: string): CliError =>
  new CliError('MESHBEE_DB_EXISTS', `${location} already holds a database`)

/** How a value given as text is read: by its look (`auto`), always as a string, or always as JSON. */
export type ValueMode = 'auto' | 'string' | 'json'

/** Text that must be JSON in `auto` mode: it starts like a JSON object, array, string or number, or is a JSON literal. */
export function looksLikeJson (text: string): boolean {
  return /^[{["0-9-]/.test(text) || text === 'true' || text === 'false' || text === 'null'
}

/**
 * Why a JSON text would not round-trip, or null: a number that is not finite (1e400) or an
 * integer literal outside the safe range. JSON.parse accepts both, silently changing them.
 */
export function numberProblem (text: string): string | null {
  for (const [token] of text.matchAll(/"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g)) {
    if (token.startsWith('"')) continue
    const n = Number(token)
    if (!Number.isFinite(n)) return `the number ${token} is out of range`
    if (/^-?\d+$/.test(token) && !Number.isSafeInteger(n)) return `the integer ${token} is outside the safe range (±${Number.MAX_SAFE_INTEGER})`
  }
  return null
}

/** Parses JSON text that must round-trip: its value, or why it is refused. */
export function parseJson (text: string): { value: Json } | { problem: string } {
  let value: Json
  try {
    value = JSON.parse(text) as Json
  } catch (err) {
    return { problem: `not valid JSON (${(err as Error).message})` }
  }
  const problem = numberProblem(text)
  return problem === null ? { value } : { problem }
}

/**
 * A value (or set member, or document) given as text. In `auto` mode text that looks like JSON
 * ({@link looksLikeJson}) must be valid JSON and anything else is a string; `string` takes the
 * text as it is; `json` requires JSON. Fails with exit 2, `MESHBEE_INVALID_VALUE`.
 */
export function parseValue (text: string, mode: ValueMode = 'auto', what = 'value'): Json {
  if (mode === 'string' || (mode === 'auto' && !looksLikeJson(text))) return text
  const r = parseJson(text)
  if ('value' in r) return r.value
  const shown = text.length > 40 ? `${text.slice(0, 40)}…` : text
  throw new CliError('MESHBEE_INVALID_VALUE', `${what} ${JSON.stringify(shown)}: ${r.problem}` +
    (mode === 'auto' ? ': a value that starts like JSON must be JSON (add --string to store the text as a string)' : ''), EXIT.USAGE)
}

/** A stored value read as UTF-8: JSON if it parses (everything the CLI writes), else the string. */
export function decodeStored (text: string): Json {
  try {
    return JSON.parse(text) as Json
  } catch {
    return text
  }
}

/** A 32-byte key as 64 hex characters (a usage error otherwise). */
export function hexKey (text: string, what = 'key'): string {
  if (!/^[0-9a-f]{64}$/i.test(text)) throw usage(`${what} must be 64 hex characters, got "${text}"`)
  return text.toLowerCase()
}

/** commander parser: a non-negative integer. */
export function nonNegativeInt (text: string): number {
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) throw new InvalidArgumentError('expected a non-negative integer')
  return Number(text)
}

/** commander parser, repeatable: host:port of a DHT bootstrap node. */
export function bootstrapNode (text: string, previous: Array<{ host: string, port: number }> = []): Array<{ host: string, port: number }> {
  const m = /^(.+):(\d{1,5})$/.exec(text)
  const port = m === null ? NaN : Number(m[2])
  if (m === null || port < 1 || port > 65535) throw new InvalidArgumentError('expected host:port')
  return [...previous, { host: m[1].replace(/^\[(.*)\]$/, '$1'), port }]
}

const DURATION = /^(\d+)(ms|s|m|h|d)$/
const UNIT: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** commander parser for `--since`: ms since the epoch, an ISO date, or a duration ago (10m, 2h, 7d). */
export function sinceTime (text: string): number {
  const d = DURATION.exec(text)
  if (d !== null) return Date.now() - Number(d[1]) * UNIT[d[2]]
  if (/^\d+$/.test(text)) return Number(text)
  const t = Date.parse(text)
  if (Number.isNaN(t)) throw new InvalidArgumentError('expected ms since the epoch, an ISO date or a duration like 10m, 2h, 7d')
  return t
}

/** commander parser: a duration from now (30m, 12h, 7d; also s and ms), in ms, more than 0. */
export function duration (text: string): number {
  const d = DURATION.exec(text)
  const ms = d === null ? NaN : Number(d[1]) * UNIT[d[2]]
  if (!Number.isSafeInteger(ms) || ms <= 0) throw new InvalidArgumentError('expected a duration like 30m, 12h or 7d')
  return ms
}

export function stampJson (s: Stamp | null): { wall: number, counter: number, time: string } | null {
  return s === null ? null : { wall: s.wall, counter: s.counter, time: new Date(s.wall).toISOString() }
}

export function stampText (s: Stamp | null): string {
  return s === null ? '-' : `${new Date(s.wall).toISOString()}#${s.counter} (${stampToString(s)})`
}

/** A byte count for people: 512 B, 1.5 KiB, 12.0 MiB; `unknown` for null (a size the storage does not tell). */
export function bytes (n: number | null): string {
  if (n === null) return 'unknown'
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let v = n
  let u = 0
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024
    u++
  }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`
}

/** `n` and a noun, plural unless 1: "1 block", "3 blocks". */
export function count (n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`
}

/** A value for text output: JSON, or `(deleted)` when absent. */
export function show (value: Json | undefined): string {
  return value === undefined ? '(deleted)' : JSON.stringify(value)
}

export { hex } from '../lib/keys.js'
