// Two devices of one database, meeting over a DHT: here a local testnet in one process, so the
// example runs anywhere. On real devices, drop the testnet and call db.join() with no options.
//
//   node two-devices.mjs
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MeshDB } from 'meshbee'
import { startTestnet } from 'meshbee/testnet'

const dir = await mkdtemp(join(tmpdir(), 'meshbee-example-'))
const testnet = await startTestnet()

// The laptop creates the database: it is its first writer.
const laptop = new MeshDB(join(dir, 'laptop'), { valueEncoding: 'json' })
await laptop.put('todo/1', { title: 'milk', done: false })

// The phone opens it by key. It can read at once; it can write once a member adds it.
const phone = new MeshDB(join(dir, 'phone'), { key: laptop.key, valueEncoding: 'json' })
await phone.open()
await laptop.addWriter(phone.writerKey)

// Both announce themselves on the database's discovery key and replicate every connection.
await laptop.join({ swarm: testnet.swarmOptions() })
await phone.join({ swarm: testnet.swarmOptions() })

// Wait until the phone's view has the laptop's write (the 'update' event fires after each fold).
while (phone.writable === false || await phone.get('todo/1') === undefined) {
  await new Promise((resolve) => phone.once('update', resolve))
}
console.log('phone reads', await phone.get('todo/1'))

// The phone writes; the laptop sees it.
await phone.put('todo/2', { title: 'eggs', done: false })
while (await laptop.get('todo/2') === undefined) await new Promise((resolve) => laptop.once('update', resolve))
console.log('laptop reads', await laptop.get('todo/2'))
console.log('same view:', laptop.hash().equals(phone.hash()))

await laptop.close()
await phone.close()
await testnet.destroy()
await rm(dir, { recursive: true, force: true })
