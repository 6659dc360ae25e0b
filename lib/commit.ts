/**
 * The view commit: a key's new slots are rendered into its value, the digest follows every value
 * that changed, and the slots, values, checkpoints, digest and clock land in one atomic batch
 * (invariant 4).
 */
import type { Stamp } from '../crdt/hlc.js'
import { render } from '../crdt/keystate.js'
import { digestToBuffer, replaceEntry } from './digest.js'
import { mergeSlots } from './entry.js'
import type { BatchOp, Slot, ViewStore } from './view.js'

/** The operations of one commit being built, and the digest they lead to. */
export class Staged {
  readonly ops: BatchOp[] = []
  constructor (public digest: bigint) {}
}

export class ViewCommit {
  /** The view digest (see digest.ts), current with the committed view. */
  digest = 0n

  constructor (private readonly view: ViewStore) {}

  /** A new commit, starting from the committed digest. */
  begin (): Staged {
    return new Staged(this.digest)
  }

  /** Stages one key's new slots and rendered value; true if the rendered value changed. */
  stage (staged: Staged, key: Buffer, slots: Slot[]): boolean {
    const before = this.view.getValueSync(key)
    const after = render(mergeSlots(slots))
    staged.ops.push(this.view.putSlots(key, slots))
    if (before === undefined ? after === null : after !== null && before.equals(after)) return false
    staged.ops.push(this.view.putValue(key, after))
    staged.digest = replaceEntry(staged.digest, key, before, after)
    return true
  }

  /**
   * Commits a staged batch with the digest, and the clock's last stamp if given, in one atomic
   * write. An own write leaves the clock out: its entry, the newest stamp, is in the own log,
   * which the engine reads back on open.
   */
  async commit (staged: Staged, clock: Stamp | null): Promise<void> {
    if (clock !== null) staged.ops.push(this.view.putStamp(clock))
    staged.ops.push(this.view.putMeta('hash', digestToBuffer(staged.digest)))
    await this.view.write(staged.ops)
    this.digest = staged.digest
  }
}
