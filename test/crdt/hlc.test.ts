import { expect } from 'chai'
import c from 'compact-encoding'
import fc from 'fast-check'
import {
  ClockAheadError, compareKeys, compareStamps, compareVersions, HLC, isStamp, stamp, stampEncoding, stampFromString, stampToString,
  type Stamp
} from '../../crdt/hlc.js'
import { check, MAX_COUNTER, stampArb, writerArb } from './arbitraries.js'

/** A step of a clock's life: the wall clock moves (maybe backwards), or the clock is used. */
type Step =
  | { t: 'tick', by: number }
  | { t: 'now' }
  | { t: 'observe' | 'restore', ahead: number, pastBound: number | null, counter: number }

const counterArb = fc.oneof(fc.nat({ max: 3 }), fc.constant(MAX_COUNTER), fc.nat({ max: MAX_COUNTER }))

function stepsArb (withRestore: boolean): fc.Arbitrary<Step[]> {
  const remote = (t: 'observe' | 'restore'): fc.Arbitrary<Step> => fc.record({
    t: fc.constant(t),
    ahead: fc.oneof(fc.integer({ min: -120, max: 120 }), fc.constantFrom(-1e9, 1e9)),
    pastBound: fc.option(fc.integer({ min: -2, max: 2 }), { freq: 2, nil: null }),
    counter: counterArb
  })
  return fc.array(fc.oneof(
    { arbitrary: fc.record({ t: fc.constant('tick' as const), by: fc.integer({ min: -100, max: 100 }) }), weight: 3 },
    { arbitrary: fc.constant({ t: 'now' as const }), weight: 4 },
    { arbitrary: remote('observe'), weight: 3 },
    { arbitrary: remote('restore'), weight: withRestore ? 1 : 0 }
  ), { maxLength: 40, size: 'max' })
}

const clockArb = (withRestore: boolean): fc.Arbitrary<{ start: number, maxDrift: number, last: Stamp | null, steps: Step[] }> => fc.record({
  start: fc.nat({ max: 2 ** 44 }),
  maxDrift: fc.nat({ max: 50 }),
  last: withRestore ? fc.option(fc.tuple(fc.nat({ max: 2 ** 44 }), counterArb).map(([w, n]) => stamp(w, n))) : fc.constant(null),
  steps: stepsArb(withRestore)
})

/** The remote stamp of a step: `ahead` of the wall clock, or `pastBound` of wall + maxDrift. */
function remoteOf (step: { ahead: number, pastBound: number | null, counter: number }, wall: number, maxDrift: number): Stamp {
  const at = step.pastBound !== null ? wall + maxDrift + step.pastBound : wall + step.ahead
  return stamp(Math.max(0, at), step.counter)
}

function max (a: Stamp, b: Stamp): Stamp {
  return compareStamps(a, b) >= 0 ? a : b
}

describe('crdt/hlc: hybrid logical clock', () => {
  it('now() is strictly monotonic, whatever the wall clock does', () => {
    check(clockArb(true), ({ start, maxDrift, last, steps }) => {
      let wall = start
      const hlc = new HLC({ wallClock: () => wall, maxDrift, ...(last !== null ? { last } : {}) })
      let floor: Stamp = last ?? stamp(0, 0)
      for (const step of steps) {
        if (step.t === 'tick') {
          wall = Math.max(0, wall + step.by)
        } else if (step.t === 'now') {
          const s = hlc.now()
          expect(compareStamps(s, floor), `${stampToString(s)} after ${stampToString(floor)}`).to.equal(1)
          expect(s.wall).to.be.at.least(wall)
          floor = s
        } else {
          const remote = remoteOf(step, wall, maxDrift)
          if (step.t === 'restore') {
            hlc.restore(remote)
            floor = max(floor, remote)
          } else {
            const { drift, clamped } = hlc.observe(remote)
            expect(drift).to.equal(Math.max(0, remote.wall - wall))
            // A clamped stamp is followed up to wall + maxDrift only.
            floor = max(floor, clamped ? stamp(wall + maxDrift, 0) : remote)
          }
        }
        expect(compareStamps(hlc.last, floor)).to.be.at.least(0)
      }
    })
  })

  it('observe never pulls the clock more than maxDrift past the wall clock', () => {
    check(clockArb(false), ({ start, maxDrift, steps }) => {
      let wall = start
      let maxWall = start
      const hlc = new HLC({ wallClock: () => wall, maxDrift })
      for (const step of steps) {
        if (step.t === 'tick') {
          wall = Math.max(0, wall + step.by)
          maxWall = Math.max(maxWall, wall)
        } else if (step.t === 'now') {
          hlc.now()
        } else {
          const remote = remoteOf(step, wall, maxDrift)
          const { drift, clamped } = hlc.observe(remote)
          if (drift > maxDrift) expect(clamped, 'clamped').to.equal(true)
          if (clamped) expect(drift, 'drift of a clamped stamp').to.be.at.least(maxDrift)
          if (!clamped) expect(compareStamps(hlc.last, remote)).to.be.at.least(0)
        }
        expect(hlc.last.wall, 'wall part of the clock').to.be.at.most(maxWall + maxDrift)
      }
    })
  })

  it('with maxLead, no stamp runs past the newest observed remote stamp + maxLead, and none creeps; a clock past it refuses', () => {
    check(fc.tuple(clockArb(true), fc.nat({ max: 200 })), ([{ start, maxDrift, last, steps }, maxLead]) => {
      let wall = start
      const hlc = new HLC({ wallClock: () => wall, maxDrift, maxLead, ...(last !== null ? { last } : {}) })
      let seen: Stamp | null = null
      let floor: Stamp = last ?? stamp(0, 0)
      for (const step of steps) {
        if (step.t === 'tick') {
          wall = Math.max(0, wall + step.by)
        } else if (step.t === 'now') {
          const cap = seen === null ? Infinity : seen.wall + maxLead
          expect(hlc.cap).to.equal(cap)
          let s: Stamp
          try {
            s = hlc.now()
          } catch (err) {
            expect(err).to.be.instanceOf(ClockAheadError)
            expect((err as ClockAheadError).code).to.equal('MESHBEE_CLOCK_AHEAD')
            // refused only when no stamp above the last fits under the cap
            expect(floor.wall >= cap).to.equal(true)
            expect(compareStamps(hlc.last, floor)).to.equal(0)
            continue
          }
          expect(s.wall).to.be.at.most(cap)
          expect(hlc.reading).to.equal(wall)
          // the wall clock's reading, capped, unless the last stamp is already there
          if (Math.min(wall, cap) > floor.wall) expect(s).to.deep.equal(stamp(Math.min(wall, cap), 0))
          expect(compareStamps(s, floor)).to.equal(1)
          floor = s
        } else {
          const remote = remoteOf(step, wall, maxDrift)
          if (step.t === 'restore') {
            hlc.restore(remote)
            floor = max(floor, remote)
          } else {
            const { clamped } = hlc.observe(remote)
            floor = max(floor, clamped ? stamp(wall + maxDrift, 0) : remote)
            seen = seen === null ? remote : max(seen, remote)
          }
        }
        expect(hlc.seen).to.deep.equal(seen)
      }
    })
  })

  it('restoreSeen raises the lead bound, never lowers it; maxLead and seen are checked', () => {
    const hlc = new HLC({ wallClock: () => 10_000, maxLead: 100, seen: stamp(1000, 0) })
    expect(hlc.cap).to.equal(1100)
    hlc.restoreSeen(stamp(500, 0))
    expect(hlc.cap).to.equal(1100)
    hlc.restoreSeen(stamp(2000, 3))
    expect(hlc.seen).to.deep.equal(stamp(2000, 3))
    expect(hlc.now()).to.deep.equal(stamp(2100, 0))
    expect(hlc.now()).to.deep.equal(stamp(2100, 1))
    expect(new HLC({ wallClock: () => 5 }).cap, 'unbounded by default').to.equal(Infinity)
    for (const bad of [-1, 1.5, NaN]) expect(() => new HLC({ maxLead: bad })).to.throw(TypeError).with.property('code', 'MESHBEE_INVALID_ARGUMENT')
    expect(() => new HLC({ seen: { wall: -1, counter: 0 } as Stamp })).to.throw(TypeError).with.property('code', 'MESHBEE_INVALID_ARGUMENT')
    expect(() => hlc.restoreSeen({ wall: 1.5, counter: 0 } as Stamp)).to.throw(TypeError).with.property('code', 'MESHBEE_INVALID_ARGUMENT')
  })

  it('stampToString sorts like compareStamps and parses back', () => {
    check(fc.tuple(stampArb, stampArb), ([a, b]) => {
      const sa = stampToString(a)
      const sb = stampToString(b)
      expect(Math.sign(sa < sb ? -1 : sa > sb ? 1 : 0)).to.equal(compareStamps(a, b))
      expect(stampFromString(sa)).to.deep.equal(a)
    })
  })

  it('stampEncoding round trips (compact-encoding)', () => {
    check(stampArb, (s) => {
      expect(c.decode(stampEncoding, c.encode(stampEncoding, s))).to.deep.equal(s)
    })
  })

  it('stampEncoding decodes only valid stamps', () => {
    check(fc.uint8Array({ maxLength: 20 }), (bytes) => {
      let s: Stamp
      try {
        s = c.decode(stampEncoding, bytes)
      } catch {
        return
      }
      expect(isStamp(s)).to.equal(true)
    })
  })

  it('compareVersions is a total order: 0 only for the same version', () => {
    const versionArb = fc.record({
      stamp: fc.oneof(stampArb, fc.tuple(fc.nat({ max: 2 }), fc.nat({ max: 2 })).map(([w, n]) => stamp(w, n))),
      writer: fc.oneof(writerArb, fc.uint8Array({ maxLength: 3 }))
    })
    check(fc.tuple(versionArb, versionArb, versionArb), ([a, b, x]) => {
      const ab = compareVersions(a, b)
      expect(compareVersions(b, a)).to.equal(-ab)
      expect(ab === 0).to.equal(compareStamps(a.stamp, b.stamp) === 0 && compareKeys(a.writer, b.writer) === 0 &&
        Buffer.compare(a.writer, b.writer) === 0)
      if (ab <= 0 && compareVersions(b, x) <= 0) expect(compareVersions(a, x)).to.be.at.most(0)
    })
  })
})
