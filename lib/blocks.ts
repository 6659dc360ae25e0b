/**
 * Hyperbee blocks, read without Hyperbee: the node a block holds, the B-tree path it carries, and
 * the rules that depend only on a block's bytes (whether it is well-formed, whether it ends a
 * batch). Pure: no I/O.
 */
import { createRequire } from 'node:module'

interface BeeMessages {
  Header: { decode: (b: Uint8Array) => { protocol: string } }
  Node: { decode: (b: Uint8Array) => { index: Uint8Array, key: Uint8Array, value?: Uint8Array | null } }
  YoloIndex: { decode: (b: Uint8Array) => { levels: TreeLevel[] } }
}
const messages = createRequire(import.meta.url)('hyperbee/lib/messages.js') as BeeMessages

/** One node of a Hyperbee B-tree: its keys' and children's block indexes (children in pairs: block, offset). */
export interface TreeLevel { keys: number[], children: number[] }

/** The node a Hyperbee block holds: its key, its value (null for none) and its encoded tree path. */
export function decodeNode (block: Uint8Array): { key: Uint8Array, value: Uint8Array | null, index: Uint8Array } {
  const node = messages.Node.decode(block)
  return { key: node.key, value: node.value instanceof Uint8Array ? node.value : null, index: node.index }
}

/** The tree path a Hyperbee block carries: its index's nodes, root first (throws if it is no node). */
export function treeLevels (block: Uint8Array): TreeLevel[] {
  return messages.YoloIndex.decode(messages.Node.decode(block).index).levels
}

/** Whether a block is a Hyperbee node without an index: any node of a batch but its last. */
export function innerBatchNode (block: Uint8Array): boolean {
  try {
    return treeLevels(block).length === 0
  } catch {
    return false
  }
}

/**
 * Whether block `i` of a log decodes as a Hyperbee block whose pointers all point backwards. A
 * node with an empty index is well-formed: it is a node of a batch other than the last.
 */
export function wellFormed (block: Uint8Array, i: number): boolean {
  try {
    if (i === 0) return messages.Header.decode(block).protocol === 'hyperbee'
    const node = messages.Node.decode(block)
    if (!(node.key instanceof Uint8Array) || !(node.index instanceof Uint8Array)) return false
    const { levels } = messages.YoloIndex.decode(node.index)
    for (const l of levels) {
      if (l.children.length % 2 !== 0) return false
      for (const seq of l.keys) if (!(seq <= i && seq >= 1)) return false
      for (let j = 0; j < l.children.length; j += 2) if (!(l.children[j] <= i && l.children[j] >= 1)) return false
    }
    return true
  } catch {
    return false
  }
}

/**
 * The number of keys in a Hyperbee tree, estimated from one block's index: the path of nodes from
 * the root to the block's key, as if every node had as many children and keys as the one on the
 * path at its depth.
 */
export function treeSizeEstimate (levels: TreeLevel[]): number {
  let n = 0
  for (let i = levels.length - 1; i >= 0; i--) {
    const node = levels[i] as TreeLevel
    n = node.keys.length + (node.children.length / 2) * n
  }
  return n
}
