// Documents merge field by field and sets are add-wins: two devices edit the same keys while
// apart, and both keep every change once they meet.
//
//   node documents-and-sets.mjs
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

// Meet once, so b learns it is a member and both start from the same document and set.
await a.patch('recipe', { title: 'pancakes', serves: 2 })
await a.sadd('recipe/tags', 'breakfast')
await sync(a, b)

// Apart: each edits a different field of the document and changes the set.
await a.patch('recipe', { serves: 4 })
await b.patch('recipe', { title: 'crêpes' })
await a.sadd('recipe/tags', 'sweet')
await b.srem('recipe/tags', 'breakfast')
await b.sadd('recipe/tags', 'french')

await sync(a, b)
console.log('recipe', await a.get('recipe'))                 // both fields' changes kept
console.log('tags', await a.smembers('recipe/tags'))         // adds win, the seen add removed
console.log('types', await a.typeOf('recipe'), await a.typeOf('recipe/tags'))
console.log('same view:', a.hash().equals(b.hash()))

// A whole put replaces the document (fields set before it are dropped).
await a.put('recipe', { title: 'waffles' })
console.log('after put', await a.get('recipe'), await a.typeOf('recipe'))

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
