/**
 * The `meshbee` command line, run as users run it, in a child process (from the sources through tsx),
 * with a fresh temporary directory per test. Output is read with --json and parsed. The help of
 * every command is checked in process (run() is what the binary exits with) and a few through the
 * binary. The join test replicates two CLI peers over a local DHT testnet.
 */
import { expect } from 'chai'
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import createTestnet from 'hyperdht/testnet.js'
import { buildProgram, run } from '../cli/program.js'

/** The CLI from the sources, as bin/meshbee.js runs it from dist/ (the package test runs the built one). */
const BIN = ['--import', import.meta.resolve('tsx'), join(import.meta.dirname, '..', 'cli', 'main.ts')]

const ENV = { ...process.env }
delete ENV.MESHBEE_DIR

interface Result { code: number | null, stdout: string, stderr: string }

/** Runs `meshbee args…` in `cwd` to completion. */
async function cli (cwd: string, ...args: string[]): Promise<Result> {
  const child = spawn(process.execPath, [...BIN, ...args], { cwd, env: ENV })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  return { code, stdout, stderr }
}

/** Runs `meshbee --json args…`, expects exit 0 and parses the one JSON document it prints. */
async function json<T = any> (cwd: string, ...args: string[]): Promise<T> {
  const r = await cli(cwd, '--json', ...args)
  expect(r.code, `meshbee ${args.join(' ')}: ${r.stderr}`).to.equal(0)
  return JSON.parse(r.stdout) as T
}

/** Runs `meshbee --json args…`, expects exit 0 and parses NDJSON. */
async function ndjson<T = any> (cwd: string, ...args: string[]): Promise<T[]> {
  const r = await cli(cwd, '--json', ...args)
  expect(r.code, `meshbee ${args.join(' ')}: ${r.stderr}`).to.equal(0)
  return r.stdout.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as T)
}

/** A long-running `meshbee --json …` (join, seed): its NDJSON events, awaited by predicate. */
class Online {
  readonly child: ChildProcessWithoutNullStreams
  readonly events: any[] = []
  private waiters: Array<() => void> = []
  stderr = ''

  constructor (cwd: string, args: string[]) {
    this.child = spawn(process.execPath, [...BIN, '--json', ...args], { cwd, env: ENV })
    this.child.stderr.on('data', (d: Buffer) => { this.stderr += d.toString() })
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      this.events.push(JSON.parse(line))
      for (const w of this.waiters.splice(0)) w()
    })
    this.child.on('close', () => { for (const w of this.waiters.splice(0)) w() })
  }

  async waitFor (what: string, match: (e: any) => boolean, timeout = 20_000): Promise<any> {
    const deadline = Date.now() + timeout
    while (true) {
      const found = this.events.find(match)
      if (found !== undefined) return found
      if (this.child.exitCode !== null) throw new Error(`exited (${this.child.exitCode}) before ${what}: ${this.stderr}`)
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; events: ${JSON.stringify(this.events)}`)
      let timer: NodeJS.Timeout | undefined
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve)
        timer = setTimeout(resolve, deadline - Date.now())
      })
      clearTimeout(timer)
    }
  }

  async stop (signal: NodeJS.Signals = 'SIGINT'): Promise<number | null> {
    if (this.child.exitCode !== null) return this.child.exitCode
    const closed = new Promise<number | null>((resolve) => this.child.on('close', resolve))
    this.child.kill(signal)
    return await closed
  }
}

describe('cli', function () {
  let dir: string

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'meshbee-cli-'))
  })

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('--help of every command exits 0; usage errors exit 2', async () => {
    const program = buildProgram()
    const names = program.commands.map((c) => c.name())
    expect(names).to.include.members(['init', 'info', 'put', 'get', 'del', 'ls', 'patch', 'sadd', 'srem', 'smembers', 'writers',
      'add-writer', 'remove-writer', 'versions', 'diff', 'join', 'seed', 'import', 'export'])
    for (const name of [...names, null]) {
      let text = ''
      const output = { writeOut: (s: string) => { text += s }, writeErr: (s: string) => { text += s } }
      const argv = name === null ? ['node', 'meshbee', '--help'] : ['node', 'meshbee', name, '--help']
      expect(await run(argv, output), `${name ?? ''} --help`).to.equal(0)
      expect(text).to.include(`Usage: meshbee${name === null ? '' : ' ' + name}`)
      expect(text).to.include('4  not writable')
    }
    // and through the binary, with usage errors (a missing argument, an unknown command, a bad
    // option value, a bad key, not an object) and a directory without a database (exit 1)
    const [top, sub, helpCmd, none, ...usage] = await Promise.all([
      cli(dir, '--help'),
      cli(dir, 'diff', '--help'),
      cli(dir, 'help', 'join'),
      cli(dir, '--dir', 'nowhere', 'ls'),
      cli(dir, 'put', 'only-a-key'),
      cli(dir, 'frobnicate'),
      cli(dir, 'ls', '--limit', 'many'),
      cli(dir, 'add-writer', 'not-a-key'),
      cli(dir, '--json', 'patch', 'k', '[1,2]')
    ])
    for (const r of [top, sub, helpCmd]) expect(r.code, r.stderr).to.equal(0)
    expect(top.stdout).to.include('MESHBEE_DIR')
    expect(sub.stdout).to.include('--since <time>')
    expect(helpCmd.stdout).to.include('--bootstrap <host:port>')
    for (const r of usage) expect(r.code, r.stderr).to.equal(2)
    expect(JSON.parse(usage[4].stderr).error.code).to.equal('MESHBEE_USAGE')
    expect(none.code).to.equal(1)
    expect(none.stderr).to.include('MESHBEE_STORAGE')
  })

  it('init, put, get, ls, patch, sets, versions, writers, diff, del, info; get of a missing key exits 3', async () => {
    const created = await json(dir, 'init')
    expect(created.key).to.match(/^[0-9a-f]{64}$/)
    expect(created.writerKey).to.equal(created.key)
    expect(created.writable).to.equal(true)
    expect(created.dir).to.equal(join(dir, '.meshbee'))

    expect(await json(dir, 'put', 'todo/1', '{"title":"milk"}')).to.deep.equal({ key: 'todo/1', value: { title: 'milk' } })
    await json(dir, 'put', 'n', '42', '--string')
    expect(await json(dir, 'get', 'todo/1')).to.deep.equal({ key: 'todo/1', value: { title: 'milk' } })
    const plain = await cli(dir, 'get', 'n')
    expect(plain.code).to.equal(0)
    expect(JSON.parse(plain.stdout)).to.equal('42')

    const patched = await json(dir, 'patch', 'todo/1', '{"done":true}')
    expect(patched.value).to.deep.equal({ done: true, title: 'milk' })
    await json(dir, 'sadd', 'tags', 'home')
    await json(dir, 'sadd', 'tags', '7')
    expect((await json(dir, 'srem', 'tags', 'home')).members).to.deep.equal([7])
    expect(await json(dir, 'smembers', 'tags')).to.deep.equal([7])

    expect(await ndjson(dir, 'ls')).to.deep.equal([
      { key: 'n', value: '42' },
      { key: 'tags', value: [7] },
      { key: 'todo/1', value: { done: true, title: 'milk' } }
    ])
    expect(await ndjson(dir, 'ls', '--gt', 'n', '--limit', '1', '--reverse')).to.deep.equal([
      { key: 'todo/1', value: { done: true, title: 'milk' } }
    ])

    const versions = await json(dir, 'versions', 'todo/1')
    expect(versions).to.have.length(1)
    expect(versions[0]).to.include({ writer: created.writerKey, type: 'state', winner: true })
    expect(versions[0].value).to.deep.equal({ done: true, title: 'milk' })

    const writers = await json(dir, 'writers')
    expect(writers).to.have.length(1)
    expect(writers[0]).to.include({ key: created.writerKey, member: true, removed: false, local: true })
    expect(writers[0].length).to.be.greaterThan(5)

    const changes = await ndjson(dir, 'diff', created.writerKey)
    expect(changes.map((c) => c.key)).to.deep.equal(['n', 'tags', 'todo/1'])
    expect(changes[2]).to.include({ type: 'state', seq: 3 })
    expect(await ndjson(dir, 'diff', created.writerKey, '--from', '2', '--to', '3')).to.have.length(1)

    expect(await json(dir, 'del', 'n')).to.deep.equal({ key: 'n', deleted: true })
    const missing = await cli(dir, '--json', 'get', 'n')
    expect(missing.code).to.equal(3)
    expect(missing.stdout).to.equal('')
    expect(JSON.parse(missing.stderr).error.code).to.equal('MESHBEE_NOT_FOUND')

    const info = await json(dir, 'info')
    expect(info).to.include({ key: created.key, writerKey: created.writerKey, writable: true, writers: 1 })
    expect(info.hash).to.match(/^[0-9a-f]{64}$/)
    expect(info.stats).to.have.property('folds')

  })

  it('export, import round trip; a bad line stops the import with its line number', async () => {
    const a = join(dir, 'a')
    const b = join(dir, 'b')
    const file = join(dir, 'dump.ndjson')
    const lines = Array.from({ length: 1203 }, (_, i) => JSON.stringify({ key: `k/${String(i).padStart(4, '0')}`, value: i % 3 === 0 ? { i, tags: ['x'] } : `v${i}` }))
    writeFileSync(file, lines.join('\n') + '\n{"key":"k/gone","value":null}\n')
    await Promise.all([json(dir, '--dir', a, 'init'), json(dir, 'init', b)])
    expect(await json(dir, '--dir', a, 'import', file)).to.deep.equal({ file, puts: 1203, dels: 1 })

    const out = join(dir, 'out.ndjson')
    expect(await json(dir, '--dir', a, 'export', out)).to.deep.equal({ file: out, exported: 1203 })
    expect(readFileSync(out, 'utf8')).to.equal(lines.join('\n') + '\n')

    await json(dir, '--dir', b, 'import', out)
    const again = await cli(dir, '--dir', b, 'export')
    expect(again.code).to.equal(0)
    expect(again.stdout).to.equal(lines.join('\n') + '\n')

    writeFileSync(file, '{"key":"ok","value":1}\n{"key":"bad"}\n')
    const bad = await cli(dir, '--dir', b, 'import', file)
    expect(bad.code).to.equal(1)
    expect(bad.stderr).to.include('MESHBEE_INVALID_INPUT').and.include(':2')
  })

  it('join: a peer opened by key cannot write (exit 4) until it joins and --accept-all adds it', async () => {
    const testnet = await createTestnet(3)
    const bootstrap = testnet.bootstrap.map((n) => `${n.host === '::' ? '127.0.0.1' : n.host}:${n.port}`)
    const peers: Online[] = []
    try {
      const a = await json(dir, '--dir', 'a', 'init')
      const [, b] = await Promise.all([
        json(dir, '--dir', 'a', 'put', 'hello', '{"from":"a"}'),
        json(dir, '--dir', 'b', 'init', '--key', a.key)
      ])
      expect(b).to.include({ key: a.key, writable: false, created: false })
      const denied = await cli(dir, '--dir', 'b', 'put', 'x', '1')
      expect(denied.code).to.equal(4)
      expect(denied.stderr).to.include('MESHBEE_NOT_WRITABLE')

      const args = bootstrap.flatMap((n) => ['--bootstrap', n])
      // one after the other: peers announcing at the same instant can miss each other until
      // Hyperswarm's next refresh (see test/sync.test.ts)
      const pa = new Online(dir, ['--dir', 'a', 'join', '--accept-all', ...args])
      peers.push(pa)
      await pa.waitFor('a announced', (e) => e.event === 'joined')
      const pb = new Online(dir, ['--dir', 'b', 'join', ...args])
      peers.push(pb)
      await pb.waitFor('the change from a', (e) => e.event === 'change' && e.key === 'hello')
      expect(pb.events.find((e) => e.event === 'change')).to.deep.include({ value: { from: 'a' }, deleted: false })
      await pa.waitFor('the join request of b', (e) => e.event === 'join-request' && e.writer === b.writerKey)
      await pb.waitFor('b becoming a writer', (e) => e.event === 'writer-add' && e.self === true)
      expect(pa.events[0]).to.include({ event: 'joining', key: a.key, writable: true, mode: 'join' })
      expect(await pa.stop('SIGINT')).to.equal(0)
      expect(await pb.stop('SIGTERM')).to.equal(0)
      expect(pb.events.at(-1)).to.include({ event: 'left' })
      expect(await json(dir, '--dir', 'b', 'put', 'from-b', '1')).to.deep.equal({ key: 'from-b', value: 1 })
    } finally {
      for (const p of peers) await p.stop('SIGKILL')
      await testnet.destroy()
    }
  })
})
