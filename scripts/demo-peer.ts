/**
 * One demo peer, run as its own process by scripts/demo.ts and driven over IPC. It holds a MeshDB
 * on a private DHT (the parent's testnet) and answers commands; it reports 'update' events so the
 * parent can wait on conditions instead of sleeping.
 */
import HyperDHT from 'hyperdht'
import { MeshDB } from '../index.js'

type Cmd =
  | { id: number, cmd: 'open', dir: string, key?: string, bootstrap: Array<{ host: string, port: number }> }
  | { id: number, cmd: 'add', key: string }
  | { id: number, cmd: 'join' | 'leave' | 'state' | 'close' | 'cuts' }
  | { id: number, cmd: 'write', ops: Array<{ op: 'put' | 'del' | 'patch' | 'sadd' | 'srem', key: string, value?: unknown }> }
  | { id: number, cmd: 'versions', key: string }
  | { id: number, cmd: 'diff', writer: string, from: number }

let db: MeshDB<string, unknown> | null = null
let bootstrap: Array<{ host: string, port: number }> = []
const send = (m: object): void => { process.send?.(m) }

async function handle (m: Cmd): Promise<unknown> {
  if (m.cmd === 'open') {
    bootstrap = m.bootstrap
    db = new MeshDB<string, unknown>(m.dir, { key: m.key, valueEncoding: 'json' })
    await db.open()
    db.on('update', () => send({ event: 'update' }))
    db.on('peer-add', () => send({ event: 'peer' }))
    return { key: db.key.toString('hex'), writer: db.writerKey.toString('hex') }
  }
  const d = db as MeshDB<string, unknown>
  switch (m.cmd) {
    case 'add': await d.addWriter(m.key); return null
    case 'join': await d.join({ swarm: { dht: new HyperDHT({ bootstrap, firewalled: false }) } }); return null
    case 'leave': await d.leave(); return null
    case 'write':
      for (const o of m.ops) {
        if (o.op === 'put') await d.put(o.key, o.value)
        else if (o.op === 'del') await d.del(o.key)
        else if (o.op === 'patch') await d.patch(o.key, o.value as Record<string, never>)
        else if (o.op === 'sadd') await d.sadd(o.key, o.value as never)
        else await d.srem(o.key, o.value as never)
      }
      return null
    case 'state':
      return {
        writable: d.writable,
        hash: d.hash().toString('hex'),
        entries: await d.iterator().all(),
        writers: d.writers().map((w) => ({ key: w.key.toString('hex'), length: w.length, folded: w.folded }))
      }
    case 'cuts': return [...d.cuts()]
    case 'versions':
      return (await d.versions(m.key)).map((v) => ({ writer: v.writer.toString('hex'), stamp: v.stamp, type: v.type, value: v.value ?? null }))
    case 'diff': {
      const out = []
      for await (const c of d.diff(m.writer, { from: m.from })) out.push({ key: c.key, type: c.type, value: c.value ?? null, previous: c.previous ?? null })
      return out
    }
    case 'close':
      await d.close()
      setImmediate(() => process.exit(0))
      return null
  }
}

process.on('message', (m: Cmd) => {
  handle(m).then(
    (result) => send({ id: m.id, result }),
    (err: Error & { code?: string }) => send({ id: m.id, error: `${err.code ?? 'ERROR'}: ${err.message}` })
  )
})
send({ event: 'ready' })
