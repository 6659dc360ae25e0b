/**
 * View damage between restarts: what a chaos schedule does to a closed peer's view directory
 * before reopening it. The view is derived from the logs, so after any of these the peer must
 * come back with the same view (rebuilt from its logs, or refolded).
 *
 * - `wipe`: the view directory is gone (lost, or never copied with the logs)
 * - `manifest`: LevelDB's MANIFEST cut to half its size (LevelDB cannot open it)
 * - `tables`: every table file (.ldb) removed; a view small enough to live in LevelDB's log alone
 *   (most chaos views) has its log cut to half instead: the view comes back without its newest
 *   commits, as after a crash that lost them
 * - `flip`: the last digit of a write's tag flipped in every copy of it in the table and log
 *   files: in the value the view renders (its row) and the entry behind it (its slot), so the
 *   recomputed digest no longer matches on open. (A flip in a slot alone, behind no rendered
 *   value, is found by `verify()`, not on open: see ARCHITECTURE.md "Damaged storage".)
 */
import { readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

export type ViewDamage = 'wipe' | 'manifest' | 'tables' | 'flip'

export const VIEW_DAMAGES: readonly ViewDamage[] = ['wipe', 'manifest', 'tables', 'flip']

/** A write's tag (`p<peer>.<n>`) that a value the view renders holds as a JSON string, or null. */
export function flipTarget (values: Iterable<string>): string | null {
  for (const v of values) {
    const m = /"(p\d+\.\d+)"/.exec(v)
    if (m !== null) return m[1] as string
  }
  return null
}

/**
 * Damages the view at `dir` (a closed peer's `<storage>/view`). `target` (for `flip`) is a tag
 * from {@link flipTarget}. Returns what was done, for the trace.
 */
export async function damageView (dir: string, kind: ViewDamage, target: string | null): Promise<string> {
  const files = (await readdir(dir).catch(() => [] as string[])).sort().map((f) => join(dir, f))
  switch (kind) {
    case 'wipe':
      await rm(dir, { recursive: true, force: true })
      return 'view removed'
    case 'manifest': {
      const manifest = files.find((f) => f.includes('MANIFEST-'))
      if (manifest === undefined) return 'no MANIFEST'
      await truncate(manifest, Math.floor((await stat(manifest)).size / 2))
      return 'MANIFEST truncated'
    }
    case 'tables': {
      const tables = files.filter((f) => f.endsWith('.ldb'))
      for (const t of tables) await rm(t)
      if (tables.length > 0) return `${tables.length} table files removed`
      const log = files.find((f) => f.endsWith('.log'))
      if (log === undefined) return 'no table or log file'
      const size = (await stat(log)).size
      await truncate(log, Math.floor(size / 2))
      return `no table files: log cut from ${size} to ${Math.floor(size / 2)} bytes`
    }
    case 'flip': {
      if (target === null) return 'nothing to flip'
      const needle = Buffer.from(JSON.stringify(target))
      let n = 0
      for (const file of files.filter((f) => f.endsWith('.ldb') || f.endsWith('.log'))) {
        const bytes = await readFile(file)
        let changed = false
        for (let at = bytes.indexOf(needle); at !== -1; at = bytes.indexOf(needle, at + 1)) {
          const last = at + needle.length - 2 // the tag's last digit (before its closing quote), another digit
          bytes[last] = bytes[last] === 0x30 ? 0x31 : 0x30
          changed = true
          n++
        }
        if (changed) await writeFile(file, bytes)
      }
      return `${n} copies of ${target} flipped`
    }
  }
}
