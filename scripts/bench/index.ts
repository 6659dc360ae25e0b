/**
 * npm run bench [-- --quick | --medium | --full] [--only local,converge,catchup,scale,sync,parts,viewstore,load,views,private,compact] [--rounds N]
 *
 * Runs every workload for meshbee and for its anchors (raw Hyperbee, classic-level, autobase),
 * alternating systems within each round, each trial in its own child process (fresh heap, its own
 * peak RSS, nothing warm from the previous trial). Prints a markdown report on stdout: medians,
 * ratios meshbee / anchor, the targets, the machine, versions and the exact command. A
 * progress bar runs on stderr.
 *
 * Workloads (sizes per preset in plan.ts):
 *   local     put one at a time, put in batches of 1,000, get random keys, full iteration (local.ts)
 *   converge  W writers write offline, then connect in a star; time to identical views (converge.ts)
 *   catchup   a peer away while 3 writers overwrite K keys many times; its catch-up (catchup.ts)
 *   scale     one fresh peer folds 16 and 64 writers' logs: time, peak RSS, disk (scale.ts)
 *   sync      write-to-visible latency over a hyperdht testnet (sync.ts, run as a child process)
 *   parts     a sadd to a 100,000-member set and a one-field patch of a 10,000-field document
 *             against the same writes to an empty set and a 3-field document, and the log bytes
 *             each appends (parts.ts); the merge core beside Yjs and Automerge on crdt-benchmarks'
 *             B3.1, 1,540 writers setting one map key (b3.ts); in the default set (about 2 minutes
 *             at the full preset, the sizes in every preset)
 *   viewstore the view-store candidates, classic-level, rocksdb-native and Hyperbee, loaded and read
 *             back (viewstore.ts, run as a child process); opt-in: only with --only viewstore
 *   load      replication and folds under load, one process per peer (load.ts, run as a child
 *             process): own-put latency idle and during a 50,000-entry remote catch-up, and
 *             replicas that connect during a 50,000-put burst; opt-in: only with --only load
 *   views     watch latency, the cost of indexes on puts, an indexed query against a scan, and
 *             full-text search beside minisearch (views.ts, a child process); opt-in: --only views
 *             (about 3-5 minutes; 10,000 entries in --quick)
 *   private   encrypted against plain: awaited puts, 4 writers' offline convergence, and pairing by
 *             invite on a testnet (private.ts, a child process); opt-in: --only private
 *   compact   3 writers × 1,000 keys × 100 overwrites, half the keys deleted: disk bytes of a
 *             compacted peer beside a fresh database of the live keys, an uncompacted peer and
 *             autobase; compact()'s time; puts and folds as shipped against `cutsEvery: 0`
 *             (compact.ts, a child process; 10 overwrites in --quick); opt-in: --only compact
 */
import { spawn } from 'node:child_process'
import { rmSync } from 'node:fs'
import { mkdtemp } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import cliProgress from 'cli-progress'
import { ROOT, machine, now, versions } from './common.js'
import { caseName, plan, type Plan, type Preset } from './plan.js'
import { report, type Trial } from './report.js'
import { RESULT_TAG, type Result, type Spec } from './types.js'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const CHILD = path.join(HERE, 'child.ts')
const SYNC = path.join(HERE, 'sync.ts')
const VIEWSTORE = path.join(HERE, 'viewstore.ts')
const LOAD = path.join(HERE, 'load.ts')
const VIEWS = path.join(HERE, 'views.ts')
const PRIVATE = path.join(HERE, 'private.ts')
const COMPACT = path.join(HERE, 'compact.ts')
const WORKLOADS = ['local', 'converge', 'catchup', 'scale', 'sync', 'parts', 'viewstore', 'load', 'views', 'private', 'compact'] as const
type Workload = (typeof WORKLOADS)[number]
/** What runs without --only: every workload but the view-store comparison, the load run, views, private and compact. */
const DEFAULT: readonly Workload[] = ['local', 'converge', 'catchup', 'scale', 'sync', 'parts']

interface Args { preset: Preset, only: Set<Workload>, rounds: number, argv: string[] }

function parseArgs (argv: string[]): Args {
  let preset: Preset = 'full'
  let only = new Set<Workload>(DEFAULT)
  let rounds = Infinity
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--quick' || a === '--medium' || a === '--full') preset = a.slice(2) as Preset
    else if (a === '--only') {
      const list = (argv[++i] ?? '').split(',').filter(Boolean)
      for (const w of list) if (!(WORKLOADS as readonly string[]).includes(w)) throw new Error(`unknown workload ${w}; one of ${WORKLOADS.join(', ')}`)
      only = new Set(list as Workload[])
    } else if (a === '--rounds') {
      rounds = Number(argv[++i])
      if (!Number.isSafeInteger(rounds) || rounds < 1) throw new Error('--rounds takes a whole number >= 1')
    } else if (a === '--help' || a === '-h') {
      process.stdout.write('npm run bench [-- --quick | --medium | --full] [--only ' + WORKLOADS.join(',') + ' (default: all but viewstore, load, views, private and compact)] [--rounds N (at most N rounds of each workload)]\n')
      process.exit(0)
    } else throw new Error(`unknown argument ${a}`)
  }
  return { preset, only, rounds, argv }
}

function label (spec: Spec): string {
  const p = spec.params as unknown as Record<string, number>
  switch (spec.workload) {
    case 'local': return `local ${spec.system}`
    case 'converge': return `converge ${caseName(spec.params)} ${spec.system}`
    case 'catchup': return `catch-up ${p.keys}x${p.overwrites} ${spec.system}`
    case 'scale-setup': return `scale setup ${p.writers}x${p.perWriter}`
    case 'scale-fold': return `scale fold ${p.writers} writers`
    case 'parts': return `parts ${p.members}-member set, ${p.fields}-field doc`
    case 'b3': return `B3.1 ${p.clients} writers ${spec.system}`
  }
}

/** Every trial's files live under this directory, removed at the end (even after a killed trial). */
let runDir = os.tmpdir()
/** The running trial's process group (children are detached so a timeout can end their group). */
let current: number | null = null

interface ChildRun { code: number | null, out: string, err: string, timedOut: boolean }

/** Runs node with `args` in its own process group (so a timeout ends it and all it started). */
async function spawnChild (args: string[], timeoutMs: number, env: NodeJS.ProcessEnv = process.env): Promise<ChildRun> {
  return await new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
    current = child.pid ?? null
    let out = ''
    let err = ''
    let timedOut = false
    child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d })
    child.stderr.setEncoding('utf8').on('data', (d: string) => { err = (err + d).slice(-4000) })
    const timer = setTimeout(() => {
      timedOut = true
      try { process.kill(-(child.pid as number), 'SIGKILL') } catch {}
    }, timeoutMs)
    child.on('close', (code) => {
      clearTimeout(timer)
      current = null
      resolve({ code, out, err, timedOut })
    })
  })
}

/** Runs one trial in a child process; resolves with its result, or a timeout/failure marker. */
async function runChild (spec: Spec, timeoutMs: number): Promise<Trial['result']> {
  const { code, out, err, timedOut } = await spawnChild([...process.execArgv, '--expose-gc', CHILD, JSON.stringify(spec)], timeoutMs, { ...process.env, BENCH_TMP: runDir })
  const line = out.split('\n').find((l) => l.startsWith(RESULT_TAG))
  if (timedOut) return { metrics: {}, timedOut: true, error: `over the ${timeoutMs / 1000} s limit` }
  if (code !== 0 || line === undefined) return { metrics: {}, error: `exit ${code}: ${err.trim().split('\n').slice(0, 3).join(' / ')}` }
  return JSON.parse(line.slice(RESULT_TAG.length)) as Result
}

/** Every trial of the run, in order: within a round each case runs every system, the order rotating. */
function schedule (p: Plan, only: Set<Workload>): Spec[] {
  const specs: Spec[] = []
  const rounds = Math.max(p.local.rounds, p.catchup.rounds, p.scaleRounds, p.parts.rounds, p.b3.rounds, ...p.converge.map((c) => c.rounds))
  const rotate = <T>(xs: T[], r: number): T[] => xs.map((_, i) => xs[(i + r) % xs.length])
  for (let round = 0; round < rounds; round++) {
    if (only.has('local') && round < p.local.rounds) {
      const { rounds: _, ...params } = p.local
      for (const system of rotate(['meshbee', 'hyperbee', 'classic-level'] as const, round)) specs.push({ workload: 'local', system, params, round })
    }
    if (only.has('converge')) {
      for (const c of p.converge) {
        if (round >= c.rounds) continue
        const params = { writers: c.writers, perWriter: c.perWriter }
        const systems = c.autobase ? rotate(['meshbee', 'autobase'] as const, round) : ['meshbee' as const]
        for (const system of systems) specs.push({ workload: 'converge', system, params, round })
      }
    }
    if (only.has('catchup') && round < p.catchup.rounds) {
      const { rounds: _, ...params } = p.catchup
      for (const system of rotate(['meshbee', 'autobase'] as const, round)) specs.push({ workload: 'catchup', system, params, round })
    }
    if (only.has('scale') && round < p.scaleRounds) {
      for (const s of p.scale) {
        // the logs are built once per size (round 0); each round folds them in a fresh process
        if (round === 0) specs.push({ workload: 'scale-setup', system: 'meshbee', params: { ...s, batch: 1000 }, round })
        specs.push({ workload: 'scale-fold', system: 'meshbee', params: { dir: '', key: '', writers: s.writers, ops: s.writers * s.perWriter, round }, round })
      }
    }
    if (only.has('parts')) {
      if (round < p.parts.rounds) {
        const { rounds: _, ...params } = p.parts
        specs.push({ workload: 'parts', system: 'meshbee', params, round })
      }
      if (round < p.b3.rounds) {
        const { rounds: _, ...params } = p.b3
        for (const system of rotate(['meshbee', 'yjs', 'automerge'] as const, round)) specs.push({ workload: 'b3', system, params, round })
      }
    }
  }
  return specs
}

/** sync.ts's N (measured writes per pipeline) per preset; its own default (300) in full. */
const SYNC_N: Record<Preset, string | null> = { quick: '30', medium: '100', full: null }
/** viewstore.ts's N (keys per store) per preset; its own default (100,000) otherwise. */
const VIEWSTORE_N: Record<Preset, string | null> = { quick: '20000', medium: null, full: null }
/** load.ts's N (entries caught up, puts in the burst) per preset; its own default (50,000) otherwise. */
const LOAD_N: Record<Preset, string | null> = { quick: '10000', medium: null, full: null }
const VIEWS_N: Record<Preset, string | null> = { quick: '10000', medium: null, full: null }

/** Runs one of the scripts that print their own markdown (sync.ts, viewstore.ts, load.ts) as a child process. */
async function runScript (script: string, n: string | null, bar: cliProgress.SingleBar, timeoutMs: number): Promise<string> {
  const rel = path.relative(ROOT, script).split(path.sep).join('/')
  bar.update({ trial: `${path.basename(script, '.ts')} (${rel})` })
  const cmd = `\`npx tsx ${rel}${n !== null ? ' ' + n : ''}\``
  const { code, out, err, timedOut } = await spawnChild([...process.execArgv, script, ...(n !== null ? [n] : [])], timeoutMs)
  if (code === 0) return `Output of ${cmd} (run by the runner as a child process, after the other workloads):\n\n${out.trim()}`
  if (timedOut) return `${cmd} did not finish within ${timeoutMs / 1000} s (killed).`
  const why = err.trim().split('\n').filter((l) => /Error|error|at when/.test(l)).slice(0, 3).join(' / ')
  return `${cmd} failed (exit ${code}): ${why !== '' ? why : err.trim().split('\n').slice(-3).join(' / ')}`
}

async function main (): Promise<void> {
  const args = parseArgs(process.argv.slice(2))
  const p = plan(args.preset)
  if (Number.isFinite(args.rounds)) {
    p.local.rounds = Math.min(p.local.rounds, args.rounds)
    p.catchup.rounds = Math.min(p.catchup.rounds, args.rounds)
    p.scaleRounds = Math.min(p.scaleRounds, args.rounds)
    p.parts.rounds = Math.min(p.parts.rounds, args.rounds)
    p.b3.rounds = Math.min(p.b3.rounds, args.rounds)
    for (const c of p.converge) c.rounds = Math.min(c.rounds, args.rounds)
  }
  const specs = schedule(p, args.only)
  const command = process.env.npm_lifecycle_event === 'bench'
    ? `npm run bench${args.argv.length > 0 ? ' -- ' + args.argv.join(' ') : ''}`
    : `npx tsx scripts/bench/index.ts ${args.argv.join(' ')}`.trim()
  runDir = await mkdtemp(path.join(os.tmpdir(), 'meshbee-bench-run-'))
  const removeRunDir = (): void => { rmSync(runDir, { recursive: true, force: true }) }
  process.on('SIGINT', () => {
    if (current !== null) try { process.kill(-current, 'SIGKILL') } catch {}
    removeRunDir()
    process.exit(130)
  })
  const started = new Date()
  const loads = [os.loadavg()[0]]
  const t0 = now()

  const bar = new cliProgress.SingleBar({
    stream: process.stderr,
    format: ' {bar} {value}/{total} trials | {duration_formatted} | {trial}',
    hideCursor: true,
    clearOnComplete: false,
    // without a terminal (a log file, CI), print the bar as a line every 10 s
    noTTYOutput: true,
    notTTYSchedule: 10_000
  }, cliProgress.Presets.shades_classic)
  bar.start(specs.length + (args.only.has('sync') ? 1 : 0) + (args.only.has('viewstore') ? 1 : 0) + (args.only.has('load') ? 1 : 0) + (args.only.has('views') ? 1 : 0) + (args.only.has('private') ? 1 : 0) + (args.only.has('compact') ? 1 : 0), 0, { trial: 'starting' })

  const trials: Trial[] = []
  const scaleDirs = new Map<number, { dir: string, key: string }>()
  for (const spec of specs) {
    if (spec.workload === 'scale-fold') {
      const setup = scaleDirs.get(spec.params.writers)
      if (setup === undefined) {
        trials.push({ spec, result: { metrics: {}, error: 'its setup failed' } })
        bar.increment()
        continue
      }
      spec.params.dir = setup.dir
      spec.params.key = setup.key
    }
    bar.update({ trial: label(spec) })
    loads.push(os.loadavg()[0])
    const t = now()
    const result = await runChild(spec, p.trialTimeoutMs)
    result.wallMs = now() - t
    if (spec.workload === 'scale-setup' && result.info?.dir !== undefined) {
      scaleDirs.set(spec.params.writers, { dir: result.info.dir, key: result.info.key })
    }
    trials.push({ spec, result })
    bar.increment()
  }
  removeRunDir()

  const sync = args.only.has('sync') ? await runScript(SYNC, SYNC_N[args.preset], bar, p.trialTimeoutMs) : null
  if (args.only.has('sync')) bar.increment()
  const viewstore = args.only.has('viewstore') ? await runScript(VIEWSTORE, VIEWSTORE_N[args.preset], bar, p.trialTimeoutMs) : null
  if (args.only.has('viewstore')) bar.increment()
  // its burst and catch-up take minutes at 50,000 entries, more under load than a trial's limit
  const underLoad = args.only.has('load') ? await runScript(LOAD, LOAD_N[args.preset], bar, Math.max(p.trialTimeoutMs, 1_200_000)) : null
  if (args.only.has('load')) bar.increment()
  const views = args.only.has('views') ? await runScript(VIEWS, VIEWS_N[args.preset], bar, Math.max(p.trialTimeoutMs, 1_200_000)) : null
  if (args.only.has('views')) bar.increment()
  const privateDbs = args.only.has('private') ? await runScript(PRIVATE, args.preset === 'quick' ? '300' : null, bar, Math.max(p.trialTimeoutMs, 1_200_000)) : null
  if (args.only.has('private')) bar.increment()
  // autobase's share alone takes minutes at the size; the whole script well over half an hour
  const compaction = args.only.has('compact') ? await runScript(COMPACT, args.preset === 'quick' ? '--quick' : null, bar, Math.max(p.trialTimeoutMs, 4 * 3_600_000)) : null
  if (args.only.has('compact')) bar.increment()
  bar.stop()

  process.stdout.write(report({
    plan: p,
    trials,
    sync,
    viewstore,
    underLoad,
    views,
    privateDbs,
    command,
    started,
    minutes: (now() - t0) / 60_000,
    machine: machine(),
    versions: versions(),
    load: [...loads, os.loadavg()[0]]
  }) + '\n')
  // compact.ts heads its own section; the report's measurements outside the default set are level 4
  if (compaction !== null) process.stdout.write('\n' + compaction.replace(/^### /m, '#### ') + '\n')
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
