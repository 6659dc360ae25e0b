/**
 * Checkouts: read-only databases holding the view as it was at a set of cuts.
 */
import type { AbstractDatabaseOptions } from 'abstract-level'
import { MemoryLevel } from 'memory-level'
import { invalidCuts, levelError } from './errors.js'
import { toKey } from './keys.js'
import type { Cuts } from './types.js'

/** Cuts as given to `checkout`, as a map of hex writer key to length. */
export function normalizeCuts (cuts: Cuts): Map<string, number> {
  if (cuts === null || typeof cuts !== 'object') throw invalidCuts('cuts must be a Map, an object or pairs of writer key and length')
  const pairs: Iterable<readonly [string | Uint8Array, number]> = Symbol.iterator in cuts
    ? cuts as Iterable<readonly [string | Uint8Array, number]>
    : Object.entries(cuts)
  const out = new Map<string, number>()
  for (const pair of pairs) {
    if (!Array.isArray(pair) || pair.length !== 2) throw invalidCuts('each cut is a [writer key, length] pair')
    const [k, len] = pair as [unknown, unknown]
    let id: string
    try {
      id = toKey(k as string, 'writer key').toString('hex')
    } catch {
      throw invalidCuts('a writer key in cuts is not 32 bytes or 64 hex characters')
    }
    if (!Number.isSafeInteger(len) || (len as number) < 0) throw invalidCuts(`the cut of ${id} is not a length`)
    out.set(id, len as number)
  }
  return out
}

const readOnly = (): Error => levelError('LEVEL_READONLY', 'A checkout is read-only')

/** A read-only abstract-level database holding the view at a set of cuts, built when it opens. */
export class Checkout<K, V> extends MemoryLevel<K, V> {
  private readonly load: () => Promise<Array<[Buffer, Buffer]>>

  constructor (load: () => Promise<Array<[Buffer, Buffer]>>, options: AbstractDatabaseOptions<K, V>) {
    super({ ...options, storeEncoding: 'buffer' } as never)
    this.load = load
  }

  async _open (options: object): Promise<void> {
    await (MemoryLevel.prototype as unknown as { _open: (o: object) => Promise<void> })._open.call(this, options)
    const entries = await this.load()
    const batch = (MemoryLevel.prototype as unknown as { _batch: (ops: object[], o: object) => Promise<void> })._batch
    await batch.call(this, entries.map(([key, value]) => ({ type: 'put', key, value })), {})
  }

  async _put (): Promise<void> { throw readOnly() }
  async _del (): Promise<void> { throw readOnly() }
  async _batch (): Promise<void> { throw readOnly() }
  async _clear (): Promise<void> { throw readOnly() }
}
