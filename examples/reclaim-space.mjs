// Reclaiming space: two devices overwrite and delete, then compact. Deleted keys leave the view
// once both devices have recorded folding past the deletes, and log blocks no read needs leave
// the disk. What each device reads does not change.
//
//   node reclaim-space.mjs
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MeshDB } from 'meshbee'
import { startTestnet } from 'meshbee/testnet'

const dir = await mkdtemp(join(tmpdir(), 'meshbee-example-'))
const testnet = await startTestnet()

const laptop = new MeshDB(join(dir, 'laptop'), { valueEncoding: 'json' })
await laptop.open()
const phone = new MeshDB(join(dir, 'phone'), { key: laptop.key, valueEncoding: 'json' })
await phone.open()
await laptop.addWriter(phone.writerKey)
await laptop.join({ swarm: testnet.swarmOptions() })
await phone.join({ swarm: testnet.swarmOptions() })
// (a small poll: the 'update' event fires only when a fold changes what a key reads as)
const until = async (check) => { while (!check()) await new Promise((resolve) => setTimeout(resolve, 50)) }
await until(() => phone.writable)

// A busy week: every note rewritten twenty times, then half of them deleted.
for (let round = 0; round < 20; round++) {
  await laptop.batch(Array.from({ length: 50 }, (_, i) => ({ type: 'put', key: `note/${i}`, value: { round, by: 'laptop' } })))
  await phone.batch(Array.from({ length: 50 }, (_, i) => ({ type: 'put', key: `note/${i}`, value: { round, by: 'phone' } })))
}
await phone.batch(Array.from({ length: 25 }, (_, i) => ({ type: 'del', key: `note/${i}` })))

// Wait until both devices have folded everything the other wrote.
const folded = (db, other) => db.writers().find((w) => w.key.equals(other.writerKey))?.folded === other.writers().find((w) => w.local).length
const settled = () => until(() => folded(laptop, phone) && folded(phone, laptop))
await settled()
console.log('before: tombstones', laptop.stats().tombstones, '| notes', (await laptop.keys().all()).length)

// Each device compacts: it first records how far it has folded; once each holds the other's
// record, the deletes are stable everywhere and the next compaction reclaims them.
await laptop.compact()
await phone.compact()
await settled()
const r = await laptop.compact()
await phone.compact()
console.log('after: tombstones', r.tombstones, '| collected', laptop.stats().tombstonesCollected, '| blocks cleared', r.blocksCleared > 0)
console.log('log bytes', r.bytesBefore.logs, '->', r.bytesAfter.logs)
console.log('same view:', laptop.hash().equals(phone.hash()), '| notes', (await laptop.keys().all()).length)

await laptop.close()
await phone.close()
await testnet.destroy()
await rm(dir, { recursive: true, force: true })
