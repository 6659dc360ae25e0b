/**
 * Shared pieces of the benchmark suite: seeded data, temp dirs, disk usage, waiting on a
 * condition with a fine clock, machine and version facts, and the untyped Holepunch modules.
 */
import { execFileSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { Session } from 'node:inspector/promises'
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { prng as mulberry32 } from '../prng.js'

export { mulberry32 }

// Corestore, Hyperbee and autobase ship no declarations that fit what the benchmark touches
// (autobase none at all): load them through require so they are `any` and tsc stays clean.
export const require = createRequire(import.meta.url)
/* eslint-disable @typescript-eslint/no-explicit-any */
export const Corestore: any = require('corestore')
export const Hyperbee: any = require('hyperbee')

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')

// ---------------------------------------------------------------- data


/** 0..n-1 in a seeded random order. */
export function permutation (n: number, seed: number): Uint32Array {
  const p = new Uint32Array(n)
  for (let i = 0; i < n; i++) p[i] = i
  const rnd = mulberry32(seed)
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1))
    const t = p[i]
    p[i] = p[j]
    p[j] = t
  }
  return p
}

/** A 16-byte key: a prefix letter and a zero-padded index. */
export function keyOf (prefix: string, i: number): string {
  return prefix + String(i).padStart(15, '0')
}

/** N keys of one prefix, in a seeded random order. */
export function randomKeys (prefix: string, n: number, seed: number): string[] {
  return Array.from(permutation(n, seed), (i) => keyOf(prefix, i))
}

export interface Value { id: number, owner: string, round: number, tags: string[], note: string }

/** A JSON value of about 100 bytes once stringified (about 100 B: 5-digit ids, rounds under 10). */
export function valueOf (i: number, owner = 'w0', round = 0): Value {
  return { id: i, owner, round, tags: ['bench', 'meshbee'], note: 'x'.repeat(38 - String(i).length) }
}

// ---------------------------------------------------------------- files

const made: string[] = []

/** A fresh directory under the run's directory (BENCH_TMP, set by the runner) or the system's. */
export async function tempDir (name: string): Promise<string> {
  const dir = await mkdtemp(path.join(process.env.BENCH_TMP ?? os.tmpdir(), `meshbee-bench-${name}-`))
  made.push(dir)
  return dir
}

export async function removeTempDirs (): Promise<void> {
  for (const dir of made.splice(0)) await rm(dir, { recursive: true, force: true })
}

/** Bytes of every file under `p` (apparent size, like `du -b`). */
export async function du (p: string): Promise<number> {
  let total = 0
  let entries
  try {
    entries = await readdir(p, { withFileTypes: true })
  } catch {
    return 0
  }
  for (const e of entries) {
    const full = path.join(p, e.name)
    if (e.isDirectory()) total += await du(full)
    else if (e.isFile()) total += (await stat(full)).size
  }
  return total
}

// ---------------------------------------------------------------- time

export const now = (): number => performance.now()

/** The median of a sample (the lower of the two middle values for an even count). */
export const lowerMedian = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor((s.length - 1) / 2)] as number }
/** The p-quantile of a sample (nearest rank). */
export const quantile = (xs: number[], p: number): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)] as number }
/** A progress line on stderr (stdout carries the report). */
export const progress = (s: string): void => { process.stderr.write(s + '\n') }

export const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/**
 * Resolves with the time (performance.now()) at which `check` first held. It is re-checked on
 * every event named in `wakeOn` and every `pollMs`; rejects after `timeoutMs`.
 */
export async function until (
  check: () => boolean | Promise<boolean>,
  opts: { wakeOn?: Array<{ on: (e: string, f: () => void) => unknown, off: (e: string, f: () => void) => unknown }>, event?: string, pollMs?: number, timeoutMs?: number, what?: () => string } = {}
): Promise<number> {
  const { wakeOn = [], event = 'update', pollMs = 5, timeoutMs = 600_000, what = () => 'condition' } = opts
  let wake: () => void = () => {}
  const onEvent = (): void => wake()
  for (const e of wakeOn) e.on(event, onEvent)
  const deadline = now() + timeoutMs
  try {
    while (true) {
      const woke = new Promise<void>((resolve) => { wake = resolve })
      if (await check()) return now()
      if (now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what()}`)
      let timer: NodeJS.Timeout | undefined
      await Promise.race([woke, new Promise<void>((resolve) => { timer = setTimeout(resolve, pollMs) })])
      clearTimeout(timer)
    }
  } finally {
    for (const e of wakeOn) e.off(event, onEvent)
  }
}

// ---------------------------------------------------------------- profiling

let session: Session | null = null

/**
 * With BENCH_CPU_PROF=<dir> in the environment, profiles the measured phase only (V8 sampling
 * profiler through node:inspector): profStart() before the clock starts, profStop(label) after it
 * stops writes <dir>/<label>-<pid>.cpuprofile. Summarize with scripts/bench/cpuprofile.ts.
 */
export async function profStart (): Promise<void> {
  if (process.env.BENCH_CPU_PROF === undefined || session !== null) return
  session = new Session()
  session.connect()
  await session.post('Profiler.enable')
  await session.post('Profiler.start')
}

export async function profStop (label: string): Promise<void> {
  if (session === null) return
  const { profile } = await session.post('Profiler.stop')
  writeFileSync(path.join(process.env.BENCH_CPU_PROF as string, `${label}-${process.pid}.cpuprofile`), JSON.stringify(profile))
  session.disconnect()
  session = null
}

// ---------------------------------------------------------------- replication

export { pipe } from '../link.js'

// ---------------------------------------------------------------- facts

export function machine (): string {
  const cpus = os.cpus()
  return `${cpus[0]?.model.trim() ?? 'unknown CPU'}, ${cpus.length} cores, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, ` +
    `${os.type()} ${os.release()}, Node ${process.version}`
}

function versionOf (pkg: string): string {
  const file = path.join(ROOT, 'node_modules', pkg, 'package.json')
  if (!existsSync(file)) return 'missing'
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version
}

export function versions (): string {
  const own = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version
  let commit = 'unknown'
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'lib', 'crdt', 'sync', 'index.ts'], { cwd: ROOT, encoding: 'utf8' }).trim()
    if (dirty !== '') commit += ' + uncommitted changes in lib/crdt/sync'
  } catch {}
  const pkgs = ['hypercore', 'hyperbee', 'corestore', 'autobase', 'classic-level', 'abstract-level', 'yjs', '@automerge/automerge']
  return `meshbee ${own} (git ${commit}), ` + pkgs.map((p) => `${p} ${versionOf(p)}`).join(', ')
}

export function peakRssMB (): number {
  return process.resourceUsage().maxRSS * 1024 / 1e6
}
