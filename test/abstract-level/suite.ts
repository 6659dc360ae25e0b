/**
 * abstract-level's own conformance suite (node_modules/abstract-level/test), unmodified, run with
 * tape against MeshDB. The suite also re-runs itself on a sublevel. Each factory call gets a fresh
 * temporary directory; all of them are removed when tape finishes.
 *
 * Run: node --import tsx test/abstract-level/suite.ts   (TAP on stdout)
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import tape from 'tape'
import { MeshDB, type MeshDBOptions } from '../../index.js'

const require = createRequire(import.meta.url)
const suite = require('abstract-level/test') as (options: {
  test: typeof tape
  factory: (options?: MeshDBOptions<unknown, unknown>) => MeshDB<unknown, unknown>
}) => void

const root = mkdtempSync(join(tmpdir(), 'meshbee-abstract-level-'))
let n = 0

function freshTempDir (): string {
  return mkdtempSync(join(root, `db-${n++}-`))
}

function cleanup (): void {
  rmSync(root, { recursive: true, force: true })
}

tape.onFinish(cleanup)
// Also when the run dies before tape finishes: an uncaught error, or the parent stopping it.
process.on('exit', cleanup)
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => process.exit(signal === 'SIGINT' ? 130 : 143))
}

suite({
  test: tape,
  factory (options) {
    return new MeshDB<unknown, unknown>(freshTempDir(), options)
  }
})
