/**
 * A workaround for a lost length announcement in Hypercore's replicator (hypercore 11.37.1; the
 * code is unchanged in 11.39.5). Found by the chaos test (`npm run chaos -- --seed 17`,
 * test/regressions/chaos-seeds.test.ts).
 *
 * When a core grows, Hypercore announces the new length to each connected peer
 * (`Peer.signalUpgrade`). For a peer it has not yet marked as upgradable, it first awaits a check
 * (`_updateCanUpgradeAndSync`) and returns without announcing if that peer's own length changed
 * meanwhile, leaving the announcement to the handler of the incoming sync message (`onsync`). That
 * handler re-announces only when the local length is greater than the remote's. So when two peers
 * reach the same length at the same moment — both downloaded the same blocks from a third peer —
 * neither announces: each keeps a stale idea of the other's length. Hypercore asks a peer for an
 * upgrade only if that peer acknowledged its current length (`lengthAcked`), so from then on every
 * longer length the other peer offers is ignored. A meshbee peer that reaches a writer only
 * through such a relay stops receiving that writer's new entries until the connection is re-made.
 *
 * A second gap of the same kind (`npm run chaos -- --seed 107`): `_updateCanUpgradeAndSync`
 * announces only when the peer becomes upgradable, and it re-checks that only when that same peer
 * sends us data. A peer that grew by downloading from others (typically a whole upgrade at once,
 * before the tree nodes that prove the other peer's shorter length have arrived) finds it cannot
 * upgrade a lagging peer yet, says nothing, and never looks again once those nodes arrive from a
 * third peer: the lagging peer never hears of the new length from it.
 *
 * The workaround, both parts adding sync messages only:
 * 1. after handling a sync message, if the remote acknowledged a length of ours other than our
 *    length (same fork), announce ours again (it converges: the remote's next sync acknowledges it);
 * 2. after data from one peer, re-check every other peer that may have become upgradable (the
 *    check Hypercore already runs for the peer that sent the data).
 */
import { createRequire } from 'node:module'

interface PeerLike {
  onsync: (msg: unknown) => Promise<void>
  ondata: (msg: unknown) => Promise<void>
  _shouldUpdateCanUpgrade: () => boolean
  _updateCanUpgradeAndSync: () => Promise<void>
  replicator: { peers: PeerLike[] }
  sendSync: () => void
  lengthAcked: number
  remoteFork: number
  syncsProcessing: number
  removed: boolean
  core: { state: { length: number, fork: number } }
}

const PATCHED = Symbol.for('meshbee.hypercore-sync-patch')

const replicator = createRequire(import.meta.url)('hypercore/lib/replicator.js') as { Peer?: { prototype: PeerLike & { [PATCHED]?: true } } }
const proto = replicator.Peer?.prototype

const methods = ['onsync', 'ondata', 'sendSync', '_shouldUpdateCanUpgrade', '_updateCanUpgradeAndSync'] as const

if (proto !== undefined && methods.every((m) => typeof proto[m] === 'function') && proto[PATCHED] !== true) {
  const onsync = proto.onsync
  proto.onsync = async function (this: PeerLike, msg: unknown): Promise<void> {
    await onsync.call(this, msg)
    if (this.removed || this.syncsProcessing !== 0 || this.remoteFork !== this.core.state.fork) return
    if (this.lengthAcked !== this.core.state.length) this.sendSync()
  }
  const ondata = proto.ondata
  proto.ondata = async function (this: PeerLike, msg: unknown): Promise<void> {
    await ondata.call(this, msg)
    for (const peer of this.replicator.peers) {
      if (peer !== this && !peer.removed && peer._shouldUpdateCanUpgrade()) void peer._updateCanUpgradeAndSync()
    }
  }
  proto[PATCHED] = true
}

/*
 * A second change, for speed only: `MerkleTree.missingNodes` (how many tree nodes a block request
 * must ask for) checks the block's path up the tree one node at a time, each check a RocksDB read
 * batch of its own — a synchronous native call on the main thread. Counted in the 4 × 500
 * convergence benchmark: 16,400 of the run's 29,000 read batches, 2.7 a request. This version
 * reads the whole path (at most one node a tree level) in one batch and counts the same way: the
 * nodes missing below the first one held, stopping where the path enters the tree of `length`.
 * Hypercore's own source marks the spot ("we could prop use a read batch here"). The count, and
 * so every message sent, is unchanged.
 */
interface ReadBatch { hasTreeNode: (index: number) => Promise<boolean>, tryFlush: () => void }
interface FlatIterator { index: number, factor: number, contains: (index: number) => boolean, parent: () => number }
interface MerkleTreeLike { missingNodes: (session: { storage: { read: () => ReadBatch } }, index: number, length: number) => Promise<number>, [PATCHED]?: true }

const merkleRequire = createRequire(createRequire(import.meta.url).resolve('hypercore/lib/merkle-tree.js'))
const MerkleTree = (merkleRequire('./merkle-tree.js') as { MerkleTree?: MerkleTreeLike }).MerkleTree
const flat = merkleRequire('flat-tree') as { iterator: (index: number) => FlatIterator }

/** Hypercore's own `missingNodes`, kept for the test that compares the two. */
export const unpatchedMissingNodes = MerkleTree?.[PATCHED] === true ? null : MerkleTree?.missingNodes.bind(MerkleTree) ?? null

if (MerkleTree !== undefined && typeof MerkleTree.missingNodes === 'function' && MerkleTree.missingNodes.length === 3 && MerkleTree[PATCHED] !== true) {
  MerkleTree.missingNodes = async function (session, index, length) {
    const head = 2 * length
    const ite = flat.iterator(index)
    // the block's node is not in the tree of `length`: Hypercore answers 0 here too
    if (ite.index + ite.factor / 2 - 1 >= head) return 0
    const path: number[] = []
    while (!ite.contains(head)) {
      path.push(ite.index)
      if (path.length >= 1024) throw new Error(`missingNodes: no root above index ${index} at length ${length}`)
      ite.parent()
    }
    if (path.length === 0) return 0
    const rx = session.storage.read()
    const held = path.map((i) => rx.hasTreeNode(i))
    rx.tryFlush()
    const has = await Promise.all(held)
    let missing = 0
    while (missing < has.length && !has[missing]) missing++
    return missing
  }
  MerkleTree[PATCHED] = true
}
