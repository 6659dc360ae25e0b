/**
 * The child process of the crash test's compaction runs (test/crash.test.ts), run with
 * `node --import tsx test/helpers/compact-child.ts <dir> <seed> <run> [<self-kill n> <when>]`.
 *
 * As test/fixtures/crash-child.ts, it opens (or reopens) the MeshDB at <dir> and writes random
 * operations one after the other until the parent kills it (`issue` before each write, `ack` after
 * it resolves); these are delete-heavy (test/helpers/crash-ops.ts `genCompactOp`). Before about one
 * write in four it runs `db.compact()`, reported by `compacting` when it starts and `compacted`
 * when it resolves. It appends its stability record every few ms of new data (`cutsEvery`), and
 * every third run compacts on its own after folds too (`autoCompact`): as the only writer, its own
 * record makes its tombstones stable and lets it clear its log up to its checkpoint.
 *
 * With <self-kill n> and <when> = clear or compacted, the child SIGKILLs itself in compaction n:
 * `clear`, as soon as the compaction's first clearing of log blocks has landed (before the view
 * has written the commits it made so far, and before its LevelDB compaction); `compacted`, as soon
 * as `compact()` has resolved. (A compaction that clears nothing moves the `clear` kill to the next
 * one that does.)
 *
 * Every line to the parent is written with a synchronous write (see crash-child.ts).
 */
import { writeSync } from 'node:fs'
import { MeshDB } from '../../index.js'
import { applyOp } from '../../scripts/chaos/inproc.js'
import type { ChaosOp } from '../../scripts/chaos/schedule.js'
import { genCompactOp, indexesFor, prng, type ChildMessage, type Op } from './crash-ops.js'

const [dir, seedArg, runArg, selfKillArg, selfKillMode] = process.argv.slice(2)
if (dir === undefined || seedArg === undefined || runArg === undefined) {
  process.stderr.write('usage: compact-child <dir> <seed> <run> [<self-kill n> <clear|compacted>]\n')
  process.exit(2)
}
// A forgotten child must not run forever.
setTimeout(() => process.exit(3), 120_000).unref()

function send (m: ChildMessage): void {
  writeSync(1, JSON.stringify(m) + '\n')
}

async function apply (db: MeshDB, op: Op): Promise<void> {
  const chaos: ChaosOp = op.kind === 'batch'
    ? { kind: 'batch', chained: op.chained, items: op.ops.map((o) => o.kind === 'put' ? { type: 'put', key: o.key, value: o.value } : { type: 'del', key: o.key }) }
    : op.kind === 'write' ? { kind: 'write', items: op.ops } : op
  await applyOp(db, chaos, [])
}

const run = Number(runArg)
const rng = prng(Number(seedArg))
send({ t: 'open' })
const db = new MeshDB(dir, {
  indexes: indexesFor(run),
  encrypted: process.env.MESHBEE_CRASH_ENCRYPTED === '1',
  cutsEvery: 1 + (run % 7) * 3,
  autoCompact: run % 3 === 1 ? 5 + (run % 5) * 10 : false
})
await db.open()
send({ t: 'ready', key: db.key.toString('hex'), writer: db.writerKey.toString('hex') })

let compactions = 0
let compacting = false
const killAt = selfKillArg === undefined ? -1 : Number(selfKillArg)
if (killAt >= 0 && selfKillMode === 'clear') {
  const core = db.engine.own.core
  const clear = core.clear.bind(core)
  core.clear = (async (...args: Parameters<typeof clear>) => {
    const out = await clear(...args)
    if (compacting && compactions >= killAt) process.kill(process.pid, 'SIGKILL')
    return out
  }) as typeof core.clear
}

for (let n = 0; ; n++) {
  if (rng() < 0.25) {
    compactions++
    send({ t: 'compacting', n: compactions })
    compacting = true
    const r = await db.compact()
    compacting = false
    send({ t: 'compacted', n: compactions, cleared: r.blocksCleared, collected: r.tombstonesCollected, tombstones: r.tombstones })
    if (selfKillMode === 'compacted' && compactions === killAt) process.kill(process.pid, 'SIGKILL')
  }
  const op = genCompactOp(rng, `r${runArg}n${n}:`)
  send({ t: 'issue', n, op })
  await apply(db, op)
  send({ t: 'ack', n, seq: db.engine.commit.feed.seq })
}
