/**
 * A workaround for a lost length announcement in Hypercore's replicator (found in hypercore
 * 11.37.1; still there in 11.39.5, the newest release: chaos seeds 17 and 107 fail on it without
 * the workaround). Found by the chaos test (`npm run chaos -- --seed 17`,
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
 *
 * Which Hypercore: the one corestore loads, which need not be the one meshbee resolves (an app
 * whose own `hypercore` dependency is hoisted gets corestore to load that copy, and meshbee's
 * pinned one nested beside it). On import, this module patches Hypercore as resolved from
 * corestore's own path (and meshbee's, if that is another copy). On open, the database checks the
 * replicator of its own writer's core — the class its Corestore really uses, an app's Corestore
 * included — patches it there if it is another copy, and refuses to open with
 * `MESHBEE_HYPERCORE_UNSUPPORTED` when that Hypercore lacks what the workaround needs.
 */
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { hypercoreUnsupported } from './errors.js'

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

type PeerProto = PeerLike & { [PATCHED]?: true }
/** Hypercore's `lib/replicator.js` export: the Replicator class, with its Peer class as a static. */
interface ReplicatorClass { Peer?: (new (...args: never[]) => unknown) & { prototype: PeerProto } }

const PATCHED = Symbol.for('meshbee.hypercore-sync-patch')

/** The Peer methods the workaround wraps or calls. */
const METHODS = ['onsync', 'ondata', 'sendSync', '_shouldUpdateCanUpgrade', '_updateCanUpgradeAndSync'] as const
/** The Peer fields it reads (set in Peer's constructor). */
const FIELDS = ['lengthAcked', 'remoteFork', 'syncsProcessing', 'removed', 'core', 'replicator'] as const

const source = (fn: unknown): string => typeof fn === 'function' ? Function.prototype.toString.call(fn) : ''

/** Why the workaround cannot apply to this replicator class, or null if it can (or already does). */
function unsupported (Replicator: unknown): string | null {
  const Peer = typeof Replicator === 'function' ? (Replicator as ReplicatorClass).Peer : undefined
  if (typeof Peer !== 'function') return 'exposes no replicator Peer class'
  const proto = Peer.prototype
  if (proto[PATCHED] === true) return null
  const missing: string[] = METHODS.filter((m) => typeof proto[m] !== 'function').map((m) => `Peer.${m}()`)
  const peer = source(Peer)
  for (const f of FIELDS) if (!peer.includes(`this.${f} =`)) missing.push(`Peer.${f}`)
  if (!source(Replicator).includes('this.peers =')) missing.push('Replicator.peers')
  return missing.length === 0 ? null : `lacks replicator internals the workaround uses (${missing.join(', ')})`
}

/**
 * Applies the workaround to a replicator class (once: a patched class is marked). Returns null
 * once it holds, or why it cannot.
 */
function patchReplicator (Replicator: unknown): string | null {
  const why = unsupported(Replicator)
  if (why !== null) return why
  const proto = (Replicator as Required<ReplicatorClass>).Peer.prototype
  if (proto[PATCHED] === true) return null
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
  return null
}

/*
 * A second change, for speed only: `MerkleTree.missingNodes` (how many tree nodes a block request
 * must ask for) checks the block's path up the tree one node at a time, each check a RocksDB read
 * batch of its own — a synchronous native call on the main thread. Counted in the 4 × 500
 * convergence benchmark: 16,400 of the run's 29,000 read batches, 2.7 a request. This version
 * reads the whole path (at most one node a tree level) in one batch and counts the same way: the
 * nodes missing below the first one held, stopping where the path enters the tree of `length`.
 * Hypercore's own source marks the spot ("we could prop use a read batch here"). The count, and
 * so every message sent, is unchanged. It is applied where the workaround is, when that
 * Hypercore's `missingNodes` has the shape it replaces; otherwise Hypercore's own stays.
 */
interface ReadBatch { hasTreeNode: (index: number) => Promise<boolean>, tryFlush: () => void }
interface FlatIterator { index: number, factor: number, contains: (index: number) => boolean, parent: () => number }
interface MerkleTreeLike { missingNodes: (session: { storage: { read: () => ReadBatch } }, index: number, length: number) => Promise<number>, [PATCHED]?: true }

/** Replaces `missingNodes` in the merkle-tree module of the Hypercore `req` loads from. */
function patchMissingNodes (req: NodeJS.Require): void {
  let MerkleTree: MerkleTreeLike | undefined
  let flat: { iterator: (index: number) => FlatIterator }
  try {
    MerkleTree = (req('./merkle-tree.js') as { MerkleTree?: MerkleTreeLike }).MerkleTree
    flat = req('flat-tree') as typeof flat
  } catch {
    return
  }
  if (MerkleTree === undefined || typeof MerkleTree.missingNodes !== 'function' || MerkleTree.missingNodes.length !== 3 || MerkleTree[PATCHED] === true) return
  if (typeof flat?.iterator !== 'function') return
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

const here = createRequire(import.meta.url)

/** The directory of the Hypercore package that `req` resolves, or null. */
function hypercoreDir (req: NodeJS.Require): string | null {
  try {
    return dirname(req.resolve('hypercore/package.json'))
  } catch {
    return null
  }
}

/** A require rooted in Hypercore's lib/, where replicator.js and merkle-tree.js live. */
const libRequire = (dir: string): NodeJS.Require => createRequire(join(dir, 'lib', 'replicator.js'))

/** Hypercore as corestore loads it (resolved from corestore's own path), then as meshbee resolves it. */
const dirs = [...new Set([hypercoreDir(createRequire(here.resolve('corestore'))), hypercoreDir(here)].filter((d): d is string => d !== null))]

/** Hypercore's own `missingNodes` (of the copy corestore loads), kept for the test that compares the two. */
export const unpatchedMissingNodes = ((): MerkleTreeLike['missingNodes'] | null => {
  try {
    const tree = (libRequire(dirs[0]!)('./merkle-tree.js') as { MerkleTree?: MerkleTreeLike }).MerkleTree
    return tree === undefined || tree[PATCHED] === true || typeof tree.missingNodes !== 'function' ? null : tree.missingNodes.bind(tree)
  } catch {
    return null
  }
})()

for (const dir of dirs) {
  const req = libRequire(dir)
  // a copy the workaround cannot apply to is refused on open, if a database's Corestore uses it
  try {
    patchReplicator(req('./replicator.js'))
  } catch {}
  patchMissingNodes(req)
}

/** The loaded module file whose export is `exported` (the package is CommonJS), or null. */
function moduleFile (exported: unknown): string | null {
  for (const [file, mod] of Object.entries(here.cache)) if (mod?.exports === exported) return file
  return null
}

/** ` (hypercore <version> at <dir>)` for a replicator class loaded from a file, or ''. */
function describe (file: string | null): string {
  if (file === null) return ''
  const dir = dirname(dirname(file))
  try {
    const { version } = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version?: unknown }
    return ` (hypercore ${String(version)} at ${dir})`
  } catch {
    return ` (at ${dir})`
  }
}

/**
 * Makes sure the workaround holds for the Hypercore `core` (an open Hypercore session) runs on:
 * the replicator class it really uses, whichever copy of Hypercore that is. A copy not patched on
 * import (an app's own, loaded by its Corestore) is patched here, `missingNodes` with it when it
 * can be found.
 *
 * @throws MeshError `MESHBEE_HYPERCORE_UNSUPPORTED` when that Hypercore lacks what the workaround
 *   needs (another major version, or internals renamed).
 */
export function ensureHypercorePatched (core: unknown): void {
  const Replicator = (core as { core?: { replicator?: object | null } | null } | null)?.core?.replicator?.constructor
  if ((Replicator as ReplicatorClass | undefined)?.Peer?.prototype[PATCHED] === true) return
  const why = patchReplicator(Replicator)
  const file = moduleFile(Replicator)
  if (why !== null) throw hypercoreUnsupported(why + describe(file))
  if (file !== null) patchMissingNodes(createRequire(file))
}

/** @internal For tests: whether a replicator class carries the workaround. */
export function isPatched (Replicator: unknown): boolean {
  return (Replicator as ReplicatorClass | undefined)?.Peer?.prototype[PATCHED] === true
}
