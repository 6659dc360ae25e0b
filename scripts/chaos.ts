/**
 * The chaos test from the command line (test/chaos.test.ts runs a bounded set of the same; the
 * harness is in scripts/chaos/).
 *
 *   npm run chaos -- --seed S                 replay one in-process schedule exactly, with its trace
 *   npm run chaos -- --procs --seed S         replay one multi-process schedule (same steps; kills
 *                                             land at real moments)
 *   npm run chaos -- --schedules N            run N schedules from a random start seed (printed)
 *   npm run chaos -- --schedules N --start S  … from seed S (seeds S, S+1, …)
 *   npm run chaos -- --file F.json            replay a saved schedule (test/regressions/chaos/)
 *
 * Options: --procs (the multi-process variant with SIGKILLs), --minutes M (start no schedule
 * after M minutes), --ops A-B and --peers A-B (generator bounds; a failure prints them in its
 * replay command), --classic (the earlier generator's schedules: no large writes, no mixed log
 * formats; see scripts/chaos/schedule.ts), --save DIR (write each failing schedule there as
 * JSON), --keep (keep a failed run's directories), --quiet (no line per schedule), --verbose
 * (trace every step), --help (this text). Exits 1 if any schedule failed.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { runInProcess } from './chaos/inproc.js'
import { runProcs } from './chaos/procs.js'
import { generate, scheduleToJson, type GenOptions, type Schedule } from './chaos/schedule.js'

const args = process.argv.slice(2)
function flag (name: string): boolean {
  return args.includes(name)
}
function option (name: string): string | undefined {
  const i = args.indexOf(name)
  return i >= 0 ? args[i + 1] : undefined
}
function range (name: string): [number, number] | undefined {
  const v = option(name)
  if (v === undefined) return undefined
  const m = /^(\d+)-(\d+)$/.exec(v)
  if (m === null) throw new Error(`${name} takes A-B, e.g. 20-40`)
  return [Number(m[1]), Number(m[2])]
}

const known = new Set(['--seed', '--schedules', '--start', '--file', '--procs', '--minutes', '--ops', '--peers', '--classic', '--save', '--keep', '--quiet', '--verbose', '--help'])
if (flag('--help')) {
  const text = await readFile(new URL(import.meta.url), 'utf8')
  console.log((/\/\*\*\n([\s\S]*?)\*\//.exec(text)?.[1] ?? '').replace(/^ \* ?/gm, '').trim())
  process.exit(0)
}
for (const a of args) {
  if (a.startsWith('--') && !known.has(a)) {
    console.error(`unknown option ${a}; see the comment at the top of scripts/chaos.ts`)
    process.exit(2)
  }
}

const procs = flag('--procs')
const ops = range('--ops')
const peers = range('--peers')
const gen: GenOptions = { variant: procs ? 'procs' : 'inproc' }
if (ops !== undefined) [gen.minOps, gen.maxOps] = ops
if (peers !== undefined) [gen.minPeers, gen.maxPeers] = peers
if (flag('--classic')) gen.classic = true
const verbose = flag('--verbose')
const quiet = flag('--quiet')
const keep = flag('--keep')
const save = option('--save')

let uncounted = 0
let uncountedEarly = 0

async function run (schedule: Schedule, trace: boolean): Promise<string | null> {
  const onTrace = trace ? (line: string) => { console.log('  ' + line) } : undefined
  try {
    if (schedule.variant === 'procs') {
      const r = await runProcs(schedule, { onTrace, keep })
      if (!quiet) console.log(`ok   seed ${schedule.seed} ${r.ms} ms, ${r.acked} acked, ${r.rejected} refused, ${r.kills} kills, ${r.inflight} in flight — ${r.summary}`)
    } else {
      const r = await runInProcess(schedule, { onTrace, keep })
      uncounted += r.uncounted
      uncountedEarly += r.uncountedEarly
      if (!quiet) console.log(`ok   seed ${schedule.seed} ${r.ms} ms, digest ${r.digest}, ${r.acked} acked, ${r.rejected} refused${r.uncounted > 0 ? `, ${r.uncounted} acked membership change(s) not counted by the replay` : ''}${r.handed > 0 ? `, ${r.handed} final-entry epoch(s) held by a non-member only through the key handed by hand` : ''}${r.held > 0 ? `, ${r.held} tombstone(s) held after one compaction round` : ''} — ${r.summary}`)
    }
    return null
  } catch (err) {
    const msg = (err as Error).message
    console.log(`FAIL seed ${schedule.seed}\n${msg}\n`)
    if (save !== undefined) {
      await mkdir(save, { recursive: true })
      const file = join(save, `${schedule.variant}-seed-${schedule.seed}.json`)
      await writeFile(file, scheduleToJson(schedule))
      console.log(`schedule saved to ${file}`)
    }
    return msg
  }
}

const started = Date.now()
const file = option('--file')
const seedArg = option('--seed')
const count = option('--schedules')
let failures: number[] = []
let ran = 0

if (file !== undefined) {
  const schedule = JSON.parse(await readFile(file, 'utf8')) as Schedule
  ran++
  if (await run(schedule, !quiet) !== null) failures.push(schedule.seed)
} else if (seedArg !== undefined) {
  const schedule = generate(Number(seedArg) >>> 0, gen)
  ran++
  if (await run(schedule, !quiet) !== null) failures.push(schedule.seed)
} else {
  const n = Number(count ?? 100)
  const start = option('--start') !== undefined ? Number(option('--start')) >>> 0 : Math.floor(Math.random() * 2 ** 32)
  const minutes = option('--minutes') !== undefined ? Number(option('--minutes')) : Infinity
  console.log(`chaos: ${n} ${procs ? 'multi-process' : 'in-process'} schedules from seed ${start}${Number.isFinite(minutes) ? `, for at most ${minutes} minutes` : ''}`)
  failures = []
  for (let i = 0; i < n; i++) {
    if (Date.now() - started > minutes * 60_000) {
      console.log(`time is up after ${ran} schedules`)
      break
    }
    const seed = (start + i) >>> 0
    ran++
    if (await run(generate(seed, gen), verbose) !== null) failures.push(seed)
  }
}

const secs = ((Date.now() - started) / 1000).toFixed(1)
console.log(`\n${ran} schedule(s) in ${secs} s, ${failures.length} failed${failures.length > 0 ? ': seeds ' + failures.join(', ') : ''}` +
  (uncounted > 0 ? `; ${uncounted} acknowledged membership change(s) were not counted by the stamp-ordered replay (${uncountedEarly} by authors never removed)` : ''))
process.exit(failures.length > 0 ? 1 : 0)
