/**
 * The `meshbee` command line: commander program, one function per command. `run(argv)` parses,
 * runs and resolves to the exit code; scripts/cli.ts calls it for bin/meshbee.js.
 */
import { Command, CommanderError, Option } from 'commander'
import { resolve } from 'node:path'
import type { Logger } from 'pino'
import {
  CliError, EXIT, Output, bootstrapNode, createLogger, describeError, hex, hexKey, nonNegativeInt, openDb,
  parseValue, show, sinceTime, stampJson, stampText, usage, decodeStored, type DB, type GlobalOptions, type Json, type OpenOptions
} from './context.js'
import type { Range } from './transfer.js'
import { packageVersion } from './version.js'

// Modules that pull in the network or the database load when a command needs them.
const online = async (...a: Parameters<typeof import('./online.js').online>): Promise<void> => await (await import('./online.js')).online(...a)
const transfer = async (): Promise<typeof import('./transfer.js')> => await import('./transfer.js')


const EPILOG = `
Exit codes:
  0  ok
  1  runtime error (the error's stable code and message are printed)
  2  usage error (bad arguments or options)
  3  not found (get of a missing key)
  4  not writable (MESHBEE_NOT_WRITABLE: this peer is not a member)

Environment:
  MESHBEE_DIR  the database directory when --dir is not given (default ./.meshbee)`

interface Run {
  out: Output
  log: Logger
  dir: string
  json: boolean
}

async function context (cmd: Command): Promise<Run> {
  const g = cmd.optsWithGlobals<GlobalOptions>()
  const json = g.json === true
  // an empty MESHBEE_DIR counts as unset
  return { out: new Output(json), log: await createLogger(g.verbose === true), dir: g.dir === '' ? './.meshbee' : g.dir, json }
}

/** Opens the database for one command, runs `fn`, and always closes it. */
async function withDb<T> (r: Run, fn: (db: DB) => Promise<T>, opts: OpenOptions = {}): Promise<T> {
  const db = await openDb(r.dir, r.log, opts)
  try {
    return await fn(db)
  } finally {
    await db.close()
  }
}

function rangeOptions (cmd: Command): Command {
  return cmd
    .option('--gt <key>', 'keys greater than <key>')
    .option('--gte <key>', 'keys greater than or equal to <key>')
    .option('--lt <key>', 'keys less than <key>')
    .option('--lte <key>', 'keys less than or equal to <key>')
    .option('--limit <n>', 'at most <n> entries', nonNegativeInt)
    .option('--reverse', 'in reverse key order')
}

interface DbInfo { dir: string, key: string, discoveryKey: string, writerKey: string, writable: boolean }

function describeDb (db: DB, dir: string): DbInfo {
  return {
    dir: resolve(dir),
    key: hex(db.key),
    discoveryKey: hex(db.discoveryKey),
    writerKey: hex(db.writerKey),
    writable: db.writable
  }
}

function table (rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)))
  return rows.map((r) => r.map((c, i) => i === r.length - 1 ? c : c.padEnd(widths[i])).join('  ')).join('\n')
}

/**
 * The `meshbee` program. With `json`, commander's own error text is not printed (run() prints a
 * JSON error instead); `output` lets tests capture help text.
 */
export function buildProgram (opts: { json?: boolean, output?: { writeOut: (s: string) => void, writeErr: (s: string) => void } } = {}): Command {
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
    .description('create a new database (this peer is its first writer), or with --key open an existing one by key')
    .argument('[dir]', 'directory (default: --dir)')
    .option('--key <key>', 'open the database with this key instead (a reader until a member adds this peer)')
    .action(async (dir: string | undefined, o: { key?: string }, cmd: Command) => {
      const r = await context(cmd)
      if (dir !== undefined) r.dir = dir
      const key = o.key === undefined ? undefined : hexKey(o.key, 'database key')
      await withDb(r, async (db) => {
        const info = describeDb(db, r.dir)
        r.out.result({ ...info, created: key === undefined }, () => [
          `${key === undefined ? 'created database' : 'opened database'} in ${info.dir}`,
          `key         ${info.key}`,
          `writer key  ${info.writerKey}${db.writable ? '' : `  (not a member yet: a member runs "meshbee add-writer ${info.writerKey}")`}`
        ].join('\n'))
      }, { create: true, exclusive: true, key })
    })

  program.command('info')
    .description('database key, discovery key, writer key, writability, writers, view hash, fold stats')
    .action(async (_o: unknown, cmd: Command) => {
      const r = await context(cmd)
      await withDb(r, async (db) => {
        const writers = db.writers()
        const info = {
          ...describeDb(db, r.dir),
          writers: writers.filter((w) => w.member && !w.removed).length,
          hash: hex(db.hash()),
          stats: db.stats()
        }
        r.out.result(info, () => table([
          ['dir', info.dir],
          ['key', info.key],
          ['discovery key', info.discoveryKey],
          ['writer key', info.writerKey],
          ['writable', String(info.writable)],
          ['writers', String(info.writers)],
          ['hash', info.hash],
          ['stats', Object.entries(info.stats).map(([k, v]) => `${k}=${v}`).join(' ')]
        ]))
      })
    })

  program.command('put')
    .description('set a key (the value is parsed as JSON if it parses, else taken as a string)')
    .argument('<key>')
    .argument('<value>')
    .option('--string', 'take the value as a string even if it parses as JSON')
    .action(async (key: string, value: string, o: { string?: boolean }, cmd: Command) => {
      const r = await context(cmd)
      const v = parseValue(value, o.string === true)
      if (v === null) throw usage('null is not a value: use "meshbee del" to delete a key')
      await withDb(r, async (db) => {
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
        if (raw === undefined) throw new CliError('MESHBEE_NOT_FOUND', `key not found: ${key}`, EXIT.NOT_FOUND)
        const value = decodeStored(raw)
        r.out.result({ key, value }, () => JSON.stringify(value, null, 2))
      })
    })

  program.command('del')
    .description('delete a key')
    .argument('<key>')
    .action(async (key: string, _o: unknown, cmd: Command) => {
      const r = await context(cmd)
      await withDb(r, async (db) => {
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
      let fields: unknown
      try {
        fields = JSON.parse(text)
      } catch {
        throw usage('<json-object> is not JSON')
      }
      if (fields === null || typeof fields !== 'object' || Array.isArray(fields)) throw usage('<json-object> must be a JSON object')
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
    program.command(name)
      .description(`${verb} the set at a key (add-wins; the member is parsed as JSON if it parses)`)
      .argument('<key>')
      .argument('<member>')
      .option('--string', 'take the member as a string even if it parses as JSON')
      .action(async (key: string, member: string, o: { string?: boolean }, cmd: Command) => {
        const r = await context(cmd)
        const m = parseValue(member, o.string === true)
        await withDb(r, async (db) => {
          await (name === 'sadd' ? db.sadd(key, m) : db.srem(key, m))
          const members = await db.smembers(key)
          r.out.result({ key, members }, () => `${key} ${JSON.stringify(members)}`)
        })
      })
  }

  program.command('smembers')
    .description('the sorted members of the set at a key ([] when it holds no set)')
    .argument('<key>')
    .action(async (key: string, _o: unknown, cmd: Command) => {
      const r = await context(cmd)
      await withDb(r, async (db) => {
        const members = await db.smembers(key)
        r.out.result(members, () => members.map((m) => JSON.stringify(m)).join('\n'))
      })
    })

  program.command('writers')
    .description('every writer log: length, cut, folded length, membership, clock skew')
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
            w.removed ? 'removed' : w.member ? 'member' : 'not a member',
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

  program.command('remove-writer')
    .description('remove a member: its entries past what this peer has folded never count')
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
    .description("every writer's latest entry for a key, the winner first: the conflicts behind its value")
    .argument('<key>')
    .action(async (key: string, _o: unknown, cmd: Command) => {
      const r = await context(cmd)
      await withDb(r, async (db) => {
        const list = (await db.versions(key)).map((v, i) => ({
          writer: hex(v.writer), stamp: stampJson(v.stamp), type: v.type, value: v.value ?? null, winner: i === 0
        }))
        r.out.result(list, () => list.length === 0
          ? `no versions of ${key}`
          : table(list.map((v, i) => [i === 0 ? 'winner' : '', v.writer, v.stamp === null ? '-' : `${v.stamp.time}#${v.stamp.counter}`, v.type, show(v.value ?? undefined)])))
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
          const item = { key: c.key, type: c.type, value: c.value ?? null, previous: c.previous ?? null, stamp: stampJson(c.stamp), seq: c.seq }
          await r.out.write(r.json
            ? JSON.stringify(item)
            : `${c.type.padEnd(5)} ${c.key} ${show(c.value)}${c.previous === undefined ? '' : ` (was ${show(c.previous)})`}  ${stampText(c.stamp)}`)
        }
      })
    })

  program.command('join')
    .description('stay online: replicate with peers on the discovery key and print changes, peers and join requests until Ctrl-C (NDJSON with --json)')
    .option('--bootstrap <host:port>', 'a DHT bootstrap node, for a private DHT (repeatable)', bootstrapNode)
    .option('--accept-all', 'add every peer that asks to join as a writer')
    .option('--no-request', 'do not ask members to add this peer when it is not a member')
    .action(async (o: { bootstrap?: Array<{ host: string, port: number }>, acceptAll?: boolean, request: boolean }, cmd: Command) => {
      const r = await context(cmd)
      await withDb(r, async (db) => {
        await online(db, r.out, r.log, { bootstrap: o.bootstrap, acceptAll: o.acceptAll, request: o.request, mode: 'join' })
      })
    })

  program.command('seed')
    .description('open a database by key in --dir (creating the directory), join and serve its logs without being a writer')
    .argument('<key>', 'the database key (64 hex characters)')
    .option('--bootstrap <host:port>', 'a DHT bootstrap node, for a private DHT (repeatable)', bootstrapNode)
    .action(async (key: string, o: { bootstrap?: Array<{ host: string, port: number }> }, cmd: Command) => {
      const r = await context(cmd)
      const k = hexKey(key, 'database key')
      await withDb(r, async (db) => {
        await online(db, r.out, r.log, { bootstrap: o.bootstrap, request: false, mode: 'seed' })
      }, { create: true, key: k })
    })

  program.command('import')
    .description(`put NDJSON lines {"key":…,"value":…} from a file ('-' for stdin), in batches; "value": null deletes`)
    .argument('<file>')
    .action(async (file: string, _o: unknown, cmd: Command) => {
      const r = await context(cmd)
      await withDb(r, async (db) => {
        const done = await (await transfer()).importFrom(db, file, !r.json && process.stderr.isTTY === true)
        r.out.result({ file, ...done }, () => `imported ${done.puts} keys${done.dels > 0 ? `, deleted ${done.dels}` : ''}`)
      })
    })

  rangeOptions(program.command('export'))
    .description('write every key and value as NDJSON lines {"key":…,"value":…} to a file, or stdout')
    .argument('[file]', "output file (default or '-': stdout)")
    .action(async (file: string | undefined, o: Range, cmd: Command) => {
      const r = await context(cmd)
      await withDb(r, async (db) => {
        const n = await (await transfer()).exportTo(db, file, o)
        if (file !== undefined && file !== '-') r.out.result({ file, exported: n }, () => `exported ${n} keys to ${file}`)
      })
    })

  return program
}

/** Whether `--json` is among the global options (before any `--`). */
function wantsJson (argv: string[]): boolean {
  const end = argv.indexOf('--')
  return (end === -1 ? argv : argv.slice(0, end)).includes('--json')
}

/**
 * Parses and runs one command line (`argv` as in process.argv); resolves to the exit code.
 * `output` receives commander's own text (help, usage errors) instead of stdout/stderr.
 */
export async function run (argv: string[], output?: { writeOut: (s: string) => void, writeErr: (s: string) => void }): Promise<number> {
  const json = wantsJson(argv)
  const program = buildProgram({ json, output })
  try {
    await program.parseAsync(argv)
    return EXIT.OK
  } catch (err) {
    const e = describeError(err)
    if (err instanceof CommanderError && e.exitCode === EXIT.OK) return EXIT.OK
    if (json) process.stderr.write(JSON.stringify({ error: { code: e.code, message: e.message, exitCode: e.exitCode } }) + '\n')
    else if (!(err instanceof CommanderError)) process.stderr.write(`meshbee: ${e.code}: ${e.message}\n`)
    return e.exitCode
  }
}
