/**
 * LWW map: a JSON document merged field by field.
 *
 * Each field is an LWW register; a field register whose value is `null` is a deleted field (the
 * JSON value itself is boxed as `[json]` so that JSON `null` stays a value). `reset` is the version
 * of the last whole-object write: fields older than it are dropped, so a `put` of the whole object
 * replaces it. `merge` is a join: commutative, associative and idempotent.
 */
import { compareVersions, type Version } from './hlc.js'
import { type Json } from './json.js'
import { mergeRegisters, type Register } from './lww.js'

export type FieldValue = readonly [Json]
export type Fields = ReadonlyMap<string, Register<FieldValue>>

export interface MapState {
  readonly reset: Version | null
  readonly fields: Fields
}

export const EMPTY_MAP: MapState = Object.freeze({ reset: null, fields: new Map() })

export function maxVersion (a: Version | null, b: Version | null): Version | null {
  if (a === null) return b
  if (b === null) return a
  return compareVersions(a, b) >= 0 ? a : b
}

/** Whether `v` is strictly newer than `reset` (everything is newer than no reset). */
export function after (v: Version, reset: Version | null): boolean {
  return reset === null || compareVersions(v, reset) > 0
}

export function mergeFields (a: Fields, b: Fields, reset: Version | null): Map<string, Register<FieldValue>> {
  const out = new Map<string, Register<FieldValue>>()
  for (const src of [a, b]) {
    for (const [name, reg] of src) {
      if (!after(reg, reset)) continue
      const m = mergeRegisters(out.get(name) ?? null, reg)
      if (m !== null) out.set(name, m)
    }
  }
  return out
}

export function mergeMaps (a: MapState, b: MapState): MapState {
  const reset = maxVersion(a.reset, b.reset)
  return { reset, fields: mergeFields(a.fields, b.fields, reset) }
}

/**
 * The document: `base` (the whole object of the last reset, if any) with the live fields applied.
 * Fields are defined, not assigned, so that a field named `__proto__` is a field like any other.
 */
export function renderMap (fields: Fields, base: { [field: string]: Json } = {}): { [field: string]: Json } {
  const doc: { [field: string]: Json } = { ...base }
  for (const [name, reg] of fields) {
    if (reg.value === null) delete doc[name]
    else Object.defineProperty(doc, name, { value: reg.value[0], enumerable: true, writable: true, configurable: true })
  }
  return doc
}
