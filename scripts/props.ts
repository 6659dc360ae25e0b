/**
 * The CRDT property tests at 100,000 runs per property (npm test runs 1,000).
 *
 *   npm run props                       # every property in test/crdt
 *   npm run props -- --grep associative # a subset; other arguments go to mocha too
 *
 * MESHBEE_PROP_RUNS overrides the count; MESHBEE_PROP_SEED and MESHBEE_PROP_PATH replay a failure.
 */
import { spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const mocha = createRequire(import.meta.url).resolve('mocha/bin/mocha.js')
const runs = process.env.MESHBEE_PROP_RUNS ?? '100000'

console.log(`property tests, ${runs} runs each`)
const child = spawn(process.execPath, [
  mocha, '--no-config', '--node-option', 'import=tsx', '--extension', 'ts', '--timeout', '0', '--exit',
  'test/crdt/**/*.test.ts', ...process.argv.slice(2)
], { cwd: root, stdio: 'inherit', env: { ...process.env, MESHBEE_PROP_RUNS: runs } })

child.on('exit', (code, signal) => {
  process.exitCode = code ?? (signal !== null ? 1 : 0)
})
