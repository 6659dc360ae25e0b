/**
 * The `meshbee` command line: commander program, one function per command. `run(argv)` parses,
 * runs and resolves to the exit code; cli/main.ts calls it for bin/meshbee.js, and a running
 * `join`/`seed` calls it for each command a client sends over its control socket (cli/control.ts).
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander'
import { resolve } from 'node:path'
import { pino, type Logger } from 'pino'
import {
  CliError, EXIT, Output, bootstrapNode, bytes, count, createLogger, dbExists, describeError, duration, hex, hexKey, historyOf, nonNegativeInt, notFound, openDb,
  parseValue, processIo, readAll, show, sinceTime, stampJson, stampText, usage, decodeStored,
  type DB, type GlobalOptions, type History, type Io, type Json, type OpenOptions, type ValueMode
} from './context.js'
import type { Range } from './transfer.js'
import type { MembersRange } from '../lib/types.js'
import { packageVersion } from './version.js'
import { Presets, SingleBar } from 'cli-progress'

// Modules that pull in the network or the database load when a command needs them.
const onlineModule = async (): Promise<typeof import('./online.js')> => await import('./online.js')
const transfer = async (): Promise<typeof import('./transfer.js')> => await import('./transfer.js')
const control = async (): Promise<typeof import('./control.js')> => await import('./control.js')

const EPILOG = `
Values (put, sadd, srem):
  Text that looks like JSON (starts with {, [, ", a digit or -, or is true, false or null) must be
  valid JSON, else the command fails (exit 2, MESHBEE_INVALID_VALUE); other text is a string.
  --string stores the text as a string, --json-value requires JSON. Numbers must round-trip:
  1e400 and integers beyond ±2^53-1 are refused. "put <key> -" reads the value from stdin.

A running peer:
  While "join" or "seed" runs on a directory, the other commands on it run inside that process
  (through the socket <dir>/meshbee.sock), with the same output and exit codes.

Exit codes:
  0  ok
  1  runtime error (the error's stable code and message are printed)
  2  usage error (bad arguments, options or values)
  3  not found (get, del or versions of a missing key; smembers of a key that holds no set)
  4  not writable (MESHBEE_NOT_WRITABLE: this peer is not a member)
  5  damaged (verify: the view disagrees with the logs and was not repaired)

Environment:
  MESHBEE_DIR  the database directory when --dir is not given (default ./.meshbee)`

const HISTORY_HELP = `
History (--history, remembered for the directory: later commands open it the same way):
  live  keep what the view and catching-up peers still need (the default): "meshbee compact" (or
        join --auto-compact) clears the log blocks every live member has recorded folding that
        the current tree no longer references. A diff or checkout of a cleared range fails with
        MESHBEE_HISTORY_CLEARED unless a connected peer kept it.
  full  keep every block of every log (an archive: diff reaches back to the first entry);
        compact still drops stable tombstones, and clears no block. "meshbee seed" keeps full
        history always.`

/** commander option: what this peer keeps of the logs. */
const historyOption = (): Option => new Option('--history <mode>', 'what this peer keeps of the logs: live (what the view needs; the default) or full (every block); see "History" below').choices(['full', 'live'])

/** Where a command runs: its io and, inside a running peer, that peer's open database. */
export interface Session {
  io: Io
  /** The running peer's database (the command runs inside `join`/`seed`). */
  db?: DB
  /** The running peer's database directory. */
  dir?: string
}

interface Run {
  out: Output
  log: Logger
  dir: string
  json: boolean
  io: Io
  session: Session
  /** The command line after `meshbee`, to hand to a running peer. */
  argv: string[]
}

/** The command ran in a running peer, which printed its output: exit with its code. */
class Forwarded extends Error {
  constructor (readonly exitCode: number) {
    super(`exit ${exitCode}`)
  }
}

/** How long a command waits for a database another process holds (a peer starting or leaving). */
const BUSY_WAIT_MS = 5000

/**
 * Runs `fn` with the database of `r.dir`: inside a running peer, the peer's own; else, when a peer
 * runs on the directory, the whole command goes to it instead (and `Forwarded` carries its exit
 * code); else the database is opened here (waiting while another process holds it, a peer starting
 * or leaving) and closed after. `own`: init, join and seed, which a running peer refuses.
 */
async function withDb<T> (r: Run, fn: (db: DB) => Promise<T>, opts: OpenOptions & { own?: 'init' | 'online' } = {}): Promise<T> {
  const location = resolve(r.io.cwd, r.dir)
  // init, join and seed open the database themselves: a peer already running there is an error
  const taken = (): CliError => opts.own === 'init' ? dbExists(location) : new CliError('MESHBEE_BUSY', `a meshbee join or seed already runs on ${location}`)
  if (r.session.db !== undefined) {
    if (opts.own !== undefined) throw taken()
    return await fn(r.session.db)
  }
  const ctl = await control()
  const deadline = Date.now() + BUSY_WAIT_MS
  let db: DB
  while (true) {
    if (opts.own === undefined) {
      const code = await ctl.forward(location, r.argv, r.io)
      if (code !== null) throw new Forwarded(code)
    } else if (await ctl.answers(location)) throw taken()
    try {
      db = await openDb(location, r.log, opts)
      break
    } catch (err) {
      if (!(err instanceof CliError && err.code === 'MESHBEE_BUSY') || Date.now() > deadline) throw err
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  try {
    return await fn(db)
  } finally {
    await db.close()
  }
}

const valueMode = (o: { string?: boolean, jsonValue?: boolean }): ValueMode => o.string === true ? 'string' : o.jsonValue === true ? 'json' : 'auto'

function valueOptions (cmd: Command): Command {
  return cmd
    .addOption(new Option('--string', 'store the text as a string, whatever it looks like').conflicts('jsonValue'))
    .option('--json-value', 'the text must be JSON, whatever it looks like')
}

/** A key range with a limit and a direction (`ls`, `export`). */
function rangeOptions (cmd: Command): Command {
  return keyRangeOptions(cmd)
    .option('--limit <n>', 'at most <n> entries', nonNegativeInt)
    .option('--reverse', 'in reverse key order')
}

/** The key bounds of a command (`watch`, `changes`, and with `rangeOptions` the others). */
function keyRangeOptions (cmd: Command): Command {
  return cmd
    .option('--gt <key>', 'keys greater than <key>')
    .option('--gte <key>', 'keys greater than or equal to <key>')
    .option('--lt <key>', 'keys less than <key>')
    .option('--lte <key>', 'keys less than or equal to <key>')
}

function keyRangeOf (o: Range): { gt?: string, gte?: string, lt?: string, lte?: string } {
  const out: { gt?: string, gte?: string, lt?: string, lte?: string } = {}
  for (const k of ['gt', 'gte', 'lt', 'lte'] as const) if (o[k] !== undefined) out[k] = o[k]
  return out
}

/**
 * Prints each item of `it` (as `show` renders it: JSON, or a line of text) until it ends, `limit`
 * items have been printed, the output closes, or SIGINT/SIGTERM arrives; then closes `it`.
 */
async function follow<T> (r: Run, it: AsyncIterator<T> & { close: () => void }, limit: number | undefined, show: (item: T) => [unknown, string]): Promise<void> {
  const stop = (): void => { it.close() }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  r.io.stdout.once('close', stop)
  try {
    for (let n = 0; limit === undefined || n < limit; n++) {
      const next = await it.next()
      if (next.done === true) break
      const [json, text] = show(next.value)
      await r.out.write(r.json ? JSON.stringify(json) : text)
    }
  } finally {
    it.close()
    process.off('SIGINT', stop)
    process.off('SIGTERM', stop)
    r.io.stdout.off('close', stop)
  }
}

interface DbInfo { dir: string, key: string, discoveryKey: string, writerKey: string, writable: boolean, privacy: 'plain' | 'encrypted' | 'blind' | null }

function describeDb (db: DB, dir: string, cwd: string): DbInfo {
  return {
    dir: resolve(cwd, dir),
    key: hex(db.key),
    discoveryKey: hex(db.discoveryKey),
    writerKey: hex(db.writerKey),
    writable: db.writable,
    privacy: db.privacy
  }
}

/** How a database's privacy reads in text output. */
function privacyText (privacy: DbInfo['privacy']): string {
  switch (privacy) {
    case 'encrypted': return 'encrypted (members and readers read it; seeders carry it blind)'
    case 'blind': return 'blind (an encrypted database this peer only seeds: it reads nothing)'
    case 'plain': return 'plain (whoever holds the key reads it)'
    default: return 'not known yet (nothing received from the database)'
  }
}

/** The role this device has in a database: a writer, a reader, or null while it is neither. */
function roleOf (db: DB): 'writer' | 'reader' | null {
  if (db.writable) return 'writer'
  if (db.writers().some((w) => w.local && w.reader && !w.removed)) return 'reader'
  // every peer that holds a plain database's key reads it
  return db.privacy === 'plain' ? 'reader' : null
}

/** An invite as `invite ls` lists it, its expiry as an ISO date. */
function inviteJson (i: { id: string, role: string, uses: number, used: number, expires: number, revoked: boolean }, now: number): Record<string, unknown> {
  const state = i.revoked ? 'revoked' : i.used >= i.uses ? 'used up' : i.expires <= now ? 'expired' : 'open'
  return { id: i.id, role: i.role, uses: i.uses, used: i.used, expires: new Date(i.expires).toISOString(), revoked: i.revoked, state }
}

function table (rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)))
  return rows.map((r) => r.map((c, i) => i === r.length - 1 ? c : c.padEnd(widths[i])).join('  ')).join('\n')
}

/**
 * The `meshbee` program. With `json`, commander's own error text is not printed (run() prints a
 * JSON error instead); `output` lets tests capture help text.
 */
export function buildProgram (opts: {
  json?: boolean
  output?: { writeOut: (s: string) => void, writeErr: (s: string) => void }
  /** Where the commands run (default: this process, opening the database). */
  session?: Session
  /** The whole command line, as in process.argv. */
  argv?: string[]
} = {}): Command {
  const session = opts.session ?? { io: processIo() }
  const argv = (opts.argv ?? process.argv).slice(2)
  const context = async (cmd: Command): Promise<Run> => {
    const g = cmd.optsWithGlobals<GlobalOptions>()
    const json = g.json === true
    const io = session.io
    // inside a running peer the database is its own (and its logs are its own)
    const log = session.db !== undefined ? pino({ level: 'silent' }) : await createLogger(g.verbose === true)
    // an empty MESHBEE_DIR counts as unset
    const dir = session.dir ?? (g.dir === '' ? './.meshbee' : g.dir)
    return { out: new Output(json, io.stdout), log, dir, json, io, session, argv }
  }
  const program = new Command('meshbee')
  program.configureOutput({
    ...opts.output,
    ...(opts.json === true ? { outputError: () => {} } : {})
  })
  program
    .description('meshbee: a leaderless multi-writer CRDT database. Every device writes its own log; all logs fold into one view.')
    .version(packageVersion(), '-V, --version')
    .option('--json', 'machine-readable output: one JSON document per command (NDJSON for streams)')
    .addOption(new Option('--dir <path>', 'database directory').env('MESHBEE_DIR').default('./.meshbee'))
    .option('--verbose', 'library logs (pino-pretty) on stderr')
    .addHelpText('afterAll', EPILOG)
    .showSuggestionAfterError()
    .showHelpAfterError(opts.json === true ? false : '(add --help for usage)')
    .exitOverride()

  program.command('init')
    .description('create a new database (this peer is its first writer; --encrypted: a private one), or with --key open an existing one by key')
    .argument('[dir]', 'directory (default: --dir)')
    .addOption(new Option('--encrypted', 'create the database encrypted: only members and readers read it; a peer with the key alone seeds it blind').conflicts('key'))
    .option('--key <key>', 'open the database with this key instead (a reader until a member adds this peer; of an encrypted database, a blind seeder)')
    .option('--encryption-key <key>', 'with --key: the encryption key of an encrypted database, handed over by hand (64 hex characters; "meshbee pair" needs none)')
    .addOption(historyOption())
    .addHelpText('after', HISTORY_HELP)
    .action(async (dir: string | undefined, o: { key?: string, encrypted?: boolean, encryptionKey?: string, history?: History }, cmd: Command) => {
      const r = await context(cmd)
      if (dir !== undefined && r.session.db === undefined) r.dir = dir
      const key = o.key === undefined ? undefined : hexKey(o.key, 'database key')
      if (o.encryptionKey !== undefined && key === undefined) throw usage('--encryption-key joins an encrypted database: give its --key too')
      const encryptionKey = o.encryptionKey === undefined ? undefined : hexKey(o.encryptionKey, 'encryption key')
      await withDb(r, async (db) => {
        const info = describeDb(db, r.dir, r.io.cwd)
        r.out.result({ ...info, created: key === undefined }, () => [
          `${key === undefined ? `created ${info.privacy === 'encrypted' ? 'an encrypted' : 'a'} database` : 'opened database'} in ${info.dir}`,
          `key         ${info.key}`,
          `writer key  ${info.writerKey}${db.writable ? '' : `  (not a member yet: a member runs "meshbee add-writer ${info.writerKey}")`}`,
          `privacy     ${privacyText(info.privacy)}`,
          ...(key === undefined && info.privacy === 'encrypted' ? ['  add devices with "meshbee invite" (answered while "meshbee join" runs) and "meshbee pair <invite>" on the device'] : [])
        ].join('\n'))
      }, { create: true, exclusive: true, key, encrypted: o.encrypted === true, encryptionKey, history: o.history, own: 'init' })
    })

  program.command('verify')
    .description('check the view against the logs in full (exit 5 when it disagrees); --repair rebuilds it from the logs')
    .option('--repair', 'rebuild the view from the logs if the check fails')
    .action(async (o: { repair?: boolean }, cmd: Command) => {
      const r = await context(cmd)
      await withDb(r, async (db) => {
        const bar = !r.json && r.io.tty
          ? new SingleBar({ format: 'verifying [{bar}] {value}/{total} logs', hideCursor: true, stream: r.io.stderr as NodeJS.WritableStream & NodeJS.WriteStream }, Presets.shades_classic)
          : null
        let started = false
        const result = await db.verify({
          repair: o.repair === true,
          progress: (done, total) => {
            if (bar === null) return
            if (!started) bar.start(total, 0)
            started = true
            bar.update(done)
          }
        })
        if (started) bar?.stop()
        r.out.result(result, () => result.ok
          ? `ok: ${result.keys} keys and ${result.entries} log entries agree`
          : [`the view disagrees with the logs${result.repaired ? ': rebuilt from them' : ' (meshbee verify --repair rebuilds it)'}`, ...result.problems.map((p) => '  ' + p)].join('\n'))
        if (!result.ok && !result.repaired) throw new CliError('MESHBEE_VIEW_DAMAGED', 'the view disagrees with the logs', EXIT.DAMAGED)
      })
    })

  program.command('compact')
    .description('reclaim disk: drop the tombstones of deletes and clear the log blocks (history live) that every member has recorded folding; ' +
      'prints what it reclaimed, the bytes on disk before and after, and which members hold the rest back')
    .addHelpText('after', `
Compact first records how far this peer has folded every log. Only what every live member has
recorded folding is stable: a member that has been offline since holds the rest back (listed as
"held back by"). It must come online and catch up (a running "meshbee join" records how far it has
folded), or be removed ("meshbee remove-writer <key>"), before a later compact reclaims more. A
removed member still holds the log blocks back (not the tombstones) until it comes online once and
folds its removal: a membership change it wrote before its removal could still arrive. A
database kept with --history full (and a seeder's) clears no block; its tombstones still go.
Inside a running join, the join prints what was reclaimed.`)
    .action(async (_o: unknown, cmd: Command) => {
      const r = await context(cmd)
      await withDb(r, async (db) => {
        const bar = !r.json && r.io.tty
          ? new SingleBar({ format: 'compacting [{bar}] {value}/{total} {phase}', hideCursor: true, stream: r.io.stderr as NodeJS.WritableStream & NodeJS.WriteStream }, Presets.shades_classic)
          : null
        let phase: string | null = null
        const result = await db.compact({
          onProgress: (p) => {
            if (bar === null) return
            if (phase === null) bar.start(p.total, p.done, { phase: p.phase })
            else if (p.phase !== phase) bar.setTotal(p.total)
            phase = p.phase
            bar.update(p.done, { phase: p.phase })
          }
        })
        if (phase !== null) bar?.stop()
        const held = result.heldBackBy
        r.out.result(result, () => [
          table([
            ['blocks cleared', String(result.blocksCleared)],
            ['tombstones collected', String(result.tombstonesCollected)],
            ['tombstones held', String(result.tombstones)],
            ['logs on disk', `${bytes(result.bytesBefore.logs)} -> ${bytes(result.bytesAfter.logs)}`],
            ['view on disk', `${bytes(result.bytesBefore.view)} -> ${bytes(result.bytesAfter.view)}`],
            ['time', `${result.ms} ms`],
            ['held back by', held.length === 0 ? 'nobody (everything stable is reclaimed)' : held[0]],
            ...held.slice(1).map((k) => ['', k])
          ]),
          ...(held.length === 0
            ? []
            : ['  each member held back by must come online and catch up (a running "meshbee join" records how far it has folded), ' +
                'or be removed ("meshbee remove-writer <key>"), before compact reclaims more; ' +
                'a removed member holds the log blocks back until it comes online once (it may hold a membership change written before its removal)'])
        ].join('\n'))
      })
    })

  program.command('info')
    .description('database key, discovery key, writer key, writability, privacy, writers and readers, view hash, history kept, bytes on disk (logs, view), compaction and fold stats')
    .action(async (_o: unknown, cmd: Command) => {
      const r = await context(cmd)
      await withDb(r, async (db) => {
        const writers = db.writers()
        const live = writers.filter((w) => w.member && !w.removed)
        const blind = db.privacy === 'blind'
        const info = {
          ...describeDb(db, r.dir, r.io.cwd),
          role: roleOf(db),
          writers: live.filter((w) => !w.reader).length,
          readers: live.filter((w) => w.reader).length,
          // a blind seeder folds no view: it has no hash to compare
          hash: blind ? null : hex(db.hash()),
          history: historyOf(db),
          stats: db.stats()
        }
        const { disk, blocksCleared, tombstonesCollected, tombstones, ...folds } = info.stats
        r.out.result(info, () => table([
          ['dir', info.dir],
          ['key', info.key],
          ['discovery key', info.discoveryKey],
          ['writer key', info.writerKey],
          ['writable', String(info.writable)],
          ['role', info.role ?? (blind ? 'seeder (blind)' : 'none (not a member)')],
          ['privacy', privacyText(info.privacy)],
          ['writers', String(info.writers)],
          ['readers', String(info.readers)],
          ['hash', info.hash ?? '-'],
          ['history', info.history === 'full' ? 'full (every block of every log is kept)' : 'live ("meshbee compact" clears what every member has folded)'],
          ['disk', `logs ${bytes(disk.logs)}, view ${bytes(disk.view)}`],
          ['compaction', `${count(blocksCleared, 'block')} cleared, ${count(tombstonesCollected, 'tombstone')} collected (since open); ${count(tombstones, 'tombstone')} held`],
          ['stats', Object.entries(folds).map(([k, v]) => `${k}=${v}`).join(' ')]
        ]))
      })
    })

  valueOptions(program.command('put'))
    .description('set a key to a value: JSON when it looks like JSON, else a string (see "Values" below)')
    .argument('<key>')
    .argument('<value>', "the value, or '-' to read it from stdin (trimmed, unless --string)")
    .action(async (key: string, value: string, o: { string?: boolean, jsonValue?: boolean }, cmd: Command) => {
      const r = await context(cmd)
      const mode = valueMode(o)
      const parse = (text: string): Json => {
        const v = parseValue(text, mode)
        if (v === null) throw usage('null is not a value: use "meshbee del" to delete a key')
        return v
      }
      const given = value === '-' ? undefined : parse(value)
      await withDb(r, async (db) => {
        let v = given
        if (v === undefined) {
          const text = (await readAll(r.io.stdin())).toString('utf8')
          v = parse(mode === 'string' ? text : text.trim())
        }
        await db.put(key, v)
        r.out.result({ key, value: v }, () => `ok ${key}`)
      })
    })

  program.command('get')
    .description('print the value of a key as JSON (exit 3 when the key is absent)')
    .argument('<key>')
    .action(async (key: string, _o: unknown, cmd: Command) => {
      const r = await context(cmd)
      await withDb(r, async (db) => {
        const raw = await db.get(key, { valueEncoding: 'utf8' }) as unknown as string | undefined
        if (raw === undefined) throw notFound(`key not found: ${key}`)
        const value = decodeStored(raw)
        r.out.result({ key, value }, () => JSON.stringify(value, null, 2))
      })
    })

  program.command('del')
    .description('delete a key (exit 3, writing nothing, when it is absent)')
    .argument('<key>')
    .action(async (key: string, _o: unknown, cmd: Command) => {
      const r = await context(cmd)
      await withDb(r, async (db) => {
        if (await db.typeOf(key) === undefined) throw notFound(`key not found: ${key}`)
        await db.del(key)
        r.out.result({ key, deleted: true }, () => `deleted ${key}`)
      })
    })

  rangeOptions(program.command('ls'))
    .description('list keys and values in key order (NDJSON with --json)')
    .action(async (o: Range, cmd: Command) => {
      const r = await context(cmd)
      await withDb(r, async (db) => {
        for await (const e of (await transfer()).entries(db, o)) await r.out.write(r.json ? JSON.stringify(e) : `${e.key}\t${JSON.stringify(e.value)}`)
      })
    })

  program.command('patch')
    .description('set fields of the document at a key (LWW map: each field merges on its own)')
    .argument('<key>')
    .argument('<json-object>', 'fields to set, e.g. \'{"done":true}\'')
    .option('--unset <field...>', 'fields to delete')
    .action(async (key: string, text: string, o: { unset?: string[] }, cmd: Command) => {
      const r = await context(cmd)
      const fields = parseValue(text, 'json', '<json-object>')
      if (fields === null || typeof fields !== 'object' || Array.isArray(fields)) {
        throw new CliError('MESHBEE_INVALID_VALUE', '<json-object> must be a JSON object', EXIT.USAGE)
      }
      const all: Record<string, Json | undefined> = { ...fields as Record<string, Json> }
      for (const f of o.unset ?? []) all[f] = undefined
      await withDb(r, async (db) => {
        await db.patch(key, all)
        const raw = await db.get(key, { valueEncoding: 'utf8' }) as unknown as string | undefined
        const value = raw === undefined ? undefined : decodeStored(raw)
        r.out.result({ key, value: value ?? null }, () => `${key} ${show(value)}`)
      })
    })

  for (const [name, verb] of [['sadd', 'add a member to'], ['srem', 'remove a member (every add this peer has seen) from']] as const) {
    valueOptions(program.command(name))
      .description(`${verb} the set at a key (add-wins; the member is read like a value of put)`)
      .argument('<key>')
      .argument('<member>')
      .action(async (key: string, member: string, o: { string?: boolean, jsonValue?: boolean }, cmd: Command) => {
        const r = await context(cmd)
        const m = parseValue(member, valueMode(o), 'member')
        await withDb(r, async (db) => {
          await (name === 'sadd' ? db.sadd(key, m) : db.srem(key, m))
          // the member's own row, not the whole set: a write to a large set stays cheap to confirm
          const present = await db.sismember(key, m)
          r.out.result({ key, member: m, present }, () => `${key} ${JSON.stringify(m)} ${present ? 'present' : 'absent'}`)
        })
      })
  }

  interface MembersOptions { gt?: string, gte?: string, lt?: string, lte?: string, limit?: string, reverse?: boolean, string?: boolean, jsonValue?: boolean }

  valueOptions(program.command('smembers'))
    .description('the members of the set at a key, in order (exit 3 when it holds no set); bounds and --limit read a range')
    .argument('<key>')
    .option('--gt <member>', 'members after this one')
    .option('--gte <member>', 'members from this one on')
    .option('--lt <member>', 'members before this one')
    .option('--lte <member>', 'members up to this one')
    .option('--limit <n>', 'at most n members')
    .option('--reverse', 'from the last member backwards')
    .action(async (key: string, o: MembersOptions, cmd: Command) => {
      const r = await context(cmd)
      const range: MembersRange = { reverse: o.reverse === true }
      for (const b of ['gt', 'gte', 'lt', 'lte'] as const) if (o[b] !== undefined) range[b] = parseValue(o[b] as string, valueMode(o), '--' + b)
      if (o.limit !== undefined) {
        const n = Number(o.limit)
        if (!Number.isSafeInteger(n) || n < 0) throw new CliError('MESHBEE_INVALID_ARGUMENT', '--limit takes a whole number >= 0', EXIT.USAGE)
        range.limit = n
      }
      await withDb(r, async (db) => {
        if (await db.typeOf(key) !== 'set') throw notFound(`no set at ${key}`)
        const members = await db.smembers(key, range)
        r.out.result(members, () => members.map((m) => JSON.stringify(m)).join('\n'))
      })
    })

  valueOptions(program.command('sismember'))
    .description('whether a member is in the set at a key: prints true or false (reads that member\'s row only)')
    .argument('<key>')
    .argument('<member>')
    .action(async (key: string, member: string, o: { string?: boolean, jsonValue?: boolean }, cmd: Command) => {
      const r = await context(cmd)
      const m = parseValue(member, valueMode(o), 'member')
      await withDb(r, async (db) => {
        const present = await db.sismember(key, m)
        r.out.result({ key, member: m, present }, () => String(present))
      })
    })

  program.command('writers')
    .description('every writer log: length, cut, folded length, membership (member, reader, removed), clock skew')
    .action(async (_o: unknown, cmd: Command) => {
      const r = await context(cmd)
      await withDb(r, async (db) => {
        const list = db.writers().map((w) => ({ ...w, key: hex(w.key) }))
        r.out.result(list, () => table([
          ['writer', 'length', 'cut', 'folded', 'status', 'skew ms'],
          ...list.map((w) => [
            w.key + (w.local ? ' *' : ''),
            String(w.length),
            String(w.cut),
            String(w.folded),
            w.removed ? 'removed' : w.reader ? 'reader' : w.member ? 'member' : 'not a member',
            String(w.maxSkew)
          ])
        ]) + '\n(* this peer)')
      })
    })

  program.command('add-writer')
    .description('make another peer a member, by its writer key')
    .argument('<key>', 'the writer key (64 hex characters)')
    .action(async (key: string, _o: unknown, cmd: Command) => {
      const r = await context(cmd)
      const k = hexKey(key, 'writer key')
      await withDb(r, async (db) => {
        await db.addWriter(k)
        r.out.result({ writer: k, added: true }, () => `added ${k}`)
      })
    })

  program.command('add-reader')
    .description('admit a reader to an encrypted database, by its writer key: it reads everything and never writes (remove-writer removes it)')
    .argument('<key>', 'the writer key of the reader\'s device (64 hex characters)')
    .action(async (key: string, _o: unknown, cmd: Command) => {
      const r = await context(cmd)
      const k = hexKey(key, 'reader key')
      await withDb(r, async (db) => {
        await db.addReader(k)
        r.out.result({ reader: k, added: true }, () => `added reader ${k}`)
      })
    })

  program.command('remove-writer')
    .description('remove a member or a reader: a member\'s entries past what this peer has folded never count; an encrypted database\'s later writes are sealed from it')
    .argument('<key>', 'the writer key (64 hex characters)')
    .action(async (key: string, _o: unknown, cmd: Command) => {
      const r = await context(cmd)
      const k = hexKey(key, 'writer key')
      await withDb(r, async (db) => {
        await db.removeWriter(k)
        const w = db.writers().find((x) => hex(x.key) === k)
        r.out.result({ writer: k, removed: true, cut: w?.cut ?? null }, () => `removed ${k}${w === undefined ? '' : ` (cut at ${w.cut})`}`)
      })
    })

  program.command('versions')
    .description("every writer's latest entry for a key, the winner first: the conflicts behind its value (exit 3 when no writer wrote it)")
    .argument('<key>')
    .action(async (key: string, _o: unknown, cmd: Command) => {
      const r = await context(cmd)
      await withDb(r, async (db) => {
        const list = (await db.versions(key)).map((v, i) => ({
          writer: hex(v.writer), stamp: stampJson(v.stamp), type: v.type, value: v.value ?? null, winner: i === 0
        }))
        if (list.length === 0) throw notFound(`no versions of ${key}: no writer wrote it`)
        r.out.result(list, () => table(list.map((v, i) => [i === 0 ? 'winner' : '', v.writer, v.stamp === null ? '-' : `${v.stamp.time}#${v.stamp.counter}`, v.type, show(v.value ?? undefined)])))
      })
    })

  program.command('diff')
    .description("a writer's changes between two lengths of its log, or since a time (NDJSON with --json)")
    .argument('<writer>', 'the writer key (64 hex characters)')
    .option('--from <length>', 'from this length of the log (default 0)', nonNegativeInt)
    .option('--to <length>', 'to this length (default: all of it)', nonNegativeInt)
    .option('--since <time>', 'only entries stamped after <time>: ms since the epoch, an ISO date, or a duration ago (10m, 2h, 7d)', sinceTime)
    .action(async (writer: string, o: { from?: number, to?: number, since?: number }, cmd: Command) => {
      const r = await context(cmd)
      const w = hexKey(writer, 'writer key')
      await withDb(r, async (db) => {
        for await (const c of db.diff(w, o)) {
          const part = c.field !== undefined ? { field: c.field } : c.member !== undefined ? { member: c.member } : {}
          const item = { key: c.key, ...part, type: c.type, value: c.value ?? null, previous: c.previous ?? null, stamp: stampJson(c.stamp), seq: c.seq }
          const where = c.field !== undefined ? `${c.key}.${c.field}` : c.member !== undefined ? `${c.key} ${JSON.stringify(c.member)}` : c.key
          await r.out.write(r.json
            ? JSON.stringify(item)
            : `${c.type.padEnd(6)} ${where} ${show(c.value)}${c.previous === undefined ? '' : ` (was ${show(c.previous)})`}  ${stampText(c.stamp)}`)
        }
      })
    })

  keyRangeOptions(program.command('watch'))
    .description('print every change of the view (in a key range) as it lands, with its value before and after, until Ctrl-C (NDJSON with --json)')
    .option('--initial', "first the range's entries as they are now, then every later change")
    .option('--limit <n>', 'stop after <n> changes', nonNegativeInt)
    .action(async (o: Range & { initial?: boolean }, cmd: Command) => {
      const r = await context(cmd)
      await withDb(r, async (db) => {
        const it = db.watch(keyRangeOf(o), { initial: o.initial === true, valueEncoding: 'utf8' })
        await follow(r, it, o.limit, (c) => {
          const value = c.value === undefined ? null : decodeStored(c.value as unknown as string)
          const previous = c.previous === undefined ? null : decodeStored(c.previous as unknown as string)
          return [{ type: c.type, key: c.key, value, previous, origin: c.origin, seq: c.seq },
            `#${c.seq} ${c.type.padEnd(3)} ${c.key} ${c.type === 'put' ? show(value) : ''}${previous === null ? '' : ` (was ${show(previous)})`} ${c.origin}`]
        })
      })
    })

  keyRangeOptions(program.command('changes'))
    .description('the keys changed after a seq, each once with its value now (the change feed); --live follows it (NDJSON with --json)')
    .option('--since <seq>', 'after this seq (default 0: every key)', nonNegativeInt)
    .option('--live', 'then follow every later change until Ctrl-C')
    .option('--limit <n>', 'stop after <n> changes', nonNegativeInt)
    .addHelpText('after', `
A reader that stopped before deletions whose tombstones compaction dropped (MESHBEE_FEED_COMPACTED),
or before the view was folded anew (MESHBEE_FEED_RESET), cannot be told what it missed: read the
feed again with --since 0, then go on from the greater of the last seq listed and the seq the error
names ("seq" in the --json error).`)
    .action(async (o: Range & { since?: number, live?: boolean }, cmd: Command) => {
      const r = await context(cmd)
      await withDb(r, async (db) => {
        const it = db.changes({ ...keyRangeOf(o), since: o.since ?? 0, live: o.live === true, valueEncoding: 'utf8' })
        await follow(r, it, o.limit, (c) => {
          const value = c.value === undefined ? null : decodeStored(c.value as unknown as string)
          return [{ type: c.type, key: c.key, value, seq: c.seq }, `#${c.seq} ${c.type.padEnd(3)} ${c.key} ${c.type === 'put' ? show(value) : ''}`]
        })
      })
    })

  const index = program.command('index').description('secondary indexes: add, list, remove')
  index.command('add')
    .description('declare a field index (a dotted path of JSON values; an array or a set gives one entry per element) or a full-text index, and build it')
    .argument('<name>')
    .addOption(new Option('--field <path>', "the dotted path of the field ('' for the whole value)").conflicts('text'))
    .option('--text <fields...>', 'a full-text index of these fields (dotted paths; strings and arrays of strings)')
    .option('--index-version <n>', 'the declaration version: a new one rebuilds the index (default 1)', nonNegativeInt)
    .action(async (name: string, o: { field?: string, text?: string[], indexVersion?: number }, cmd: Command) => {
      const r = await context(cmd)
      if (o.field === undefined && o.text === undefined) throw usage('index add needs --field <path> or --text <fields...>')
      await withDb(r, async (db) => {
        const version = o.indexVersion ?? 1
        const what = o.field !== undefined ? { field: o.field } : { text: o.text as string[] }
        const built = await db.defineIndex(name, { version, ...what })
        r.out.result({ name, ...what, version, built }, () => built ? `built ${name}` : `${name} is already declared so`)
      })
    })
  index.command('ls')
    .description('the declared indexes')
    .action(async (_o: unknown, cmd: Command) => {
      const r = await context(cmd)
      await withDb(r, async (db) => {
        const list = db.indexes()
        r.out.result(list, () => list.length === 0 ? 'no indexes' : table(list.map((i) => [i.name, i.kind === 'field' ? `field ${i.field ?? ''}` : i.fields !== undefined ? `text ${i.fields.join(' ')}` : `${i.kind} (code)`, `v${i.version}`, i.stale ? 'stale' : i.live ? 'live' : 'kept by its app'])))
      })
    })
  index.command('rm')
    .description('remove an index and its entries (exit 3 when there is none)')
    .argument('<name>')
    .action(async (name: string, _o: unknown, cmd: Command) => {
      const r = await context(cmd)
      await withDb(r, async (db) => {
        if (!await db.dropIndex(name)) throw notFound(`no index named ${name}`)
        r.out.result({ name, removed: true }, () => `removed ${name}`)
      })
    })

  program.command('search')
    .description('full-text search in a text index: keys holding every term (the last as a prefix), best first (NDJSON with --json)')
    .argument('<name>')
    .argument('<text>')
    .option('--limit <n>', 'at most <n> results (default 10)', nonNegativeInt)
    .action(async (name: string, text: string, o: { limit?: number }, cmd: Command) => {
      const r = await context(cmd)
      await withDb(r, async (db) => {
        for await (const e of db.search(name, text, { limit: o.limit ?? 10 })) {
          await r.out.write(r.json ? JSON.stringify({ key: e.key, value: e.value, score: e.score }) : `${e.score.toFixed(3)}\t${e.key}\t${show(e.value)}`)
        }
      })
    })

  program.command('query')
    .description('the entries of an index in index-key order: index key, key, value (NDJSON with --json)')
    .argument('<name>')
    .option('--gt <value>', 'index keys greater than <value> (read like a value: JSON, else a string)')
    .option('--gte <value>', 'index keys from <value> on')
    .option('--lt <value>', 'index keys less than <value>')
    .option('--lte <value>', 'index keys up to <value>')
    .option('--eq <value>', 'index keys equal to <value>')
    .option('--limit <n>', 'at most <n> entries', nonNegativeInt)
    .option('--reverse', 'from the greatest index key down')
    .action(async (name: string, o: { gt?: string, gte?: string, lt?: string, lte?: string, eq?: string, limit?: number, reverse?: boolean }, cmd: Command) => {
      const r = await context(cmd)
      const bound = (v: string | undefined): Json | undefined => v === undefined ? undefined : parseValue(v, 'auto')
      const range = { gt: bound(o.gt), gte: bound(o.eq ?? o.gte), lt: bound(o.lt), lte: bound(o.eq ?? o.lte), limit: o.limit, reverse: o.reverse === true }
      await withDb(r, async (db) => {
        for await (const e of db.query(name, range as never)) {
          await r.out.write(r.json ? JSON.stringify({ indexKey: e.indexKey, key: e.key, value: e.value }) : `${JSON.stringify(e.indexKey)}\t${e.key}\t${show(e.value)}`)
        }
      })
    })

  const invite = program.command('invite')
    .description('invites: one string that lets a device pair as a writer or a reader ("meshbee invite" alone is "invite create")')
    .addHelpText('after', `
A member answers its own invites while "meshbee join" runs on its directory: an invite made while
a join runs is answered at once; one made without it is stored and answered on the next join.`)
  invite.command('create', { isDefault: true })
    .description('make an invite and print it (the default subcommand: "meshbee invite [options]")')
    .addOption(new Option('--role <role>', 'what the device becomes: writer, or reader (encrypted databases)').choices(['writer', 'reader']).default('writer'))
    .option('--uses <n>', 'how many devices it admits', positiveInt, 1)
    .option('--expires <duration>', 'how long it works: 30m, 12h, 7d...', duration, 7 * 86_400_000)
    .action(async (o: { role: 'writer' | 'reader', uses: number, expires: number }, cmd: Command) => {
      const r = await context(cmd)
      await withDb(r, async (db) => {
        const expires = Date.now() + o.expires
        const made = await db.createInvite({ role: o.role, uses: o.uses, expires })
        const { parseInvite } = await import('../lib/pairing.js')
        const id = hex(parseInvite(made).id)
        const running = r.session.db !== undefined
        const at = new Date(expires).toISOString()
        r.out.result({ invite: made, id, role: o.role, uses: o.uses, expires: at, answered: running ? 'now' : 'on join' }, () => [
          made,
          `  ${o.role === 'reader' ? 'a reader' : 'a writer'}, for ${o.uses === 1 ? 'one device' : `${o.uses} devices`}, until ${at} (id ${id})`,
          `  on the device: meshbee pair ${made}`,
          running
            ? '  this peer answers it now, while this "meshbee join" runs'
            : '  this peer answers it while "meshbee join" runs on this directory: start it (or keep it running)'
        ].join('\n'))
      })
    })
  invite.command('ls')
    .description('the invites this peer made: id, role, uses and used, expiry, whether revoked')
    .action(async (_o: unknown, cmd: Command) => {
      const r = await context(cmd)
      await withDb(r, async (db) => {
        const now = Date.now()
        const list = db.invites().map((i) => inviteJson(i, now))
        r.out.result(list, () => list.length === 0
          ? 'no invites'
          : table([['id', 'role', 'used', 'expires', 'state'], ...list.map((i) => [String(i.id), String(i.role), `${String(i.used)}/${String(i.uses)}`, String(i.expires), String(i.state)])]))
      })
    })
  invite.command('revoke')
    .description('revoke an invite of this peer\'s, by its string or its id: no device pairs with it from now on (exit 3 when there is none)')
    .argument('<invite-or-id>')
    .action(async (which: string, _o: unknown, cmd: Command) => {
      const r = await context(cmd)
      await withDb(r, async (db) => {
        const text = which.trim()
        if (!await db.revokeInvite(/^[0-9a-f]{64}$/i.test(text) ? text.toLowerCase() : text)) throw notFound(`this peer made no invite ${text}`)
        r.out.result({ invite: text, revoked: true }, () => `revoked ${text}`)
      })
    })

  program.command('pair')
    .description('pair --dir with a database by an invite: a member that runs "meshbee join" admits this device; prints its role, then exits')
    .argument('<invite>', 'the invite string ("meshbee invite" on a member)')
    .option('--bootstrap <host:port>', 'a DHT bootstrap node, for a private DHT (repeatable)', bootstrapNode)
    .option('--timeout <ms>', 'how long to wait for the member (0: no limit)', nonNegativeInt, 60_000)
    .action(async (text: string, o: { bootstrap?: Array<{ host: string, port: number }>, timeout: number }, cmd: Command) => {
      const r = await context(cmd)
      if (r.session.db !== undefined) throw usage('pair does not run inside a running peer: stop its "meshbee join" first')
      const location = resolve(r.io.cwd, r.dir)
      if (await (await control()).answers(location)) throw new CliError('MESHBEE_BUSY', `a meshbee join or seed already runs on ${location}`)
      const { MeshDB } = await import('../lib/meshdb.js')
      // loopback testnets need a node that is not firewalled (as join does)
      const swarm = o.bootstrap === undefined || o.bootstrap.length === 0
        ? undefined
        : { dht: new (await import('hyperdht')).default({ bootstrap: o.bootstrap, firewalled: false }) }
      let db: DB
      try {
        db = await MeshDB.pair<string, Json>(location, text, { valueEncoding: 'json', logger: r.log, timeout: o.timeout, ...(swarm === undefined ? {} : { swarm }) } as Parameters<typeof MeshDB.pair<string, Json>>[2])
      } catch (err) {
        await (swarm?.dht as { destroy?: () => Promise<void> } | undefined)?.destroy?.().catch(() => {})
        const e = err as { code?: unknown, message?: unknown, reason?: unknown }
        if (e?.code === 'MESHBEE_INVITE_REFUSED') {
          const reason = typeof e.reason === 'string' ? e.reason : null
          const message = String(e.message)
          throw new CliError('MESHBEE_INVITE_REFUSED', reason === null || message.includes(reason) ? message : `${message} (${reason})`, EXIT.ERROR, { reason })
        }
        if (e?.code === 'MESHBEE_PAIR_TIMEOUT') throw new CliError('MESHBEE_PAIR_TIMEOUT', `${String(e.message)}: is a member that made the invite running "meshbee join"?`)
        if (e?.code === 'MESHBEE_KEY_MISMATCH') throw new CliError('MESHBEE_KEY_MISMATCH', `${location} holds another database than the invite's: pair into a new directory (--dir)`)
        throw err
      }
      try {
        const info = { ...describeDb(db, r.dir, r.io.cwd), role: roleOf(db) }
        r.out.result(info, () => [
          `paired ${info.dir} with database ${info.key}`,
          `role        ${info.role ?? `not admitted yet (a member adds ${info.writerKey} when it has seen the invite)`}`,
          `writable    ${String(info.writable)}`,
          `privacy     ${privacyText(info.privacy)}`,
          `writer key  ${info.writerKey}`,
          '  run "meshbee join" on this directory to stay online and replicate'
        ].join('\n'))
      } finally {
        await db.close()
      }
    })

  program.command('join')
    .description('stay online: replicate with peers on the discovery key and print changes, peers and join requests until Ctrl-C (NDJSON with --json)')
    .option('--bootstrap <host:port>', 'a DHT bootstrap node, for a private DHT (repeatable)', bootstrapNode)
    .option('--accept-all', 'add every peer that asks to join as a writer')
    .option('--no-request', 'do not ask members to add this peer when it is not a member')
    .addOption(historyOption())
    .option('--auto-compact [every]', 'compact on its own while online, after folds, at most once every <every> (default 60s; 30s, 5m...), as "meshbee compact" does', duration)
    .addHelpText('after', HISTORY_HELP)
    .action(async (o: { bootstrap?: Array<{ host: string, port: number }>, acceptAll?: boolean, request: boolean, history?: History, autoCompact?: true | number }, cmd: Command) => {
      const r = await context(cmd)
      await withDb(r, async (db) => {
        await serveOnline(r, db, { bootstrap: o.bootstrap, acceptAll: o.acceptAll, request: o.request, mode: 'join', autoCompact: o.autoCompact })
      }, { own: 'online', history: o.history, autoCompact: o.autoCompact })
    })

  program.command('seed')
    .description('open a database by key in --dir (creating the directory), join and serve its logs without being a writer (an encrypted one blind: it reads nothing); ' +
      'a seeder is an archive: it keeps every block of every log (history full), so peers can always catch up from it')
    .argument('<key>', 'the database key (64 hex characters)')
    .option('--bootstrap <host:port>', 'a DHT bootstrap node, for a private DHT (repeatable)', bootstrapNode)
    .action(async (key: string, o: { bootstrap?: Array<{ host: string, port: number }> }, cmd: Command) => {
      const r = await context(cmd)
      const k = hexKey(key, 'database key')
      await withDb(r, async (db) => {
        await serveOnline(r, db, { bootstrap: o.bootstrap, request: false, mode: 'seed' })
      }, { create: true, key: k, history: 'full', own: 'online' })
    })

  program.command('import')
    .description('write NDJSON lines as export writes them, from a file (\'-\' for stdin), in batches of 500 lines, ' +
      'each checked whole before it is written; "value": null deletes')
    .argument('<file>')
    .action(async (file: string, _o: unknown, cmd: Command) => {
      const r = await context(cmd)
      await withDb(r, async (db) => {
        const n = await (await transfer()).importFrom(db, r.io, file, !r.json && r.io.tty)
        r.out.result({ file, ...n }, () => `imported ${n.puts} values, ${n.docs} documents, ${n.sets} sets${n.dels > 0 ? `; deleted ${n.dels}` : ''}`)
      })
    })

  rangeOptions(program.command('export'))
    .description('write every key as an NDJSON line {"key":…,"value":…} (documents and sets with "type":"doc" / "type":"set") to a new file, or stdout')
    .argument('[file]', "output file (default or '-': stdout)")
    .option('--force', 'overwrite the file if it exists')
    .action(async (file: string | undefined, o: Range & { force?: boolean }, cmd: Command) => {
      const r = await context(cmd)
      await withDb(r, async (db) => {
        const n = await (await transfer()).exportTo(db, r.io, file, o, o.force === true)
        if (file !== undefined && file !== '-') r.out.result({ file, exported: n }, () => `exported ${n} keys to ${file}`)
      })
    })

  program.command('testnet')
    .description('run a local DHT on 127.0.0.1 for join/seed --bootstrap (prints its host:port) until Ctrl-C')
    .option('--nodes <n>', 'DHT nodes', intIn(1, 100), 3)
    .option('--port <port>', 'UDP port of the bootstrap node (default: a free one)', intIn(1, 65535))
    .action(async (o: { nodes: number, port?: number }, cmd: Command) => {
      const r = await context(cmd)
      if (r.session.db !== undefined) throw usage('testnet does not run inside a peer')
      await (await onlineModule()).testnet(r.out, o)
    })

  return program
}

/** commander parser: an integer from `min` to `max`. */
const intIn = (min: number, max: number) => (text: string): number => {
  const n = nonNegativeInt(text)
  if (n < min || n > max) throw new InvalidArgumentError(`expected a number from ${min} to ${max}`)
  return n
}

/** commander parser: a whole number, 1 or more. */
function positiveInt (text: string): number {
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text)) || Number(text) < 1) throw new InvalidArgumentError('expected a whole number, 1 or more')
  return Number(text)
}

/** join and seed: listen on the control socket for the other commands, and stay online. */
async function serveOnline (r: Run, db: DB, opts: Omit<import('./online.js').OnlineOptions, 'socket' | 'tty'>): Promise<void> {
  const dir = resolve(r.io.cwd, r.dir)
  const server = await (await control()).listen(dir, async (req, io) =>
    await run(['node', 'meshbee', ...req.argv], undefined, { io, db, dir }))
  try {
    await (await onlineModule()).online(db, r.out, r.log, { ...opts, socket: server.path, tty: r.io.tty })
  } finally {
    await server.close()
  }
}

/** Whether `--json` is among the global options (before any `--`). */
function wantsJson (argv: string[]): boolean {
  const end = argv.indexOf('--')
  return (end === -1 ? argv : argv.slice(0, end)).includes('--json')
}

/**
 * Parses and runs one command line (`argv` as in process.argv); resolves to the exit code.
 * `output` receives commander's own text (help, usage errors) instead of stdout/stderr;
 * `session` runs the command with other io (a client's) and a running peer's database.
 */
export async function run (argv: string[], output?: { writeOut: (s: string) => void, writeErr: (s: string) => void }, session?: Session): Promise<number> {
  const json = wantsJson(argv)
  const io = session?.io ?? processIo()
  const out = output ?? (session === undefined ? undefined : { writeOut: (s: string) => { io.stdout.write(s) }, writeErr: (s: string) => { io.stderr.write(s) } })
  const program = buildProgram({ json, output: out, session, argv })
  try {
    await program.parseAsync(argv)
    return EXIT.OK
  } catch (err) {
    if (err instanceof Forwarded) return err.exitCode
    const e = describeError(err)
    if (err instanceof CommanderError && e.exitCode === EXIT.OK) return EXIT.OK
    if (json) io.stderr.write(JSON.stringify({ error: { code: e.code, message: e.message, exitCode: e.exitCode, ...e.details } }) + '\n')
    else if (!(err instanceof CommanderError)) io.stderr.write(`meshbee: ${e.code}: ${e.message}\n`)
    return e.exitCode
  }
}
