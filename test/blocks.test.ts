/**
 * Hyperbee block parsing (lib/blocks.ts), on blocks built by hand with Hyperbee's own schema.
 */
import { expect } from 'chai'
import { createRequire } from 'node:module'
import { decodeNode, innerBatchNode, treeLevels, treeSizeEstimate, wellFormed, type TreeLevel } from '../lib/blocks.js'

interface Codec<T> { encode: (v: T) => Uint8Array }
const messages = createRequire(import.meta.url)('hyperbee/lib/messages.js') as {
  Header: Codec<{ protocol: string }>
  Node: Codec<{ index: Uint8Array, key: Uint8Array, value: Uint8Array | null }>
  YoloIndex: Codec<{ levels: TreeLevel[] }>
}

const node = (key: string, levels: TreeLevel[], value: string | null = 'v'): Uint8Array =>
  messages.Node.encode({ key: Buffer.from(key), value: value === null ? null : Buffer.from(value), index: messages.YoloIndex.encode({ levels }) })

describe('lib/blocks: Hyperbee blocks read by hand', () => {
  it('reads a node: key, value and the tree path it carries', () => {
    const block = node('a', [{ keys: [1, 2], children: [] }])
    expect(Buffer.from(decodeNode(block).key).toString()).to.equal('a')
    expect(Buffer.from(decodeNode(block).value as Uint8Array).toString()).to.equal('v')
    expect(treeLevels(block)).to.deep.equal([{ keys: [1, 2], children: [] }])
    expect(decodeNode(node('b', [], null)).value).to.equal(null)
  })

  it('a node with an empty index is an inner node of a batch; a node with one ends it; garbage is neither', () => {
    expect(innerBatchNode(node('a', []))).to.equal(true)
    expect(innerBatchNode(node('a', [{ keys: [1], children: [] }]))).to.equal(false)
    expect(innerBatchNode(Buffer.from('not a node at all'))).to.equal(false)
  })

  it('well-formed: block 0 is the header, every later block a node whose pointers point backwards', () => {
    expect(wellFormed(messages.Header.encode({ protocol: 'hyperbee' }), 0)).to.equal(true)
    expect(wellFormed(messages.Header.encode({ protocol: 'other' }), 0)).to.equal(false)
    // block 3 pointing at keys 1..3 and children at blocks 2 and 3
    expect(wellFormed(node('c', [{ keys: [1, 3], children: [2, 0, 3, 1] }]), 3)).to.equal(true)
    expect(wellFormed(node('c', []), 3), 'an inner batch node').to.equal(true)
    expect(wellFormed(node('c', [{ keys: [4], children: [] }]), 3), 'a key ahead of the block').to.equal(false)
    expect(wellFormed(node('c', [{ keys: [0], children: [] }]), 3), 'a key at the header').to.equal(false)
    expect(wellFormed(node('c', [{ keys: [1], children: [5, 0] }]), 3), 'a child ahead of the block').to.equal(false)
    expect(wellFormed(node('c', [{ keys: [1], children: [2] }]), 3), 'children not in pairs').to.equal(false)
    expect(wellFormed(Buffer.from([0xff, 0xff, 0xff]), 3), 'garbage').to.equal(false)
  })

  it('estimates a tree size from one path, as if every node at a depth were like the one on it', () => {
    expect(treeSizeEstimate([])).to.equal(0)
    expect(treeSizeEstimate([{ keys: [1, 2, 3], children: [] }])).to.equal(3)
    // a root with 2 keys and 3 children, each child (like the one on the path) with 4 keys: 2 + 3 × 4
    expect(treeSizeEstimate([{ keys: [7, 9], children: [1, 0, 5, 0, 8, 0] }, { keys: [1, 2, 3, 4], children: [] }])).to.equal(14)
  })
})
