/**
 * A directory's identity: the key of the database it belongs to, kept in the own log's store
 * (Hypercore user data) so it survives a lost view, and this peer's writer key.
 */
import { join } from 'node:path'
import Corestore from 'corestore'
import * as crypto from 'hypercore-crypto'

/** Where the own log's store keeps the key of the database it belongs to. */
export const IDENTITY = 'meshbee/database'
/** The name of the own log in the store. */
export const OWN_LOG = 'meshbee-writer'

/** The topic of a database key (Hypercore's discovery key). */
export function discoveryKeyOf (key: Uint8Array): Buffer {
  return Buffer.from(crypto.discoveryKey(key))
}

/**
 * A directory's writer key (made now if the directory is new: the own log's key pair derives from
 * the store's seed) and the database it belongs to (null: none yet), without opening a database.
 */
export async function peekDirectory (dir: string): Promise<{ writerKey: Buffer, database: Buffer | null }> {
  const store = new Corestore(join(dir, 'cores'))
  try {
    const core = store.get({ name: OWN_LOG })
    await core.ready()
    const database = await core.getUserData(IDENTITY) as Buffer | null
    return { writerKey: Buffer.from(core.key), database: database === null ? null : Buffer.from(database) }
  } finally {
    await store.close()
  }
}
