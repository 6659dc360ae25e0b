/**
 * Chaos (the harness is scripts/chaos/: schedule.ts, inproc.ts, procs.ts, model.ts, checks.ts):
 * random schedules of conflicting writes of every kind on a few keys, membership changes, links
 * that come and go (partitions, chains whose ends never meet, one-way catch-ups), restarts, skewed
 * clocks and, with processes, SIGKILLs mid-write, mid-fold and mid-open; in 40 % of them
 * large writes too (50–400 set adds and removes, or document fields, on one key in one append),
 * and in about half peers that write log format 1 until they upgrade to format 2; 30 % run an
 * encrypted database (only its live writers must read everything; the others hold every log, and
 * none holds the key of what the live writers write after the final sync); 85 % have compaction
 * (stability records every few ms, `db.compact()` steps often right after a delete or before a
 * restart or kill, some peers keeping full history, some compacting on their own, and with
 * processes kills inside `compact()`). After each schedule and a final full sync: every view is
 * byte-identical and equals the reference model computed from the logs, writers() agree, every
 * acknowledged write was in its writer's log (checked when acknowledged: compaction may clear it
 * since), every member log is held whole but for blocks compaction cleared, and no process
 * crashed but those killed; then every live writer compacts (twice, with a write in between): no
 * view changes, and no peer holds a tombstone the stability records let it drop.
 *
 * The bounded set here: CHAOS_SCHEDULES in-process schedules (default 12) from seed CHAOS_BASE
 * (default 1; `random` for a random base) and CHAOS_PROCS multi-process ones (default 1) from the
 * same base (sized to keep the whole suite within its ten minutes; the 2,000-schedule runs of
 * `npm run chaos` are the wider net). A failure prints the command that replays it (`npm run chaos -- --seed S`); more
 * schedules: `npm run chaos -- --schedules N`.
 */
import { expect } from 'chai'
import { runInProcess } from '../scripts/chaos/inproc.js'
import { runProcs } from '../scripts/chaos/procs.js'
import { generate } from '../scripts/chaos/schedule.js'

const SCHEDULES = Number(process.env.CHAOS_SCHEDULES ?? 12)
const PROCS = Number(process.env.CHAOS_PROCS ?? 1)
const BASE = process.env.CHAOS_BASE === 'random' ? Math.floor(Math.random() * 2 ** 31) : Number(process.env.CHAOS_BASE ?? 1)

async function many (n: number, run: (seed: number) => Promise<unknown>): Promise<void> {
  const failures: string[] = []
  for (let i = 0; i < n; i++) {
    const seed = (BASE + i) >>> 0
    try {
      await run(seed)
    } catch (err) {
      failures.push((err as Error).message)
    }
  }
  if (failures.length > 0) {
    throw new Error(`${failures.length} of ${n} schedules failed:\n\n${failures.slice(0, 3).join('\n\n')}` +
      (failures.length > 3 ? `\n\n… and ${failures.length - 3} more: ${failures.slice(3).map((m) => m.split('\n')[0]).join('; ')}` : ''))
  }
}

describe('chaos', function () {
  this.timeout(600_000)

  it(`${SCHEDULES} in-process schedules from seed ${BASE}: views identical, equal to the model from the logs`, async () => {
    await many(SCHEDULES, async (seed) => await runInProcess(generate(seed)))
  })

  it('an in-process schedule replays exactly: the same trace and views, step by step', async () => {
    for (const seed of [BASE, BASE + 1]) {
      const a = await runInProcess(generate(seed))
      const b = await runInProcess(generate(seed))
      expect(b.digest, `seed ${seed}`).to.equal(a.digest)
    }
  })

  it(`${PROCS} multi-process schedules from seed ${BASE}, with SIGKILLs mid-write, mid-fold and mid-open`, async () => {
    let kills = 0
    await many(PROCS, async (seed) => { kills += (await runProcs(generate(seed, { variant: 'procs' }))).kills })
    if (PROCS > 0) expect(kills, 'kills across the schedules').to.be.greaterThan(0)
  })
})
