/**
 * Runs abstract-level's own conformance suite against MeshDB (test/abstract-level/suite.ts) in a
 * child process and checks its TAP summary. The suite is tape-based and runs thousands of
 * assertions (again on a sublevel), each write appending to a Hypercore, so it gets its own
 * process and a generous timeout.
 */
import { expect } from 'chai'
import { spawn } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const SUITE = join('test', 'abstract-level', 'suite.ts')
const TIMEOUT = 300_000
/** abstract-level 3.1.1 has 5168 assertions with MeshDB's manifest; far fewer means the suite did not really run. */
const MIN_PASS = 4500

interface Run { code: number | null, signal: NodeJS.Signals | null, stdout: string, stderr: string, ms: number }

function runSuite (timeout: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    const started = Date.now()
    const child = spawn(process.execPath, ['--import', 'tsx', SUITE], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe']
    })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d })
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d })
    const timer = setTimeout(() => child.kill('SIGTERM'), timeout)
    child.on('error', (err) => { clearTimeout(timer); reject(err) })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started })
    })
  })
}

/** Each failing assertion with the test it belongs to and its YAML diagnostics. */
function failures (tap: string, max = 40): string[] {
  const out: string[] = []
  const lines = tap.split('\n')
  let test = ''
  for (let i = 0; i < lines.length && out.length < max; i++) {
    const line = lines[i]
    if (line.startsWith('# ')) test = line
    if (!line.startsWith('not ok')) continue
    const block = [test, line]
    if (lines[i + 1]?.trim() === '---') {
      for (i++; i < lines.length; i++) {
        block.push(lines[i])
        if (lines[i].trim() === '...') break
      }
    }
    out.push(block.join('\n'))
  }
  return out
}

function count (tap: string, name: string): number | null {
  const m = new RegExp(`^# ${name}\\s+(\\d+)\\s*$`, 'm').exec(tap)
  return m === null ? null : Number(m[1])
}

describe('abstract-level conformance suite', function () {
  this.timeout(TIMEOUT + 10_000)

  it('passes in full against MeshDB (and a sublevel of it)', async () => {
    const run = await runSuite(TIMEOUT)
    const tests = count(run.stdout, 'tests')
    const pass = count(run.stdout, 'pass')
    // tape prints "# fail N" only when N > 0.
    const fail = count(run.stdout, 'fail') ?? 0
    const notOk = failures(run.stdout)
    const report = [
      `exit code ${String(run.code)}${run.signal !== null ? ` (signal ${run.signal})` : ''} after ${run.ms} ms`,
      `# tests ${String(tests)}, # pass ${String(pass)}, # fail ${fail}`,
      ...notOk,
      notOk.length === 0 ? `last TAP lines:\n${run.stdout.trimEnd().split('\n').slice(-15).join('\n')}` : '',
      `stderr (tail):\n${run.stderr.trimEnd().split('\n').slice(-20).join('\n')}`
    ].join('\n')

    expect(fail, report).to.equal(0)
    expect(notOk, report).to.have.length(0)
    expect(run.code, report).to.equal(0)
    expect(tests, report).to.be.a('number')
    expect(pass, report).to.equal(tests)
    expect(pass, report).to.be.greaterThan(MIN_PASS)
    expect(run.stdout, report).to.match(/^# ok\s*$/m)
  })
})
