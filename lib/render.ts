/**
 * Reading the view's rows: a whole value is its row's payload; a document or set is assembled from
 * its items (the live fields and members, each a row of its own), at the same read point as the
 * row. Reading one costs its size; writing to it costs only what changed.
 */
import { renderDoc, renderSet } from '../crdt/parts.js'
import { FIELD_NS, MEMBER_NS } from './entry.js'
import { notSync } from './errors.js'
import type { InnerIterator } from './view.js'
import { ROW_DOC, ROW_SET, ROW_VALUE, partPrefix, type ViewSnapshot, type ViewStore } from './view.js'

type Bytes = Buffer

/** What a values row of `key` reads as, at `snap` or now. */
export async function readRow (view: ViewStore, key: Uint8Array, row: Bytes, snap?: ViewSnapshot): Promise<Bytes> {
  switch (row[0]) {
    case ROW_DOC: {
      const at = partPrefix(key, FIELD_NS).byteLength
      const fields: Array<[string, Uint8Array]> = []
      for await (const [part, item] of view.scan('items', partPrefix(key, FIELD_NS), snap)) fields.push([part.subarray(at).toString('utf8'), item])
      return Buffer.from(renderDoc(row.subarray(1), fields))
    }
    case ROW_SET: {
      const at = partPrefix(key, MEMBER_NS).byteLength
      const members: Uint8Array[] = []
      for await (const [part] of view.scan('items', partPrefix(key, MEMBER_NS), snap)) members.push(part.subarray(at))
      return Buffer.from(renderSet(members))
    }
    default: return row.subarray(1)
  }
}

/**
 * What a values row of `key` will read as once a commit lands: the view's items now, with the
 * commit's item changes (`changes`: part key in hex → the item, or null when it goes) laid over.
 */
export async function readRowOver (view: ViewStore, key: Uint8Array, row: Bytes, changes: ReadonlyMap<string, Uint8Array | null>): Promise<Bytes> {
  if (row[0] !== ROW_DOC && row[0] !== ROW_SET) return row.subarray(1)
  const kind = row[0] === ROW_DOC ? FIELD_NS : MEMBER_NS
  const prefix = partPrefix(key, kind)
  const items = new Map<string, Uint8Array>()
  for await (const [part, item] of view.scan('items', prefix)) items.set(part.toString('hex'), item)
  const p = Buffer.from(prefix).toString('hex')
  for (const [part, item] of changes) {
    if (!part.startsWith(p)) continue
    if (item === null) items.delete(part)
    else items.set(part, item)
  }
  const sorted = [...items].map(([part, item]) => [Buffer.from(part, 'hex'), item] as const).sort((a, b) => Buffer.compare(a[0], b[0]))
  const at = prefix.byteLength
  if (kind === FIELD_NS) return Buffer.from(renderDoc(row.subarray(1), sorted.map(([part, item]) => [part.subarray(at).toString('utf8'), item])))
  return Buffer.from(renderSet(sorted.map(([part]) => part.subarray(at))))
}

/**
 * What a row reads as, synchronously: a whole value only.
 *
 * @throws MeshError `MESHBEE_NOT_SYNC` for a document or set (assembled from its items: `get` reads it)
 */
export function readRowSync (row: Bytes): Bytes {
  if (row[0] !== ROW_VALUE) throw notSync()
  return row.subarray(1)
}

/**
 * The view's values iterator with each row read as its value: a whole value's in place, a
 * document's or set's assembled at `snap` (the iterator's own read point).
 */
export class RowIterator implements InnerIterator {
  constructor (private readonly view: ViewStore, private readonly inner: InnerIterator, private readonly prefix: Bytes,
    private readonly snap: ViewSnapshot | undefined, private readonly keys: boolean, private readonly onClose: () => Promise<void>) {}

  private async rows (list: Array<[Bytes, Bytes]>): Promise<Array<[Bytes, Bytes]>> {
    for (const e of list) {
      const row = e[1]
      e[1] = row[0] === ROW_VALUE ? row.subarray(1) : await readRow(this.view, e[0].subarray(this.prefix.byteLength), row, this.snap)
      if (!this.keys) e[0] = undefined as unknown as Bytes
    }
    return list
  }

  async nextv (size: number): Promise<Array<[Bytes, Bytes]>> {
    return await this.rows(await this.inner.nextv(size))
  }

  async all (): Promise<Array<[Bytes, Bytes]>> {
    return await this.rows(await this.inner.all())
  }

  seek (target: Bytes): void {
    this.inner.seek(target)
  }

  async close (): Promise<void> {
    try {
      await this.inner.close()
    } finally {
      await this.onClose()
    }
  }
}
