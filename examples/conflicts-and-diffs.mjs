// Conflicts and how to look at them: two devices write the same key while apart. The view shows
// one winner (the latest hybrid-logical-clock stamp, then the writer key), versions() shows every
// writer's entry behind it, diff() what one writer changed, and checkout() the view as it was.
//
//   node conflicts-and-diffs.mjs
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MeshDB } from 'meshbee'

const dir = await mkdtemp(join(tmpdir(), 'meshbee-example-'))
const a = new MeshDB(join(dir, 'a'), { valueEncoding: 'json' })
await a.open()
const b = new MeshDB(join(dir, 'b'), { key: a.key, valueEncoding: 'json' })
await b.open()
await a.addWriter(b.writerKey)
await sync(a, b)
const before = a.cuts() // the writer lengths the view reflects now: a checkout can return here

// Apart, both set the same key.
await a.put('colour', 'blue')
await b.put('colour', 'green')
await b.put('size', 'large')
await sync(a, b)

const winner = await a.get('colour')
console.log('winner', winner, `(b reads ${await b.get('colour')} too)`)
for (const v of await a.versions('colour')) {
  console.log('  version', v.writer.toString('hex').slice(0, 8), v.type, JSON.stringify(v.value), `stamp ${v.stamp.wall}.${v.stamp.counter}`)
}

// What b changed, as a's copy of b's log says.
for await (const c of a.diff(b.writerKey)) console.log('  b changed', c.key, c.type, JSON.stringify(c.value))

// The view as it was before the conflict: a read-only database.
const past = a.checkout(before)
await past.open()
console.log('before the conflict, colour was', await past.get('colour'))
await past.close()

await a.close()
await b.close()
await rm(dir, { recursive: true, force: true })

/** Replicates x and y in process until each has folded all of every log the other holds. */
async function sync (x, y) {
  const s = x.replicate(true)
  s.pipe(y.replicate(false)).pipe(s)
  while (!caughtUp(x, y) || !caughtUp(y, x)) await Promise.race([next(x), next(y)])
  s.destroy()
}

function caughtUp (db, other) {
  return other.writers().every((o) => db.writers().some((w) => w.key.equals(o.key) && w.folded >= o.length))
}

/** The next fold of db, or a recheck a moment later (a fold that changes nothing emits no event). */
function next (db) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, 50)
    db.once('update', () => { clearTimeout(t); resolve() })
  })
}
