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
