/**
 * Last-writer-wins register with tombstones.
 *
 * The state is the greatest write seen, by the total order of versions (HLC stamp, then writer
 * key). A delete is a write whose value is `null` (a tombstone): it wins or loses like any other.
 * `merge` is a join: commutative, associative and idempotent.
 */
import { compareVersions, type Stamp } from './hlc.js'

export interface Register<V = Uint8Array> {
  readonly stamp: Stamp
  readonly writer: Uint8Array
  /** The value, or null for a tombstone. */
  readonly value: V | null
}

/** The register holding the greater version; `null` is the empty register. */
export function mergeRegisters<V> (a: Register<V> | null, b: Register<V> | null): Register<V> | null {
  if (a === null) return b
  if (b === null) return a
  return compareVersions(a, b) >= 0 ? a : b
}

/** Whether the register holds a live value (not empty, not a tombstone). */
export function isLive<V> (r: Register<V> | null): r is Register<V> & { value: V } {
  return r !== null && r.value !== null
}
