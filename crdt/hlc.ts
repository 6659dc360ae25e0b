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

/** What the clock raises when it cannot issue a stamp within its lead bound (see {@link HLC.now}). */
export class ClockAheadError extends RangeError {
  /** The stable code (lib/ raises a MeshError with the same code for a refused write). */
  readonly code = 'MESHBEE_CLOCK_AHEAD' as const
  /** The clock's last stamp: no greater one fits under the cap. */
  readonly last: Stamp
  /** The cap (ms): the newest remote stamp observed + maxLead. */
  readonly cap: number

  constructor (last: Stamp, cap: number) {
    super(`the clock's last stamp (${last.wall} ms) is at or past its lead bound (${cap} ms)`)
    this.last = last
    this.cap = cap
  }
}

const MAX_COUNTER = 0xffffffff

/**
 * A malformed argument: a TypeError carrying meshbee's stable code. crdt/ imports nothing of lib/,
 * so this is a plain TypeError; lib/ raises its MeshTypeError with the same code.
 */
function invalid (message: string): TypeError & { code: 'MESHBEE_INVALID_ARGUMENT' } {
  return Object.assign(new TypeError(message), { code: 'MESHBEE_INVALID_ARGUMENT' as const })
}

/**
 * A stamp from its parts.
 *
 * @throws TypeError with code `MESHBEE_INVALID_ARGUMENT` when `wall` is not a non-negative safe integer or `counter` not a uint32.
 */
export function stamp (wall: number, counter: number): Stamp {
  if (!Number.isSafeInteger(wall) || wall < 0) throw invalid('wall must be a non-negative safe integer')
  if (!Number.isInteger(counter) || counter < 0 || counter > MAX_COUNTER) throw invalid('counter must be a uint32')
  return { wall, counter }
}

const CHECKED = Symbol('checked wall clock')

/** Whether `ms` can be a wall time or `maxDrift`: a whole number of milliseconds, 0 or more, that a stamp can hold. */
function isMs (ms: unknown): ms is number {
  return Number.isSafeInteger(ms) && (ms as number) >= 0
}

/**
 * `clock` with each reading checked: a wall time a stamp can hold (a non-negative safe integer of
 * ms). A clock that returns anything else (NaN, a fraction, a negative number, 2^53 or more)
 * makes the reading throw, instead of issuing a stamp that sorts wrong or cannot be encoded.
 *
 * @param fail - makes the error (naming `wallClock`); a TypeError with code `MESHBEE_INVALID_ARGUMENT` by default
 * @throws what `fail` makes, for a `clock` that is not a function and from each bad reading.
 */
export function checkedWallClock (clock: () => number, fail: (message: string) => Error = invalid): () => number {
  if (typeof clock !== 'function') throw fail('wallClock must be a function that returns the time in ms since the epoch')
  if ((clock as { [CHECKED]?: true })[CHECKED] === true) return clock
  const checked = (): number => {
    const wall = clock()
    if (!isMs(wall)) throw fail(`wallClock returned ${typeof wall === 'number' ? String(wall) : typeof wall}: it must return ms since the epoch, a non-negative safe integer`)
    return wall
  }
  return Object.assign(checked, { [CHECKED]: true as const })
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
 * @throws TypeError with code `MESHBEE_INVALID_ARGUMENT` when `str` is not such a string.
 */
export function stampFromString (str: string): Stamp {
  const m = typeof str === 'string' ? /^([0-9a-f]{14})\.([0-9a-f]{8})$/.exec(str) : null
  if (m === null) throw invalid('not a stamp string: ' + String(str))
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
  /**
   * The wall clock, in ms since the epoch. Defaults to Date.now. Each reading must be a
   * non-negative safe integer: `now()` and `observe()` throw `MESHBEE_INVALID_ARGUMENT` on any other.
   */
  readonly wallClock?: () => number
  /** Remote stamps may pull the clock at most this far ahead of the wall clock: whole ms, 0 or more. Default 60 s. */
  readonly maxDrift?: number
  /** The last stamp issued or observed before a restart. */
  readonly last?: Stamp
  /**
   * The lead bound: once the clock has observed a remote stamp, no stamp it issues runs more than
   * this far (ms) past the newest remote stamp it has observed (`seen`). Unbounded by default.
   */
  readonly maxLead?: number
  /** The newest remote stamp observed before a restart. */
  readonly seen?: Stamp | null
}

/**
 * The clock. `now()` is strictly greater than every stamp issued, observed or restored before.
 * It does no I/O: the owner persists {@link HLC.last} and passes it back as `last` on restart.
 */
export class HLC {
  /** How far (ms) a remote stamp may pull this clock ahead of the wall clock. */
  readonly maxDrift: number
  /** How far (ms) an issued stamp may run past the newest remote stamp observed (Infinity: no bound). */
  readonly maxLead: number
  private readonly wallClock: () => number
  private _last: Stamp
  private _seen: Stamp | null
  private _reading = 0

  /**
   * @throws TypeError with code `MESHBEE_INVALID_ARGUMENT` for a `wallClock` that is not a function, a
   *   `maxDrift` that is not a whole number of ms (0 or more), or a `last` that is not a stamp.
   */
  constructor (opts: HLCOptions = {}) {
    if (opts === null || typeof opts !== 'object') throw invalid('HLC options must be an object')
    const { wallClock = Date.now, maxDrift = DEFAULT_MAX_DRIFT, last = ZERO, maxLead = Infinity, seen = null } = opts
    if (!isMs(maxDrift)) throw invalid(`maxDrift must be a whole number of ms, 0 or more (got ${String(maxDrift)})`)
    if (maxLead !== Infinity && !isMs(maxLead)) throw invalid(`maxLead must be a whole number of ms, 0 or more, or Infinity (got ${String(maxLead)})`)
    if (!isStamp(last)) throw invalid('last must be a stamp { wall, counter }')
    if (seen !== null && !isStamp(seen)) throw invalid('seen must be a stamp { wall, counter } or null')
    this.wallClock = checkedWallClock(wallClock)
    this.maxDrift = maxDrift
    this.maxLead = maxLead
    this._last = last
    this._seen = seen
  }

  /** The newest remote stamp observed (or restored) so far; null before the first. */
  get seen (): Stamp | null {
    return this._seen
  }

  /** The wall clock reading of the last {@link HLC.now}: what the clock said, whatever the stamp. */
  get reading (): number {
    return this._reading
  }

  /** The greatest wall time a stamp may have now: the newest remote stamp observed + maxLead. */
  get cap (): number {
    return this._seen === null ? Infinity : this._seen.wall + this.maxLead
  }

  /**
   * Raises `seen` to at least `s` (the newest remote stamp observed before a restart).
   *
   * @throws TypeError with code `MESHBEE_INVALID_ARGUMENT` when `s` is not a stamp.
   */
  restoreSeen (s: Stamp): void {
    if (!isStamp(s)) throw invalid('restoreSeen takes a stamp { wall, counter }')
    if (this._seen === null || compareStamps(s, this._seen) > 0) this._seen = s
  }

  /** The greatest stamp issued, observed or restored so far. */
  get last (): Stamp {
    return this._last
  }

  /**
   * Raises the clock to at least `s`, e.g. the last stamp found in the own log after a crash.
   *
   * @throws TypeError with code `MESHBEE_INVALID_ARGUMENT` when `s` is not a stamp.
   */
  restore (s: Stamp): void {
    if (!isStamp(s)) throw invalid('restore takes a stamp { wall, counter }')
    if (compareStamps(s, this._last) > 0) this._last = s
  }

  /**
   * Issues a new stamp, strictly greater than every stamp before it: the wall clock's reading, but
   * never past {@link HLC.cap} (the newest remote stamp observed + maxLead). A clock that runs
   * ahead of everything it has seen issues stamps at the cap, ordered by their counter.
   *
   * @throws TypeError with code `MESHBEE_INVALID_ARGUMENT` when the wall clock returns something other
   *   than a non-negative safe integer, or the stamps have reached the largest wall time a stamp holds.
   * @throws {@link ClockAheadError} (code `MESHBEE_CLOCK_AHEAD`) when the last stamp is already at
   *   the cap's last counter or past the cap (restored from before the bound applied): no stamp
   *   greater than it fits under the cap.
   */
  now (): Stamp {
    const wall = this.wallClock()
    this._reading = wall
    const last = this._last
    const cap = this.cap
    const base = Math.min(wall, cap)
    const next = base > last.wall
      ? { wall: base, counter: 0 }
      : bump(last)
    if (next.wall > cap) throw new ClockAheadError(last, cap)
    if (!Number.isSafeInteger(next.wall)) throw invalid('wallClock: the clock has reached the largest wall time a stamp holds (2^53 - 1 ms)')
    this._last = next
    return next
  }

  /**
   * Merges a remote stamp. The clock follows it up to `(wall + maxDrift, 0)`; beyond that it
   * advances only to that bound and `clamped` is set. The stamp becomes `seen` if it is the newest
   * remote stamp so far (whole: the lead bound is measured from what was seen, not followed).
   *
   * @throws TypeError with code `MESHBEE_INVALID_ARGUMENT` when `remote` is not a stamp, or the wall
   *   clock returns something other than a non-negative safe integer.
   */
  observe (remote: Stamp): ObserveResult {
    if (!isStamp(remote)) throw invalid('observe takes a stamp { wall, counter }')
    const wall = this.wallClock()
    const drift = Math.max(0, remote.wall - wall)
    // Counter 0, not any counter: a followed counter near its maximum would make the next now()
    // overflow into the following millisecond, past the bound.
    const bound = { wall: wall + this.maxDrift, counter: 0 }
    const clamped = compareStamps(remote, bound) > 0
    const target = clamped ? bound : remote
    if (compareStamps(target, this._last) > 0) this._last = target
    if (this._seen === null || compareStamps(remote, this._seen) > 0) this._seen = remote
    return { drift, clamped }
  }
}

function bump (s: Stamp): Stamp {
  return s.counter < MAX_COUNTER ? { wall: s.wall, counter: s.counter + 1 } : { wall: s.wall + 1, counter: 0 }
}
