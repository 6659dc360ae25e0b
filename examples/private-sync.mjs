// A private database: every block of every device's log is encrypted. A new device joins from one
// invite string; a server that only seeds (it has the database key, not the encryption key)
// carries the data between devices that are never online together, without being able to read it.
//
//   node private-sync.mjs
// (runs on a local DHT, meshbee/testnet; on the internet, leave the swarm options out)
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MeshDB } from 'meshbee'
import { startTestnet } from 'meshbee/testnet'

const testnet = await startTestnet()
const dir = await mkdtemp(join(tmpdir(), 'meshbee-example-'))

const phone = new MeshDB(join(dir, 'phone'), { encrypted: true, valueEncoding: 'json' })
await phone.put('diary/1', { text: 'Dear diary' })
await phone.join({ swarm: testnet.swarmOptions() }) // online: it answers its invites

// the laptop pairs from the invite string alone (shown as a QR code, sent in a message…)
const invite = await phone.createInvite({ role: 'writer' })
const laptop = await MeshDB.pair(join(dir, 'laptop'), invite, { swarm: testnet.swarmOptions(), valueEncoding: 'json' })
console.log('laptop writable:', laptop.writable, '| privacy:', laptop.privacy)
await until(async () => (await laptop.get('diary/1'))?.text === 'Dear diary')
console.log('laptop reads diary/1:', (await laptop.get('diary/1')).text)

// a home server seeds blind: the database key alone
const server = new MeshDB(join(dir, 'server'), { key: phone.key })
await server.join({ swarm: testnet.swarmOptions() })
await until(async () => server.privacy === 'blind' && server.writers().some((w) => w.key.equals(laptop.writerKey) && w.held > 0))
try {
  await server.get('diary/1')
} catch (err) {
  console.log('the server cannot read:', err.code)
}

// the phone goes offline; the laptop writes; the server carries it; the phone comes back
await phone.leave()
await laptop.put('diary/2', { text: 'Written on the laptop' })
const laptopLength = () => laptop.writers().find((w) => w.local).length
await until(() => server.writers().some((w) => w.key.equals(laptop.writerKey) && w.held === laptopLength()))
await laptop.leave()
await phone.join({ swarm: testnet.swarmOptions() })
await until(async () => (await phone.get('diary/2'))?.text === 'Written on the laptop')
console.log('phone reads diary/2 via the server:', (await phone.get('diary/2')).text)

for (const db of [phone, laptop, server]) await db.close()
await testnet.destroy()
await rm(dir, { recursive: true, force: true })

async function until (check, timeout = 30_000) {
  const deadline = Date.now() + timeout
  while (!await check()) {
    if (Date.now() > deadline) throw new Error('timed out')
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}
