/**
 * Chaos schedules: a seed determines everything a run does — how many peers, their clock skews,
 * which of them start as members, the topology style, and a list of steps (writes of every kind,
 * membership changes, links that come and go, one-way catch-ups, restarts, peers going down and
 * coming back, and in the multi-process variant SIGKILLs). The same seed gives the same schedule,
 * byte for byte: `npm run chaos -- --seed S` replays it.
 *
 * The key space is small (2 to 5 keys shared by every kind of write), so conflicts between
 * registers, documents and sets on the same key are the common case, not the exception.
 *
 * Extras, drawn from a second stream of the seed (so the steps drawn from the first are those of
 * every earlier generator): 40 % of the seeds get one or two large writes — 50 to 400 set adds
 * and removes, or document fields, on one of the shared keys in one append, inserted among the
 * steps — and half get mixed log formats: peers that write format 1 (as the release before
 * format 2 did) until their upgrade step (`legacyUntil`). Drawn after those: a quarter get a peer
 * whose clock runs a day ahead until a restart fixes it (`dayAhead`), and 30 % get view damage at
 * restarts (`damage`, scripts/chaos/damage.ts). Drawn last: 30 % are encrypted databases
 * (`encrypted`): peer 0 creates the database with `encrypted: true` and every other peer opens with
 * its encryption key (handed over by hand); the checks then expect the views, indexes and feeds
 * of the live writers only, and of the other peers (never added, or removed) that they hold every
 * member log whole and cannot read the entries written after the final sync (scripts/chaos/checks.ts).
 * Drawn after all of those: 85 % get compaction (`compaction`): every peer appends its stability
 * record every 1 to 50 ms (of real time) once its view read new data, some keep every log
 * block (`history: 'full'`), some compact on their own after folds (`autoCompact`), and `compact`
 * steps call `db.compact()` on a peer: at random, right before a peer restarts, goes down or is
 * killed, and right after a link or a one-way catch-up, often right after a delete by the same
 * peer (a tombstone to collect); with processes, some kills land inside a `compact()` (`mid-compact`).
 * `--classic` gives the earlier generator's schedule
 * for any seed, byte for byte (the schedule records it, and its replay command says so).
 */
import { createHash } from 'node:crypto'
import { VIEW_DAMAGES, type ViewDamage } from './damage.js'
import type { Json } from '../../crdt/json.js'
import { prng } from '../prng.js'

export { prng }

export type Rng = () => number
export const int = (rng: Rng, n: number): number => Math.floor(rng() * n)
export const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[int(rng, xs.length)] as T
const chance = (rng: Rng, p: number): boolean => rng() < p

export type BatchItem = { type: 'put', key: string, value: string } | { type: 'del', key: string }

/** One write a peer attempts. Targets of membership changes are peer indexes. */
export type ChaosOp =
  | { kind: 'put', key: string, value: string }
  | { kind: 'del', key: string }
  | { kind: 'batch', items: BatchItem[], chained: boolean }
  /** A field given as `[name]` alone is deleted (patched to undefined). */
  | { kind: 'patch', key: string, fields: Array<[string] | [string, Json]> }
  | { kind: 'sadd', key: string, member: Json }
  | { kind: 'srem', key: string, member: Json }
  | { kind: 'add-writer', target: number }
  | { kind: 'remove-writer', target: number }
  /** Data writes of every kind in one `db.write` (one atomic append). */
  | { kind: 'write', items: ChaosOp[] }

/**
 * One step. `dt` is how far (ms) the shared virtual clock moves before the step; each peer reads
 * it plus its own skew.
 */
export type Step = { dt: number } & (
  | { t: 'op', peer: number, op: ChaosOp }
  | { t: 'link', a: number, b: number }
  | { t: 'unlink', a: number, b: number }
  /** `to` catches up on every log `from` holds at least as long as it does; `from` learns nothing. */
  | { t: 'oneway', from: number, to: number }
  /**
   * Close and reopen on the same directory; `skew` is the clock after the restart (a jump).
   * `damage`: what is done to the closed peer's view before it reopens (scripts/chaos/damage.ts).
   */
  | { t: 'restart', peer: number, relink: boolean, skew: number, damage?: ViewDamage }
  | { t: 'down', peer: number }
  | { t: 'up', peer: number, relink: boolean }
  /** Multi-process only: SIGKILL the peer's process `delay` after the step starts (see procs.ts). */
  | { t: 'kill', peer: number, when: KillPoint, delay: number }
  /** Multi-process only: several ops of one peer sent without waiting, so a kill can land among them. */
  | { t: 'burst', peer: number, ops: ChaosOp[] }
  /** `db.compact()` on a peer (schedules with `compaction`). */
  | { t: 'compact', peer: number }
)

/**
 * Where a kill lands in the multi-process variant. 'mid-compact': `delay` ms after the peer
 * started a `db.compact()` (schedules with `compaction`).
 */
export type KillPoint = 'mid-write' | 'mid-fold' | 'mid-open' | 'idle' | 'mid-compact'

export type Style = 'random' | 'chain' | 'partition' | 'star' | 'ring'

export interface Schedule {
  seed: number
  variant: 'inproc' | 'procs'
  peers: number
  keys: string[]
  /** Per-peer clock skew in ms at the start. */
  skews: number[]
  /** Peers the creator (peer 0) adds before the schedule starts. */
  initialMembers: number[]
  style: Style
  /** Links the style allows; the final sync uses `final`, a connected subset of them. */
  allowed: Array<[number, number]>
  steps: Step[]
  final: Array<[number, number]>
  /** The generator's bounds this schedule was drawn with (part of its replay command). */
  gen: Required<Omit<GenOptions, 'variant' | 'classic'>>
  /**
   * Every peer's `sparseAfter` (how far behind a remote log must be for a sparse catch-up). Small
   * values make the short logs of a schedule take the sparse path. Older saved schedules lack
   * it: the default then.
   */
  sparseAfter?: number
  /**
   * Mixed log formats: per peer, the index of the first step at which it writes the current log
   * format (called 2 here: documents and sets in parts); before it, the peer writes format 1
   * (`db.engine.testHooks.format = 1`), as the release before format 2 did. 0: the current format
   * from the start; `steps.length`: format 1 throughout. Older saved schedules lack it: the
   * current format everywhere.
   */
  legacyUntil?: number[]
  /** Indexes of the steps holding large writes (for the summary only). */
  large?: number[]
  /** Drawn without the extras (`--classic`): the earlier generator's schedule. */
  classic?: true
  /**
   * A peer whose clock starts a day ahead (its skew includes DAY) until a restart fixes it (the
   * restart's skew has no DAY). Older saved schedules lack it.
   */
  dayAhead?: number
  /**
   * An encrypted database: peer 0 creates it with `encrypted: true`, every other peer opens with
   * its `encryptionKey`. Older saved schedules lack it: a plain database.
   */
  encrypted?: true
  /**
   * Compaction: each peer's options (the `compact` steps are among `steps`). Older saved
   * schedules lack it: every peer opens with the defaults (a record every 30 s of its clock).
   */
  compaction?: Compaction
}

/** Per peer (by index): the compaction options it opens with. */
export interface Compaction {
  /** ms between its automatic stability records (the `cutsEvery` option). */
  cutsEvery: number[]
  /** 'full': it never clears a log block; 'live': `compact()` may. */
  history: Array<'full' | 'live'>
  /** ms between its automatic compactions after folds (`autoCompact`); 0: none. */
  autoCompact: number[]
}

/** The options a peer opens with in a schedule with compaction (none: the defaults). */
export function compactionOptions (s: Schedule, peer: number): { cutsEvery?: number, history?: 'full' | 'live', autoCompact?: number | false } {
  const c = s.compaction
  if (c === undefined) return {}
  const auto = c.autoCompact[peer] ?? 0
  return { cutsEvery: c.cutsEvery[peer], history: c.history[peer], autoCompact: auto > 0 ? auto : false }
}

/** The log format `peer` writes during step `step` (see {@link Schedule.legacyUntil}). */
export function formatAt (s: Schedule, peer: number, step: number): 1 | 2 {
  return (s.legacyUntil?.[peer] ?? 0) > step ? 1 : 2
}

/** Chosen by the seed, not the generator's random stream, so older seeds keep their steps. */
const SPARSE_AFTER = [2, 8, 256]

/** The virtual epoch; the clock only moves by the steps' `dt`. */
export const EPOCH = 1_700_000_000_000

const FIELDS = ['a', 'b', 'c', 'd']
const MEMBERS: Json[] = ['m0', 'm1', 'm2', 3, { x: 1, y: 2 }]

function skew (rng: Rng): number {
  const r = rng()
  if (r < 0.3) return 0
  if (r < 0.55) return int(rng, 4000) - 2000 // a few seconds either way
  if (r < 0.8) return (int(rng, 10) + 1) * 60_000 * (chance(rng, 0.5) ? 1 : -1) // minutes ahead or behind
  return int(rng, 120_000) - 60_000 // around maxDrift
}

function value (rng: Rng, tag: string): string {
  const r = rng()
  if (r < 0.45) {
    const o: Record<string, Json> = { t: tag }
    for (const f of FIELDS) if (chance(rng, 0.4)) o[f] = int(rng, 10)
    // object keys in a random order: documents must render canonically whatever order they came in
    const keys = Object.keys(o).sort(() => rng() - 0.5)
    return JSON.stringify(Object.fromEntries(keys.map((k) => [k, o[k] as Json])))
  }
  if (r < 0.55) return JSON.stringify([tag, int(rng, 5)])
  if (r < 0.6) return ''
  return tag
}

function fieldValue (rng: Rng, tag: string): Json {
  switch (int(rng, 5)) {
    case 0: return int(rng, 100)
    case 1: return tag
    case 2: return null
    case 3: return { at: tag, n: [int(rng, 9), 'y'] }
    default: return chance(rng, 0.5)
  }
}

function member (rng: Rng): Json {
  const m = pick(rng, MEMBERS)
  // the same object member, its keys in either order: a set holds it once
  if (typeof m === 'object' && m !== null && chance(rng, 0.5)) return { y: 2, x: 1 }
  return m
}

export function genOp (rng: Rng, keys: string[], peers: number, self: number, tag: string): ChaosOp {
  const key = pick(rng, keys)
  const r = rng()
  if (r < 0.2) return { kind: 'put', key, value: value(rng, tag) }
  if (r < 0.28) return { kind: 'del', key }
  if (r >= 0.34 && r < 0.38) {
    const items: ChaosOp[] = []
    const n = 2 + int(rng, 4)
    for (let i = 0; i < n; i++) items.push(genDataOp(rng, keys, `${tag}.${i}`))
    return { kind: 'write', items }
  }
  if (r < 0.38) {
    const items: BatchItem[] = []
    const n = 2 + int(rng, 4)
    for (let i = 0; i < n; i++) {
      const k = pick(rng, keys)
      items.push(chance(rng, 0.75) ? { type: 'put', key: k, value: value(rng, `${tag}.${i}`) } : { type: 'del', key: k })
    }
    return { kind: 'batch', items, chained: chance(rng, 0.5) }
  }
  if (r < 0.6) {
    const fields: Array<[string] | [string, Json]> = []
    for (const f of FIELDS) if (chance(rng, 0.35)) fields.push(chance(rng, 0.2) ? [f] : [f, fieldValue(rng, tag)])
    if (fields.length === 0) fields.push([pick(rng, FIELDS), tag])
    return { kind: 'patch', key, fields }
  }
  if (r < 0.78) return { kind: 'sadd', key, member: member(rng) }
  if (r < 0.9) return { kind: 'srem', key, member: member(rng) }
  if (r < 0.97 || peers < 3) return { kind: 'add-writer', target: int(rng, peers) }
  // rare: removals are final, and a removed peer never writes again
  const others = [...Array(peers).keys()].filter((p) => p !== self)
  return { kind: 'remove-writer', target: chance(rng, 0.1) ? self : pick(rng, others) }
}

/** A data write (put, del, patch, sadd or srem), for the items of a `write`. */
function genDataOp (rng: Rng, keys: string[], tag: string): ChaosOp {
  while (true) {
    const op = genOp(rng, keys, 3, 0, tag)
    if (op.kind === 'put' || op.kind === 'del' || op.kind === 'patch' || op.kind === 'sadd' || op.kind === 'srem') return op
  }
}

function allowedLinks (rng: Rng, style: Style, n: number): Array<[number, number]> {
  const out: Array<[number, number]> = []
  switch (style) {
    case 'random':
      for (let a = 0; a < n; a++) for (let b = a + 1; b < n; b++) out.push([a, b])
      break
    case 'chain': // A–B–C…: neighbours only, so the ends never meet directly
      for (let a = 0; a + 1 < n; a++) out.push([a, a + 1])
      break
    case 'ring':
      for (let a = 0; a < n; a++) out.push([Math.min(a, (a + 1) % n), Math.max(a, (a + 1) % n)])
      break
    case 'star': {
      const hub = int(rng, n)
      for (let a = 0; a < n; a++) if (a !== hub) out.push([Math.min(a, hub), Math.max(a, hub)])
      break
    }
    case 'partition': { // two groups that only meet through one bridge, and only at the end
      for (let a = 0; a < n; a++) for (let b = a + 1; b < n; b++) if ((a % 2) === (b % 2)) out.push([a, b])
      break
    }
  }
  return dedupe(out)
}

function dedupe (links: Array<[number, number]>): Array<[number, number]> {
  const seen = new Set<string>()
  return links.filter(([a, b]) => a !== b && !seen.has(`${a},${b}`) && seen.add(`${a},${b}`) !== undefined)
}

/** A connected set of links over all peers, made of allowed links (plus a bridge for partitions). */
function finalLinks (rng: Rng, style: Style, n: number, allowed: Array<[number, number]>): Array<[number, number]> {
  if (n === 1) return []
  if (style === 'partition') {
    const bridge: [number, number] = [0, 1]
    return dedupe([...allowed, bridge])
  }
  if (style === 'random') {
    // a random spanning tree, plus some extra edges
    const order = [...Array(n).keys()].sort(() => rng() - 0.5)
    const out: Array<[number, number]> = []
    for (let i = 1; i < n; i++) {
      const a = order[i] as number
      const b = order[int(rng, i)] as number
      out.push([Math.min(a, b), Math.max(a, b)])
    }
    for (const l of allowed) if (chance(rng, 0.2)) out.push(l)
    return dedupe(out)
  }
  return allowed
}

export interface GenOptions {
  variant?: 'inproc' | 'procs'
  /** Bounds on the number of writes attempted (ops plus bursts). */
  minOps?: number
  maxOps?: number
  /** Bounds on the number of peers. */
  minPeers?: number
  maxPeers?: number
  /** The earlier generator's schedule: no large writes, no mixed formats (see the top of the file). */
  classic?: boolean
}

/** The generator's bounds when none are given: small schedules; fewer, smaller ones with processes. */
export const DEFAULTS = {
  inproc: { minOps: 20, maxOps: 40, minPeers: 2, maxPeers: 7 },
  procs: { minOps: 10, maxOps: 18, minPeers: 2, maxPeers: 4 }
} as const

/** The command that replays a schedule: its seed, variant and any bounds other than the defaults. */
export function replayCommand (s: Schedule): string {
  const d = DEFAULTS[s.variant]
  const flags = [s.variant === 'procs' ? '--procs' : '', `--seed ${s.seed}`]
  if (s.gen.minOps !== d.minOps || s.gen.maxOps !== d.maxOps) flags.push(`--ops ${s.gen.minOps}-${s.gen.maxOps}`)
  if (s.gen.minPeers !== d.minPeers || s.gen.maxPeers !== d.maxPeers) flags.push(`--peers ${s.gen.minPeers}-${s.gen.maxPeers}`)
  if (s.classic === true) flags.push('--classic')
  return `npm run chaos -- ${flags.filter((f) => f !== '').join(' ')}`
}

/** The schedule of a seed. Everything random comes from the seed. */
export function generate (seed: number, opts: GenOptions = {}): Schedule {
  const variant = opts.variant ?? 'inproc'
  const rng = prng(seed)
  const defaults = DEFAULTS[variant]
  const minPeers = opts.minPeers ?? defaults.minPeers
  const maxPeers = opts.maxPeers ?? defaults.maxPeers
  // small schedules are the common case: most bugs need few peers, and they run fast
  const sizes = [2, 2, 3, 3, 3, 4, 4, 5, 6, 7].filter((s) => s >= minPeers && s <= maxPeers)
  const peers = sizes.length > 0 ? pick(rng, sizes) : minPeers
  const nkeys = 2 + int(rng, 4)
  const keys = ['k0', 'k1', 'k2', 'k3', 'k4'].slice(0, nkeys)
  const skews0 = [...Array(peers)].map(() => skew(rng))
  const skews = [...skews0]
  const initialMembers = [...Array(peers).keys()].slice(1).filter(() => chance(rng, 0.75))
  const style = pick(rng, ['random', 'random', 'chain', 'partition', 'star', 'ring'] as const)
  const allowed = allowedLinks(rng, style, peers)
  const minOps = opts.minOps ?? defaults.minOps
  const maxOps = opts.maxOps ?? defaults.maxOps
  const nops = minOps + int(rng, maxOps - minOps + 1)

  const steps: Step[] = []
  const links = new Set<string>()
  const down = new Set<number>()
  let ops = 0
  let n = 0
  const dt = (): number => chance(rng, 0.3) ? 0 : int(rng, 3000)
  while (ops < nops) {
    n++
    const r = rng()
    const peer = int(rng, peers)
    if (r < 0.62) {
      if (down.has(peer)) continue
      steps.push({ dt: dt(), t: 'op', peer, op: genOp(rng, keys, peers, peer, `p${peer}.${n}`) })
      ops++
    } else if (r < 0.74) {
      if (allowed.length === 0) continue
      const [a, b] = pick(rng, allowed)
      const id = `${a},${b}`
      if (down.has(a) || down.has(b)) continue
      if (links.has(id)) {
        links.delete(id)
        steps.push({ dt: dt(), t: 'unlink', a, b })
      } else {
        links.add(id)
        steps.push({ dt: dt(), t: 'link', a, b })
      }
    } else if (r < 0.82) {
      if (allowed.length === 0) continue
      const [a, b] = pick(rng, allowed)
      if (down.has(a) || down.has(b)) continue
      const [from, to] = chance(rng, 0.5) ? [a, b] : [b, a]
      steps.push({ dt: dt(), t: 'oneway', from, to })
    } else if (r < 0.87) {
      // a link to a peer that goes down is gone; a relinked peer gets its allowed links back
      for (const id of [...links]) if (id.split(',').map(Number).includes(peer)) links.delete(id)
      if (down.has(peer)) {
        down.delete(peer)
        const relink = chance(rng, 0.5)
        if (relink) for (const [a, b] of allowed) if ((a === peer || b === peer) && !down.has(a) && !down.has(b)) links.add(`${a},${b}`)
        steps.push({ dt: dt(), t: 'up', peer, relink })
      } else if (chance(rng, 0.4) && down.size + 1 < peers) {
        down.add(peer)
        steps.push({ dt: dt(), t: 'down', peer })
      } else {
        const relink = chance(rng, 0.5)
        if (relink) for (const [a, b] of allowed) if ((a === peer || b === peer) && !down.has(a) && !down.has(b)) links.add(`${a},${b}`)
        const jump = chance(rng, 0.3) ? skew(rng) : (skews[peer] as number)
        skews[peer] = jump
        steps.push({ dt: dt(), t: 'restart', peer, relink, skew: jump })
      }
    } else if (variant === 'procs' && r < 0.95) {
      if (down.has(peer)) continue
      for (const id of [...links]) if (id.split(',').map(Number).includes(peer)) links.delete(id)
      const when = pick(rng, ['mid-write', 'mid-write', 'mid-fold', 'mid-fold', 'mid-open', 'idle'] as const)
      if (when === 'mid-write') {
        const burst: ChaosOp[] = []
        const k = 1 + int(rng, 4)
        for (let i = 0; i < k; i++) burst.push(genOp(rng, keys, peers, peer, `p${peer}.${n}.${i}`))
        steps.push({ dt: dt(), t: 'burst', peer, ops: burst })
        ops += k
      }
      steps.push({ dt: 0, t: 'kill', peer, when, delay: int(rng, 12) })
    } else {
      // time passes: a write after a long pause (up to two minutes of virtual time)
      if (down.has(peer)) continue
      steps.push({ dt: int(rng, 120_000), t: 'op', peer, op: genOp(rng, keys, peers, peer, `p${peer}.${n}`) })
      ops++
    }
  }
  const schedule: Schedule = { seed, variant, peers, keys, skews: skews0, initialMembers, style, allowed, steps, final: finalLinks(rng, style, peers, allowed), gen: { minOps, maxOps, minPeers, maxPeers }, sparseAfter: SPARSE_AFTER[seed % SPARSE_AFTER.length] }
  if (opts.classic !== true) addExtras(schedule)
  else schedule.classic = true
  return schedule
}

/** The second stream of a seed: the extras (a hash, so that it shares no state with the first). */
function extrasRng (seed: number): Rng {
  return prng(createHash('sha256').update(`meshbee-chaos-extras/${seed}`).digest().readUInt32LE(0))
}

const LARGE_P = 0.4
const MIXED_P = 0.5
/** How often a schedule has a peer a day ahead, and view damage at restarts. */
const AHEAD_P = 0.25
const DAMAGE_P = 0.3
/** How often a schedule runs an encrypted database. */
const ENCRYPTED_P = 0.3
/** How often a schedule has compaction. */
const COMPACT_P = 0.85
export const DAY = 24 * 60 * 60 * 1000

/** A member of the large sets: mostly strings, some numbers and objects, now and then a small op's member. */
function largeMember (x: Rng): Json {
  if (chance(x, 0.05)) return pick(x, MEMBERS)
  const j = int(x, 500)
  if (j % 7 === 0) return { L: j }
  if (j % 5 === 0) return j
  return `L${j}`
}

function largeFieldValue (x: Rng, tag: string, i: number): Json {
  switch (int(x, 4)) {
    case 0: return int(x, 1000)
    case 1: return `${tag}.${i}`
    case 2: return { at: tag, i }
    default: return chance(x, 0.5)
  }
}

/** `n` distinct field names: mostly of a large pool, now and then a small op's field. */
function largeFields (x: Rng, n: number, tag: string): Array<[string] | [string, Json]> {
  const names = new Set<string>()
  while (names.size < n) names.add(chance(x, 0.03) ? pick(x, FIELDS) : `f${String(int(x, 500)).padStart(3, '0')}`)
  return [...names].map((name, i) => chance(x, 0.1) ? [name] : [name, largeFieldValue(x, tag, i)])
}

/**
 * A large write on one key: 50 to 400 set adds and removes in one `write` (mostly adds, or mostly
 * removes), a patch of as many fields, or a `write` mixing patches, adds and removes with one
 * whole-value put or del of the same key among them.
 */
export function largeOp (x: Rng, keys: string[], tag: string): ChaosOp {
  const key = pick(x, keys)
  const n = 50 + Math.floor(351 * x() ** 2) // 50 to 400, mostly the smaller sizes (they replicate faster)
  const r = x()
  if (r < 0.6) {
    const adds = r < 0.35 ? 0.8 : 0.2
    const items: ChaosOp[] = []
    for (let i = 0; i < n; i++) items.push({ kind: chance(x, adds) ? 'sadd' : 'srem', key, member: largeMember(x) })
    return { kind: 'write', items }
  }
  if (r < 0.9) return { kind: 'patch', key, fields: largeFields(x, n, tag) }
  const items: ChaosOp[] = []
  const whole = int(x, n)
  for (let i = 0; i < n; i++) {
    if (i === whole) items.push(chance(x, 0.7) ? { kind: 'put', key, value: value(x, `${tag}.${i}`) } : { kind: 'del', key })
    else if (chance(x, 0.4)) items.push({ kind: 'patch', key, fields: largeFields(x, 1 + int(x, 4), `${tag}.${i}`) })
    else items.push({ kind: chance(x, 0.7) ? 'sadd' : 'srem', key, member: largeMember(x) })
  }
  return { kind: 'write', items }
}

/** Which peers are down before each step (as the runners see it: down until up). */
function downBefore (s: Schedule): Array<Set<number>> {
  const down = new Set<number>()
  const out: Array<Set<number>> = []
  for (const step of s.steps) {
    out.push(new Set(down))
    if (step.t === 'down') down.add(step.peer)
    if (step.t === 'up') down.delete(step.peer)
  }
  out.push(new Set(down))
  return out
}

/** Adds the seed's extras to a schedule drawn by the first stream (see the top of the file). */
function addExtras (s: Schedule): void {
  const x = extrasRng(s.seed)
  const large = x() < LARGE_P
  const mixed = x() < MIXED_P
  if (large) {
    const count = 1 + int(x, 2)
    const at: number[] = []
    for (let i = 0; i < count; i++) {
      const down = downBefore(s)
      const pos = int(x, s.steps.length + 1)
      const up = [...Array(s.peers).keys()].filter((p) => !(down[pos] as Set<number>).has(p))
      const peer = pick(x, up)
      const op = largeOp(x, s.keys, `p${peer}.L${i}`)
      const dt = chance(x, 0.3) ? 0 : int(x, 3000)
      const added: Step[] = s.variant === 'procs' && chance(x, 0.5)
        ? [{ dt, t: 'burst', peer, ops: [op] }, { dt: 0, t: 'kill', peer, when: 'mid-write', delay: int(x, 12) }]
        : [{ dt, t: 'op', peer, op }]
      s.steps.splice(pos, 0, ...added)
      for (let j = 0; j < at.length; j++) if ((at[j] as number) >= pos) at[j] = (at[j] as number) + added.length
      at.push(pos)
    }
    s.large = at.sort((a, b) => a - b)
  }
  if (mixed) {
    const n = s.steps.length
    const until = [...Array(s.peers)].map((): number => {
      const r = x()
      if (r < 0.35) return 0
      if (r < 0.85) return 1 + int(x, n)
      return n
    })
    if (!until.some((u) => u > 0)) until[int(x, s.peers)] = 1 + int(x, n)
    s.legacyUntil = until
  }
  // drawn after the extras above, so a seed's large writes and formats stay what they were
  const ahead = x() < AHEAD_P
  const damaged = x() < DAMAGE_P
  if (ahead) {
    // a day ahead from the start, until its first restart (restarts carry their own skews); one
    // at a random step if it has none (a no-op if the peer is down then)
    const peer = int(x, s.peers)
    const fixed = s.skews[peer] as number
    s.skews[peer] = fixed + DAY
    s.dayAhead = peer
    const pos = int(x, s.steps.length + 1)
    if (!s.steps.some((st) => st.t === 'restart' && st.peer === peer)) {
      s.steps.splice(pos, 0, { dt: int(x, 3000), t: 'restart', peer, relink: true, skew: fixed })
      shiftIndexes(s, pos, 1)
    }
  }
  if (damaged) {
    if (!s.steps.some((st) => st.t === 'restart')) {
      const pos = int(x, s.steps.length + 1)
      const peer = int(x, s.peers)
      s.steps.splice(pos, 0, { dt: int(x, 3000), t: 'restart', peer, relink: true, skew: s.skews[peer] as number })
      shiftIndexes(s, pos, 1)
    }
    let any = false
    for (const st of s.steps) {
      if (st.t === 'restart' && chance(x, 0.6)) {
        st.damage = pick(x, VIEW_DAMAGES)
        any = true
      }
    }
    if (!any) {
      const st = s.steps.find((x2) => x2.t === 'restart') as Extract<Step, { t: 'restart' }>
      st.damage = pick(x, VIEW_DAMAGES)
    }
  }
  // drawn after every extra above, so a seed's other extras stay what they were
  if (x() < ENCRYPTED_P) s.encrypted = true
  // drawn after every extra above too
  if (x() < COMPACT_P) addCompaction(s, x)
}

/**
 * Compaction (see the top of the file): each peer's options, then `compact` steps — about one in
 * eight to one in four steps — and with processes one or two kills inside a `compact()`.
 */
function addCompaction (s: Schedule, x: Rng): void {
  const peers = [...Array(s.peers).keys()]
  s.compaction = {
    cutsEvery: peers.map(() => 1 + int(x, 50)),
    history: peers.map(() => chance(x, 0.25) ? 'full' : 'live'),
    // (the database counts both intervals in real time, whatever its wall clock)
    autoCompact: peers.map(() => chance(x, 0.3) ? 20 + int(x, 1000) : 0)
  }
  const insert = (pos: number, step: Step): void => {
    s.steps.splice(pos, 0, step)
    shiftIndexes(s, pos, 1)
  }
  /** A `compact` step, often right after a delete by the same peer: a tombstone to collect. */
  const compactAt = (pos: number, peer: number, dt: number): void => {
    if (chance(x, 0.4)) {
      insert(pos, { dt, t: 'op', peer, op: { kind: 'del', key: pick(x, s.keys) } })
      insert(pos + 1, { dt: 0, t: 'compact', peer })
    } else insert(pos, { dt, t: 'compact', peer })
  }
  const n = Math.max(1, Math.round(s.steps.length * (0.12 + 0.13 * x())))
  for (let i = 0; i < n; i++) {
    const r = x()
    const down = downBefore(s)
    const up = (pos: number): number[] => peers.filter((p) => !(down[pos] as Set<number>).has(p))
    if (r < 0.35) {
      // right before a peer restarts, goes down or is killed: the compaction's state must survive it
      const at = s.steps.flatMap((st, j) => st.t === 'restart' || st.t === 'down' || st.t === 'kill' ? [j] : [])
      if (at.length > 0) {
        const j = pick(x, at)
        const st = s.steps[j] as Extract<Step, { peer: number }>
        // (a kill after a burst: before the burst, so the kill still follows its burst)
        const pos = st.t === 'kill' && j > 0 && s.steps[j - 1]?.t === 'burst' ? j - 1 : j
        compactAt(pos, st.peer, int(x, 3000))
        continue
      }
    } else if (r < 0.55) {
      // right after a link or a one-way catch-up: between syncs, with what it just brought in
      const at = s.steps.flatMap((st, j) => st.t === 'link' || st.t === 'oneway' ? [j] : [])
      if (at.length > 0) {
        const j = pick(x, at)
        const st = s.steps[j] as Extract<Step, { t: 'link' | 'oneway' }>
        const peer = st.t === 'link' ? (chance(x, 0.5) ? st.a : st.b) : (chance(x, 0.5) ? st.from : st.to)
        compactAt(j + 1, peer, chance(x, 0.5) ? 0 : int(x, 3000))
        continue
      }
    }
    const pos = int(x, s.steps.length + 1)
    // (not between a burst and its kill)
    if (pos > 0 && s.steps[pos - 1]?.t === 'burst') continue
    compactAt(pos, pick(x, up(pos)), chance(x, 0.3) ? 0 : int(x, 3000))
  }
  if (s.variant === 'procs') {
    const kills = chance(x, 0.7) ? 1 + int(x, 2) : 0
    for (let i = 0; i < kills; i++) {
      const down = downBefore(s)
      let pos = int(x, s.steps.length + 1)
      if (pos > 0 && s.steps[pos - 1]?.t === 'burst') pos--
      const up = peers.filter((p) => !(down[pos] as Set<number>).has(p))
      insert(pos, { dt: int(x, 3000), t: 'kill', peer: pick(x, up), when: 'mid-compact', delay: int(x, 40) })
    }
  }
}

/** Moves the step indexes a schedule records (large writes, format switches) past an insertion. */
function shiftIndexes (s: Schedule, pos: number, by: number): void {
  if (by === 0) return
  if (s.large !== undefined) s.large = s.large.map((i) => i >= pos ? i + by : i)
  // a peer's first current-format step moves with the steps; 0 (from the start) stays 0
  if (s.legacyUntil !== undefined) s.legacyUntil = s.legacyUntil.map((i) => i > pos ? i + by : i)
}

/** A one-line summary of a schedule, for logs. */
export function describeSchedule (s: Schedule): string {
  const count = (t: Step['t']): number => s.steps.filter((x) => x.t === t).length
  return `seed ${s.seed} (${s.variant}): ${s.peers} peers, ${s.keys.length} keys, style ${s.style}, ` +
    `skews [${s.skews.map((x) => Math.round(x / 1000) + 's').join(' ')}], members at start [0${s.initialMembers.map((m) => ',' + m).join('')}], ` +
    `${count('op')} ops, ${count('link')}/${count('unlink')} link/unlink, ${count('oneway')} one-way, ${count('restart')} restarts, ` +
    `${count('down')} down, ${count('kill')} kills, sparse after ${s.sparseAfter ?? 'default'}` +
    (s.large !== undefined ? `, large writes at steps [${s.large.join(' ')}]` : '') +
    (s.legacyUntil !== undefined ? `, format 1 until steps [${s.legacyUntil.join(' ')}]` : '') +
    (s.dayAhead !== undefined ? `, p${s.dayAhead} a day ahead until restarted` : '') +
    (s.steps.some((x) => x.t === 'restart' && x.damage !== undefined) ? `, view damage [${s.steps.flatMap((x) => x.t === 'restart' && x.damage !== undefined ? [x.damage] : []).join(' ')}]` : '') +
    (s.encrypted === true ? ', encrypted' : '') +
    (s.compaction !== undefined ? `, compaction: ${count('compact')} compacts, records every [${s.compaction.cutsEvery.join(' ')}] ms` +
      `${s.compaction.history.includes('full') ? `, full history on [${s.compaction.history.flatMap((h, i) => h === 'full' ? [`p${i}`] : []).join(' ')}]` : ''}` +
      `${s.compaction.autoCompact.some((a) => a > 0) ? `, auto-compact [${s.compaction.autoCompact.flatMap((a, i) => a > 0 ? [`p${i}=${a}ms`] : []).join(' ')}]` : ''}` +
      `${s.steps.some((x) => x.t === 'kill' && x.when === 'mid-compact') ? `, ${s.steps.filter((x) => x.t === 'kill' && x.when === 'mid-compact').length} kills mid-compact` : ''}`
      : '')
}

/** A schedule as JSON, one step a line (the form test/regressions/chaos/ keeps them in). */
export function scheduleToJson (s: Schedule): string {
  const { steps, ...rest } = s
  const head = Object.entries(rest).map(([k, v]) => `  ${JSON.stringify(k)}: ${JSON.stringify(v)}`)
  return `{\n${head.join(',\n')},\n  "steps": [\n${steps.map((x) => '    ' + JSON.stringify(x)).join(',\n')}\n  ]\n}\n`
}
