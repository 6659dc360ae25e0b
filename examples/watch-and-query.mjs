// Reacting to changes and finding records by what they hold: a watcher sees every change of a
// range once, whether this device wrote it or it came from another; indexes (by a field, and
// full text) are kept with the view, so queries and searches are the same on every device.
//
//   node watch-and-query.mjs
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MeshDB } from 'meshbee'

const indexes = {
  byStatus: { version: 1, field: 'status' },
  notes: { version: 1, text: ['title'] }
}
const dir = await mkdtemp(join(tmpdir(), 'meshbee-example-'))
const phone = new MeshDB(join(dir, 'phone'), { valueEncoding: 'json', indexes })
await phone.open()
const laptop = new MeshDB(join(dir, 'laptop'), { key: phone.key, valueEncoding: 'json', indexes })
await laptop.open()
await phone.addWriter(laptop.writerKey)
await sync(phone, laptop)

// the laptop renders its todo list from a watcher: the list as it is, then every change
const seen = []
const watcher = laptop.watch({ gte: 'todo/', lt: 'todo0' }, { initial: true })
const reading = (async () => {
  for await (const c of watcher) seen.push(`${c.origin} ${c.type} ${c.key}`)
})()

await phone.put('todo/1', { title: 'Buy milk and eggs', status: 'open' })
await laptop.put('todo/2', { title: 'Crème brûlée for Sunday', status: 'open' })
await phone.patch('todo/1', { status: 'done' })
await sync(phone, laptop)

for (const db of [phone, laptop]) {
  const open = []
  for await (const { key } of db.query('byStatus', { gte: 'open', lte: 'open' })) open.push(key)
  const found = []
  for await (const { key } of db.search('notes', 'creme su')) found.push(key)
  console.log(db === phone ? 'phone' : 'laptop', 'open:', open.join(' '), '| search "creme su":', found.join(' '))
}

watcher.close()
await reading
console.log('the laptop saw:', seen.join(', '))

// the change feed: what changed after a seq, once a key, to catch up after a restart
let last = 0
for await (const c of laptop.changes()) last = c.seq
await phone.del('todo/2')
await sync(phone, laptop)
for await (const c of laptop.changes({ since: last })) console.log('since then:', c.type, c.key)

await phone.close()
await laptop.close()
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
