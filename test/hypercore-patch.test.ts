/**
 * lib/hypercore-patch.ts replaces Hypercore's `MerkleTree.missingNodes` with one that reads the
 * block's path up the tree in one storage batch. Its answer decides how many tree nodes each block
 * request asks for, so it must equal Hypercore's own for every block of partly held trees.
 */
import { expect } from 'chai'
import { createRequire } from 'node:module'
import Corestore from 'corestore'
import { unpatchedMissingNodes } from '../lib/hypercore-patch.js'
import { prng, int } from './helpers/crash-ops.js'
import { tempDir } from './helpers/peers.js'

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
