/**
 * Hybrid logical clock.
 *
 * A stamp is `(wall, counter)`: `wall` is milliseconds since the epoch, `counter` orders stamps
 * issued within one millisecond. Stamps are totally ordered by wall, then counter; two entries
 * with equal stamps are ordered by their writer key (see {@link compareVersions}), so the order
 * never returns 0 for two different entries.
 */
import c from 'compact-encoding'

declare const stampBrand: unique symbol

/** An HLC stamp. Branded so that it cannot be confused with an arbitrary object. */
export type Stamp = {
  /** Milliseconds since the epoch. */
  readonly wall: number
  /** Orders stamps issued within one millisecond. */
  readonly counter: number
} & {
  /** @internal */
  readonly [stampBrand]?: true
}

/** The smallest stamp; no clock ever issues it. */
export const ZERO: Stamp = Object.freeze({ wall: 0, counter: 0 })

/** Default bound on how far a remote stamp may pull the local clock ahead of the wall clock. */
export const DEFAULT_MAX_DRIFT = 60_000

const MAX_COUNTER = 0xffffffff

export function stamp (wall: number, counter: number): Stamp {
  if (!Number.isSafeInteger(wall) || wall < 0) throw new TypeError('wall must be a non-negative safe integer')
  if (!Number.isInteger(counter) || counter < 0 || counter > MAX_COUNTER) throw new TypeError('counter must be a uint32')
  return { wall, counter }
}

export function isStamp (s: unknown): s is Stamp {
  if (typeof s !== 'object' || s === null) return false
  const { wall, counter } = s as { wall: unknown, counter: unknown }
  return Number.isSafeInteger(wall) && (wall as number) >= 0 &&
    Number.isInteger(counter) && (counter as number) >= 0 && (counter as number) <= MAX_COUNTER
}

/** Orders stamps by wall, then counter. 0 only for equal stamps. */
export function compareStamps (a: Stamp, b: Stamp): number {
  if (a.wall !== b.wall) return a.wall < b.wall ? -1 : 1
  if (a.counter !== b.counter) return a.counter < b.counter ? -1 : 1
  return 0
}

/** Byte-wise comparison of writer keys: the last tie-break of the total order. */
export function compareKeys (a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1
  }
  return a.length === b.length ? 0 : (a.length < b.length ? -1 : 1)
}

/** A stamp together with the writer that issued it: a version. */
export interface Version {
  /** The stamp. */
  readonly stamp: Stamp
  /** The key of the writer that issued it: the tie-break between equal stamps. */
  readonly writer: Uint8Array
}

/** The total order of versions: stamp, then writer key. Returns 0 only for the same version. */
export function compareVersions (a: Version, b: Version): number {
  return compareStamps(a.stamp, b.stamp) || compareKeys(a.writer, b.writer)
}

/** compact-encoding codec for a stamp: two uints. */
export const stampEncoding = {
  preencode (state: c.State, s: Stamp) {
    c.uint.preencode(state, s.wall)
    c.uint.preencode(state, s.counter)
  },
  encode (state: c.State, s: Stamp) {
    c.uint.encode(state, s.wall)
    c.uint.encode(state, s.counter)
  },
  decode (state: c.State): Stamp {
    const wall = c.uint.decode(state)
    const counter = c.uint.decode(state)
    if (!Number.isSafeInteger(wall) || counter > MAX_COUNTER) throw new RangeError('stamp out of range')
    return { wall, counter }
  }
}

/** A string form that sorts (as a string) exactly like {@link compareStamps}. */
export function stampToString (s: Stamp): string {
  return s.wall.toString(16).padStart(14, '0') + '.' + s.counter.toString(16).padStart(8, '0')
}

/**
 * The stamp of a string made by {@link stampToString}.
 *
 * @throws TypeError when `str` is not such a string.
 */
export function stampFromString (str: string): Stamp {
  const m = /^([0-9a-f]{14})\.([0-9a-f]{8})$/.exec(str)
  if (m === null) throw new TypeError('not a stamp string: ' + str)
  return stamp(parseInt(m[1], 16), parseInt(m[2], 16))
}

/** What {@link HLC.observe} did with a remote stamp. */
export interface ObserveResult {
  /** How far the remote stamp's wall time ran ahead of the local wall clock, in ms (0 if behind). */
  readonly drift: number
  /**
   * True when the clock did not follow the remote stamp all the way: the stamp was more than
   * `maxDrift` ahead, or exactly `maxDrift` ahead with a counter above 0.
   */
  readonly clamped: boolean
}

/** Options of `new HLC(options)`. */
export interface HLCOptions {
  /** The wall clock, in ms. Defaults to Date.now. */
  readonly wallClock?: () => number
  /** Remote stamps may pull the clock at most this far ahead of the wall clock. Default 60 s. */
  readonly maxDrift?: number
  /** The last stamp issued or observed before a restart. */
  readonly last?: Stamp
}

/**
 * The clock. `now()` is strictly greater than every stamp issued, observed or restored before.
 * It does no I/O: the owner persists {@link HLC.last} and passes it back as `last` on restart.
 */
export class HLC {
  /** How far (ms) a remote stamp may pull this clock ahead of the wall clock. */
  readonly maxDrift: number
  private readonly wallClock: () => number
  private _last: Stamp

  constructor (opts: HLCOptions = {}) {
    this.wallClock = opts.wallClock ?? Date.now
    this.maxDrift = opts.maxDrift ?? DEFAULT_MAX_DRIFT
    this._last = opts.last ?? ZERO
  }

  /** The greatest stamp issued, observed or restored so far. */
  get last (): Stamp {
    return this._last
  }

  /** Raises the clock to at least `s`, e.g. the last stamp found in the own log after a crash. */
  restore (s: Stamp): void {
    if (compareStamps(s, this._last) > 0) this._last = s
  }

  /** Issues a new stamp, strictly greater than every stamp before it. */
  now (): Stamp {
    const wall = this.wallClock()
    const last = this._last
    const next = wall > last.wall
      ? { wall, counter: 0 }
      : bump(last)
    this._last = next
    return next
  }

  /**
   * Merges a remote stamp. The clock follows it up to `(wall + maxDrift, 0)`; beyond that it
   * advances only to that bound and `clamped` is set.
   */
  observe (remote: Stamp): ObserveResult {
    const wall = this.wallClock()
    const drift = Math.max(0, remote.wall - wall)
    // Counter 0, not any counter: a followed counter near its maximum would make the next now()
    // overflow into the following millisecond, past the bound.
    const bound = { wall: wall + this.maxDrift, counter: 0 }
    const clamped = compareStamps(remote, bound) > 0
    const target = clamped ? bound : remote
    if (compareStamps(target, this._last) > 0) this._last = target
    return { drift, clamped }
  }
}

function bump (s: Stamp): Stamp {
  return s.counter < MAX_COUNTER ? { wall: s.wall, counter: s.counter + 1 } : { wall: s.wall + 1, counter: 0 }
}
