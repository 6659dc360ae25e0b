/**
 * lib/hypercore-patch.ts replaces Hypercore's `MerkleTree.missingNodes` with one that reads the
 * block's path up the tree in one storage batch. Its answer decides how many tree nodes each block
 * request asks for, so it must equal Hypercore's own for every block of partly held trees.
 *
 * Its replicator workaround must hold for the Hypercore a database's Corestore really loads: an
 * app's own copy is patched on open, and one the workaround cannot apply to is refused.
 */
import { expect } from 'chai'
import { cp, mkdir, readFile, readdir, symlink, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import Corestore from 'corestore'
import { MeshDB, type CorestoreLike } from '../index.js'
import { isPatched, unpatchedMissingNodes } from '../lib/hypercore-patch.js'
import { prng, int } from './helpers/crash-ops.js'
import { cleanup, tempDir, until } from './helpers/peers.js'

const require = createRequire(import.meta.url)
type MissingNodes = (session: unknown, index: number, length: number) => Promise<number>
const { MerkleTree } = require('hypercore/lib/merkle-tree.js') as { MerkleTree: { missingNodes: MissingNodes } }

describe('Hypercore patch: missingNodes in one read batch', function () {
  this.timeout(60_000)
  const stores: Corestore[] = []
  afterEach(async () => { for (const s of stores.splice(0)) await s.close() })

  it('counts the same missing nodes as Hypercore for every block of partly held trees', async () => {
    expect(unpatchedMissingNodes, 'the patch kept Hypercore\'s own function').to.be.a('function')
    expect(MerkleTree.missingNodes).to.not.equal(unpatchedMissingNodes)
    const original = unpatchedMissingNodes as MissingNodes

    const a = new Corestore(await tempDir())
    const b = new Corestore(await tempDir())
    stores.push(a, b)
    const writer = a.get({ name: 'log' })
    await writer.ready()
    const rnd = prng(7)
    for (let n = 0; n < 40; n++) await writer.append(Array.from({ length: 1 + int(rnd, 12) }, (_, i) => Buffer.from(`block ${n}.${i}`)))
    const reader = b.get({ key: writer.key })
    await reader.ready()
    const sa = a.replicate(true)
    const sb = b.replicate(false)
    sa.pipe(sb).pipe(sa)
    await reader.update({ wait: true })
    const length = writer.length

    let nonZero = 0
    let compared = 0
    const compare = async (): Promise<void> => {
      for (const core of [writer, reader]) {
        const state = (core as unknown as { core: { state: unknown } }).core.state
        for (let i = 0; i < length; i++) {
          for (const len of [length, Math.max(1, i + 1), Math.max(1, i - 3), Math.ceil(length / 2)]) {
            const want = await original(state, 2 * i, len)
            expect(await MerkleTree.missingNodes(state, 2 * i, len), `block ${i} at length ${len}`).to.equal(want)
            if (want > 0) nonZero++
            compared++
          }
        }
      }
    }
    // the reader holds only the upgrade's nodes, then a few scattered blocks, then more
    await compare()
    for (const round of [8, 40]) {
      for (let k = 0; k < round; k++) await reader.get(int(rnd, length))
      await compare()
    }
    expect(compared).to.be.greaterThan(1000)
    expect(nonZero, 'the trees were partly held: some blocks miss nodes').to.be.greaterThan(50)
    sa.destroy()
    sb.destroy()
  })
})

/**
 * An app whose own Hypercore is the one Corestore loads: a copy of hypercore and corestore at
 * another path (as npm lays out an app that depends on its own hypercore: that copy hoisted,
 * corestore beside it, meshbee's pinned one nested in meshbee), with every other package shared.
 * `edit` changes the copy's lib/replicator.js (a Hypercore whose internals differ).
 */
async function appCopy (edit?: (replicator: string) => string): Promise<{ Corestore: typeof Corestore, dir: string }> {
  const app = await tempDir('app-hypercore')
  const modules = join(app, 'node_modules')
  await mkdir(modules)
  const real = join(dirname(require.resolve('corestore/package.json')), '..')
  for (const name of await readdir(real)) {
    if (name === 'hypercore' || name === 'corestore' || name.startsWith('.')) continue
    await symlink(join(real, name), join(modules, name))
  }
  for (const name of ['hypercore', 'corestore']) await cp(join(real, name), join(modules, name), { recursive: true })
  if (edit !== undefined) {
    const file = join(modules, 'hypercore', 'lib', 'replicator.js')
    await writeFile(file, edit(await readFile(file, 'utf8')))
  }
  return { Corestore: createRequire(join(app, 'index.js'))('corestore') as typeof Corestore, dir: join(modules, 'hypercore') }
}

/** The replicator class the database's own writer core runs on. */
const replicatorOf = (db: MeshDB<string, string>): unknown =>
  (db.engine.own.core as unknown as { core: { replicator: object } }).core.replicator.constructor

describe('Hypercore patch: the Hypercore the Corestore really loads', function () {
  this.timeout(60_000)
  const dbs: Array<MeshDB<string, string>> = []
  const stores: Array<{ close: () => Promise<void> }> = []
  afterEach(async () => {
    for (const db of dbs.splice(0)) await db.close()
    for (const s of stores.splice(0)) await s.close()
    await cleanup()
  })

  it('patches the replicator of meshbee\'s own Corestore', async () => {
    const db = new MeshDB<string, string>(await tempDir())
    dbs.push(db)
    await db.open()
    expect(isPatched(replicatorOf(db))).to.equal(true)
  })

  it('patches an app\'s own copy of Hypercore when its Corestore is the storage, replicator and missingNodes', async () => {
    const { Corestore: AppCorestore, dir } = await appCopy()
    const Replicator = createRequire(join(dir, 'index.js'))('./lib/replicator.js') as unknown
    const { MerkleTree: AppTree } = createRequire(join(dir, 'index.js'))('./lib/merkle-tree.js') as { MerkleTree: { missingNodes: MissingNodes } }
    const ownTree = AppTree.missingNodes
    expect(Replicator, 'a copy of its own').to.not.equal(require('hypercore/lib/replicator.js'))
    expect(isPatched(Replicator), 'not patched on import: meshbee does not resolve it').to.equal(false)

    const store = new AppCorestore(await tempDir('store'))
    stores.push(store)
    const a = new MeshDB<string, string>(store as unknown as CorestoreLike, { viewPath: await tempDir('view') })
    dbs.push(a)
    await a.put('k', 'v')
    expect(replicatorOf(a)).to.equal(Replicator)
    expect(isPatched(Replicator), 'patched on open').to.equal(true)
    expect(AppTree.missingNodes, 'missingNodes too').to.not.equal(ownTree)

    // and it replicates through the patched copy
    const b = new MeshDB<string, string>(await tempDir('b'), { key: a.key })
    dbs.push(b)
    await b.open()
    const s = a.replicate(true)
    s.pipe(b.replicate(false)).pipe(s)
    await until([b], async () => await b.get('k') === 'v')
    s.destroy()
  })

  it('refuses to open, MESHBEE_HYPERCORE_UNSUPPORTED, on a Hypercore whose replicator lacks what the patch needs, leaving the data intact', async () => {
    const dirStore = await tempDir('store')
    const viewPath = await tempDir('view')
    const first = new Corestore(dirStore)
    const a = new MeshDB<string, string>(first as unknown as CorestoreLike, { viewPath })
    await a.put('k', 'v')
    const key = a.key
    await a.close()
    await first.close()

    for (const [what, edit] of [
      ['a renamed method', (src: string) => src.replaceAll('_updateCanUpgradeAndSync', '_refreshUpgradeAndSync')],
      ['a renamed field', (src: string) => src.replaceAll('lengthAcked', 'acknowledgedLength')],
      ['no Peer class exposed', (src: string) => src.replace('static Peer = Peer', 'static PeerClass = Peer')]
    ] as const) {
      const { Corestore: AppCorestore, dir } = await appCopy(edit)
      const store = new AppCorestore(dirStore)
      const db = new MeshDB<string, string>(store as unknown as CorestoreLike, { viewPath })
      const err = await db.open().then(() => null, (e: Error & { code?: string, cause?: Error & { code?: string } }) => e)
      expect(err?.code, what).to.equal('LEVEL_DATABASE_NOT_OPEN')
      expect(err?.cause?.code, what).to.equal('MESHBEE_HYPERCORE_UNSUPPORTED')
      expect(err?.cause?.message, what).to.include(dir)
      expect(db.status).to.equal('closed')
      await store.close()
    }

    const again = new Corestore(dirStore)
    stores.push(again)
    const b = new MeshDB<string, string>(again as unknown as CorestoreLike, { viewPath })
    dbs.push(b)
    expect(await b.get('k')).to.equal('v')
    expect(b.key.equals(key)).to.equal(true)
  })
})
