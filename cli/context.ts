/**
 * What every CLI command shares: exit codes, errors, output (text or JSON), the logger, opening
 * the database and parsing values from the command line.
 */
import { CommanderError, InvalidArgumentError } from 'commander'
import { resolve } from 'node:path'
import { pino, type Logger } from 'pino'
import type { MeshDB } from '../lib/meshdb.js'
import { stampToString, type Stamp } from '../crdt/hlc.js'

// The database and the pretty printer load on first use, so that --help stays quick.

/** The exit codes of `meshbee`; stable, documented in the help epilog and the README. */
export const EXIT = { OK: 0, ERROR: 1, USAGE: 2, NOT_FOUND: 3, NOT_WRITABLE: 4 } as const

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json }

/** A database opened by the CLI: string keys, JSON values. */
export type DB = MeshDB<string, Json>

/** An error the CLI raises itself, with a stable code and the exit code it maps to. */
export class CliError extends Error {
  constructor (readonly code: string, message: string, readonly exitCode: number = EXIT.ERROR) {
    super(message)
    this.name = 'CliError'
  }
}

export const usage = (message: string): CliError => new CliError('MESHBEE_USAGE', message, EXIT.USAGE)

/** Library error codes that mean the user passed a bad argument. */
const USAGE_CODES = new Set(['MESHBEE_INVALID_ARGUMENT', 'MESHBEE_INVALID_CUTS', 'LEVEL_INVALID_KEY', 'LEVEL_INVALID_VALUE'])

/** The stable code, message and exit code of anything a command threw. */
export function describeError (err: unknown): { code: string, message: string, exitCode: number } {
  if (err instanceof CommanderError) {
    return { code: 'MESHBEE_USAGE', message: err.message.replace(/^error: /, ''), exitCode: err.exitCode === 0 ? EXIT.OK : EXIT.USAGE }
  }
  if (err instanceof CliError) return { code: err.code, message: err.message, exitCode: err.exitCode }
  let e = err as { code?: unknown, message?: unknown, cause?: unknown } | null
  // abstract-level wraps a failed open: the library's own error is the cause
  while (e !== null && typeof e === 'object' && e.code === 'LEVEL_DATABASE_NOT_OPEN' && e.cause != null) {
    e = e.cause as typeof e
  }
  const code = typeof e?.code === 'string' ? e.code : 'MESHBEE_UNEXPECTED'
  const message = typeof e?.message === 'string' ? e.message : String(err)
  const exitCode = code === 'MESHBEE_NOT_WRITABLE' ? EXIT.NOT_WRITABLE : USAGE_CODES.has(code) ? EXIT.USAGE : EXIT.ERROR
  return { code, message, exitCode }
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

  /** Writes a line, waiting when the pipe is full (large exports). */
  write (line: string): Promise<void> | undefined {
    if (this.stdout.write(line + '\n')) return undefined
    return new Promise((resolve) => this.stdout.once('drain', resolve))
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
}

/** Opens the database in `--dir`; fails with a clear message when there is none. */
export async function openDb (dir: string, logger: Logger, opts: OpenOptions = {}): Promise<DB> {
  const location = resolve(dir)
  const { MeshDB } = await import('../lib/meshdb.js')
  const db = new MeshDB<string, Json>(location, {
    valueEncoding: 'json',
    logger,
    key: opts.key,
    createIfMissing: opts.create === true,
    errorIfExists: opts.exclusive === true
  } as ConstructorParameters<typeof MeshDB<string, Json>>[1])
  try {
    await db.open()
  } catch (err) {
    const { code } = describeError(err)
    if (code === 'MESHBEE_STORAGE' && opts.exclusive === true) {
      throw new CliError('MESHBEE_STORAGE', `${location} already holds a database`)
    }
    if (code === 'MESHBEE_STORAGE' && opts.create !== true) {
      throw new CliError('MESHBEE_STORAGE', `no database in ${location}: run "meshbee init" (or pass --dir / set MESHBEE_DIR)`)
    }
    throw err
  }
  logger.debug({ dir: location, key: db.key.toString('hex'), writable: db.writable }, 'opened')
  return db
}

/** A value from the command line: JSON if it parses, else the string itself. */
export function parseValue (text: string, forceString = false): Json {
  if (forceString) return text
  try {
    return JSON.parse(text) as Json
  } catch {
    return text
  }
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

export function stampJson (s: Stamp | null): { wall: number, counter: number, time: string } | null {
  return s === null ? null : { wall: s.wall, counter: s.counter, time: new Date(s.wall).toISOString() }
}

export function stampText (s: Stamp | null): string {
  return s === null ? '-' : `${new Date(s.wall).toISOString()}#${s.counter} (${stampToString(s)})`
}

/** A value for text output: JSON, or `(deleted)` when absent. */
export function show (value: Json | undefined): string {
  return value === undefined ? '(deleted)' : JSON.stringify(value)
}

export const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')
