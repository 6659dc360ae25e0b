/**
 * The `meshbee` command line, run as users run it, in a child process (from the sources through tsx),
 * with a fresh temporary directory per test. Output is read with --json and parsed. The help of
 * every command is checked in process (run() is what the binary exits with) and a few through the
 * binary. The online tests start `meshbee testnet` and run `join` beside other commands, which
 * reach the running peer through its control socket.
 */
import { expect } from 'chai'
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { existsSync, lstatSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { buildProgram, run } from '../cli/program.js'
import { parseValue } from '../cli/context.js'

/**
 * The CLI as bin/meshbee.js runs it: compiled into dist/, built from the sources before the tests
 * (`npm run build`). A process starts in about half the time it takes through tsx, and the tests
 * start some hundreds.
 */
const BIN = [join(import.meta.dirname, '..', 'dist', 'cli', 'main.js')]

let built = false
function build (this: Mocha.Context): void {
  this.timeout(120_000)
  if (built) return
  execFileSync(process.execPath, [join(import.meta.dirname, '..', 'scripts', 'build.mjs')], { stdio: 'inherit' })
  built = true
}

const ENV = { ...process.env }
delete ENV.MESHBEE_DIR

interface Result { code: number | null, stdout: string, stderr: string }

/** Runs `meshbee args…` in `cwd` to completion, with `input` on its stdin. */
async function cliIn (cwd: string, input: string, ...args: string[]): Promise<Result> {
  const child = spawn(process.execPath, [...BIN, ...args], { cwd, env: ENV })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  child.stdin.end(input)
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  return { code, stdout, stderr }
}

/** Runs `meshbee args…` in `cwd` to completion (stdin empty). */
async function cli (cwd: string, ...args: string[]): Promise<Result> {
  return await cliIn(cwd, '', ...args)
}

/** The code of the --json error a command printed, after checking its exit code. */
function errorOf (r: Result, exitCode: number): { code: string, message: string, [k: string]: unknown } {
  expect(r.code, r.stderr).to.equal(exitCode)
  return JSON.parse(r.stderr).error
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

/** Calls `check` until it returns something (each call a command or more, so no pause between), or fails after `timeout`. */
async function until<T> (what: string, check: () => Promise<T | undefined>, timeout = 30_000): Promise<T> {
  const deadline = Date.now() + timeout
  while (true) {
    const found = await check()
    if (found !== undefined) return found
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
  }
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
      if (this.child.exitCode !== null || this.child.signalCode !== null) throw new Error(`exited (${this.child.exitCode ?? this.child.signalCode}) before ${what}: ${this.stderr}`)
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
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.child.exitCode
    const closed = new Promise<number | null>((resolve) => this.child.on('close', resolve))
    this.child.kill(signal)
    return await closed
  }
}

describe('cli', function () {
  before(build)
  // every command is a process of its own (a second or more each on a busy machine)
  this.timeout(180_000)
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
    expect(names).to.include.members(['init', 'info', 'put', 'get', 'del', 'ls', 'patch', 'sadd', 'srem', 'smembers', 'sismember', 'writers',
      'add-writer', 'remove-writer', 'versions', 'diff', 'join', 'seed', 'import', 'export', 'testnet', 'invite', 'pair', 'add-reader', 'compact'])
    for (const name of [...names, null]) {
      let text = ''
      const output = { writeOut: (s: string) => { text += s }, writeErr: (s: string) => { text += s } }
      const argv = name === null ? ['node', 'meshbee', '--help'] : ['node', 'meshbee', name, '--help']
      expect(await run(argv, output), `${name ?? ''} --help`).to.equal(0)
      expect(text).to.include(`Usage: meshbee${name === null ? '' : ' ' + name}`)
      expect(text).to.include('4  not writable').and.include('MESHBEE_INVALID_VALUE').and.include('meshbee.sock')
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
      cli(dir, '--json', 'patch', 'k', '[1,2]'),
      cli(dir, 'put', 'k', 'v', '--string', '--json-value'),
      cli(dir, 'init', '--history', 'forever'),
      cli(dir, 'join', '--auto-compact', 'often')
    ])
    for (const r of [top, sub, helpCmd]) expect(r.code, r.stderr).to.equal(0)
    expect(top.stdout).to.include('MESHBEE_DIR')
    expect(sub.stdout).to.include('--since <time>')
    expect(helpCmd.stdout).to.include('--bootstrap <host:port>').and.include('--auto-compact [every]').and.include('History (--history')
      .and.match(/^ {2}full {2}keep every block of every log/m)
    for (const r of usage) expect(r.code, r.stderr).to.equal(2)
    expect(JSON.parse(usage[4].stderr).error.code).to.equal('MESHBEE_INVALID_VALUE')
    expect(none.code).to.equal(1)
    expect(none.stderr).to.equal(`meshbee: MESHBEE_NO_DATABASE: no database in ${join(dir, 'nowhere')}: run "meshbee init" (or pass --dir / set MESHBEE_DIR)\n`)
  })

  it('values: what looks like JSON must be JSON, --string and --json-value, numbers that round-trip', () => {
    const ok: Array<[string, 'auto' | 'string' | 'json', unknown]> = [
      ['hello', 'auto', 'hello'], ['{"a":[1,-2.5,"x"]}', 'auto', { a: [1, -2.5, 'x'] }], ['"quoted"', 'auto', 'quoted'],
      ['42', 'auto', 42], ['-7', 'auto', -7], ['true', 'auto', true], ['null', 'auto', null], ['True', 'auto', 'True'],
      ['1e20', 'auto', 1e20], ['9007199254740991', 'auto', 9007199254740991], ['{"a":1', 'string', '{"a":1'],
      [' 42', 'auto', ' 42'], ['"1e400"', 'auto', '1e400'], ['[1]', 'json', [1]]
    ]
    for (const [text, mode, value] of ok) expect(parseValue(text, mode), `${text} (${mode})`).to.deep.equal(value)
    const bad: Array<[string, 'auto' | 'json']> = [
      ['{"a":1', 'auto'], ['[1,', 'auto'], ['1e400', 'auto'], ['-1e400', 'auto'], ['9007199254740993', 'auto'],
      ['{"n":[12345678901234567891]}', 'auto'], ['"open', 'auto'], ['01', 'auto'], ['-', 'auto'], ['hello', 'json']
    ]
    for (const [text, mode] of bad) {
      expect(() => parseValue(text, mode), `${text} (${mode})`).to.throw().with.property('code', 'MESHBEE_INVALID_VALUE')
    }
  })

  it('put, sadd, srem and patch refuse values that are not what they look like (exit 2); put - reads stdin', async function () {
    this.timeout(180_000) // a dozen commands, each a process of its own
    await json(dir, 'init')
    const [text, ...refused] = await Promise.all([
      cli(dir, 'put', 'k', '{"a":1'),
      cli(dir, '--json', 'put', 'k', '1e400'),
      cli(dir, '--json', 'put', 'k', 'hello', '--json-value'),
      cli(dir, '--json', 'srem', 's', '[1'),
      cli(dir, '--json', 'patch', 'd', '{"n":12345678901234567891}')
    ])
    for (const r of refused) expect(errorOf(r, 2).code).to.equal('MESHBEE_INVALID_VALUE')
    expect(text.code).to.equal(2)
    expect(text.stderr).to.match(/^meshbee: MESHBEE_INVALID_VALUE: value "\{\\"a\\":1": not valid JSON .*add --string/)

    expect(await json(dir, 'put', 'k', '{"a":1', '--string')).to.deep.equal({ key: 'k', value: '{"a":1' })
    const piped = await cliIn(dir, '  {"from": "stdin", "n": [1, 2]}\n', '--json', 'put', 'p', '-')
    expect(piped.code, piped.stderr).to.equal(0)
    expect(JSON.parse(piped.stdout)).to.deep.equal({ key: 'p', value: { from: 'stdin', n: [1, 2] } })
    const exact = await cliIn(dir, 'two\nlines\n', '--json', 'put', 'q', '-', '--string')
    expect(JSON.parse(exact.stdout)).to.deep.equal({ key: 'q', value: 'two\nlines\n' })
    expect(errorOf(await cliIn(dir, '{"a":', '--json', 'put', 'r', '-'), 2).code).to.equal('MESHBEE_INVALID_VALUE')
    expect(await ndjson(dir, 'ls')).to.deep.equal([
      { key: 'k', value: '{"a":1' }, { key: 'p', value: { from: 'stdin', n: [1, 2] } }, { key: 'q', value: 'two\nlines\n' }
    ])
  })

  it('init, put, get, ls, patch, sets, versions, writers, diff, del, info; a missing key exits 3', async function () {
    this.timeout(180_000) // some thirty commands, each a process of its own
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
    expect(await json(dir, 'srem', 'tags', 'home')).to.deep.equal({ key: 'tags', member: 'home', present: false })
    expect(await json(dir, 'smembers', 'tags')).to.deep.equal([7])
    await json(dir, 'sadd', 'tags', 'work')

    expect(await ndjson(dir, 'ls')).to.deep.equal([
      { key: 'n', value: '42' },
      { key: 'tags', value: ['work', 7] },
      { key: 'todo/1', value: { done: true, title: 'milk' } }
    ])
    expect(await ndjson(dir, 'ls', '--gt', 'n', '--limit', '1', '--reverse')).to.deep.equal([
      { key: 'todo/1', value: { done: true, title: 'milk' } }
    ])

    const versions = await json(dir, 'versions', 'todo/1')
    expect(versions).to.have.length(1)
    expect(versions[0]).to.include({ writer: created.writerKey, type: 'state', winner: true })
    expect(versions[0].value).to.deep.equal({ done: true, title: 'milk' })

    // one change per entry: whole values, then set members, then document fields (the log's key order)
    const changes = await ndjson(dir, 'diff', created.writerKey)
    expect(changes.map((c) => [c.key, c.type, c.member ?? c.field ?? null, c.value])).to.deep.equal([
      ['n', 'put', null, '42'], ['todo/1', 'put', null, { title: 'milk' }],
      ['tags', 'member', 'home', null], ['tags', 'member', 'work', 'work'], ['tags', 'member', 7, 7], ['todo/1', 'field', 'done', true]
    ])
    expect(changes[5]).to.include({ type: 'field', seq: 3 })
    expect(await ndjson(dir, 'diff', created.writerKey, '--from', '2', '--to', '3')).to.have.length(1)

    expect(await json(dir, 'del', 'n')).to.deep.equal({ key: 'n', deleted: true })
    expect((await cli(dir, 'del', 'todo/1')).stdout).to.equal('deleted todo/1\n')
    const before = (await json(dir, 'writers'))[0].length
    // (and versions and smembers of missing keys, through a running peer, in the online tests)
    for (const args of [['get', 'n'], ['del', 'n']]) {
      const r = await cli(dir, '--json', ...args)
      expect(r.stdout, args.join(' ')).to.equal('')
      expect(errorOf(r, 3).code, args.join(' ')).to.equal('MESHBEE_NOT_FOUND')
    }
    expect((await cli(dir, 'del', 'n')).stderr).to.equal('meshbee: MESHBEE_NOT_FOUND: key not found: n\n')

    const writers = await json(dir, 'writers')
    expect(writers).to.have.length(1)
    expect(writers[0]).to.include({ key: created.writerKey, member: true, removed: false, local: true, length: before })
    expect(before).to.be.greaterThan(5)
    // a deleted key still has its versions (the deletes)
    expect((await json(dir, 'versions', 'n'))[0]).to.include({ type: 'del', value: null })

    const info = await json(dir, 'info')
    expect(info).to.include({ key: created.key, writerKey: created.writerKey, writable: true, writers: 1 })
    expect(info.hash).to.match(/^[0-9a-f]{64}$/)
    expect(info.stats).to.have.property('folds')
  })

  it('init --encrypted: put and get, info says encrypted; invite, invite ls, invite revoke; add-reader; bad arguments exit 2', async function () {
    this.timeout(180_000) // some twenty commands, each a process of its own
    const created = await json(dir, 'init', '--encrypted')
    expect(created).to.include({ privacy: 'encrypted', created: true, writable: true })
    expect(await json(dir, 'put', 'secret', '{"n":1}')).to.deep.equal({ key: 'secret', value: { n: 1 } })
    expect(await json(dir, 'get', 'secret')).to.deep.equal({ key: 'secret', value: { n: 1 } })
    expect(await json(dir, 'info')).to.include({ key: created.key, privacy: 'encrypted', role: 'writer', writers: 1, readers: 0 })
    expect((await cli(dir, 'info')).stdout).to.match(/^privacy +encrypted/m)

    // stored, answered on the next join; the string in JSON, and the text tells who answers it
    const made = await json(dir, 'invite', '--role', 'reader', '--uses', '3', '--expires', '12h')
    expect(made).to.include({ role: 'reader', uses: 3, answered: 'on join' })
    expect(made.invite).to.match(/^[ybndrfg8ejkmcpqxot1uwisza345h769]+$/)
    expect(Date.parse(made.expires) - Date.now()).to.be.within(11 * 3_600_000, 12 * 3_600_000)
    const text = await cli(dir, 'invite', 'create')
    expect(text.code, text.stderr).to.equal(0)
    const second = text.stdout.split('\n')[0]
    expect(text.stdout).to.include(`meshbee pair ${second}`).and.include('while "meshbee join" runs')
    const listed = await json(dir, 'invite', 'ls')
    expect(listed).to.have.length(2)
    expect(listed[0]).to.deep.equal({ id: made.id, role: 'reader', uses: 3, used: 0, expires: made.expires, revoked: false, state: 'open' })
    expect(listed[1]).to.include({ role: 'writer', uses: 1, used: 0, revoked: false })
    expect(Date.parse(listed[1].expires) - Date.now()).to.be.within(6.9 * 86_400_000, 7 * 86_400_000)

    // by id and by string; an unknown one exits 3
    expect(await json(dir, 'invite', 'revoke', made.id)).to.deep.equal({ invite: made.id, revoked: true })
    expect(await json(dir, 'invite', 'revoke', second)).to.deep.equal({ invite: second, revoked: true })
    expect((await json(dir, 'invite', 'ls')).map((i: any) => [i.revoked, i.state])).to.deep.equal([[true, 'revoked'], [true, 'revoked']])
    expect(errorOf(await cli(dir, '--json', 'invite', 'revoke', 'cd'.repeat(32)), 3).code).to.equal('MESHBEE_NOT_FOUND')

    // a reader: a member that never writes, marked in writers and counted in info
    const reader = 'ab'.repeat(32)
    expect(await json(dir, 'add-reader', reader)).to.deep.equal({ reader, added: true })
    expect((await json(dir, 'writers')).find((w: any) => w.key === reader)).to.include({ member: true, reader: true, removed: false })
    expect((await cli(dir, 'writers')).stdout).to.match(new RegExp(`^${reader} .* reader `, 'm'))
    expect(await json(dir, 'info')).to.include({ writers: 1, readers: 1 })

    const plain = join(dir, 'plain')
    await json(dir, '--dir', plain, 'init')
    const bad = await Promise.all([
      cli(dir, '--json', 'invite', '--role', 'admin'),
      cli(dir, '--json', 'invite', '--uses', '0'),
      cli(dir, '--json', 'invite', 'create', '--uses', 'two'),
      cli(dir, '--json', 'invite', '--expires', '3x'),
      cli(dir, '--json', 'invite', '--expires', '0d'),
      cli(dir, '--json', 'init', join(dir, 'other'), '--encrypted', '--key', created.key),
      cli(dir, '--json', 'add-reader', 'not-a-key'),
      cli(dir, '--json', 'invite', 'revoke', 'not-an-invite'),
      cli(dir, '--json', 'pair', 'garbage', '--timeout', '1000'),
      cli(dir, '--json', '--dir', plain, 'add-reader', reader)
    ])
    for (const r of bad.slice(0, 7)) expect(errorOf(r, 2).code, r.stderr).to.equal('MESHBEE_USAGE')
    expect(errorOf(bad[7], 2).code).to.equal('MESHBEE_BAD_INVITE')
    expect(errorOf(bad[8], 2).code).to.equal('MESHBEE_BAD_INVITE')
    expect(errorOf(bad[9], 2).code).to.equal('MESHBEE_INVALID_ARGUMENT')
    expect(existsSync(join(dir, 'other')), 'a refused init creates nothing').to.equal(false)
  })

  it('smembers reads a range of a set; sismember reads one member', async () => {
    await json(dir, 'init')
    const imported = await cliIn(dir, JSON.stringify({ key: 's', type: 'set', value: ['c', 7, 'a', { x: 1 }, 'b'] }) + '\n', 'import', '-')
    expect(imported.code, imported.stderr).to.equal(0)
    expect(await json(dir, 'smembers', 's')).to.deep.equal(['a', 'b', 'c', 7, { x: 1 }], 'canonical-JSON byte order: strings, numbers, objects')
    expect(await json(dir, 'smembers', 's', '--gt', 'a', '--lt', '7')).to.deep.equal(['b', 'c'])
    expect(await json(dir, 'smembers', 's', '--gte', 'c', '--limit', '2')).to.deep.equal(['c', 7])
    expect(await json(dir, 'smembers', 's', '--limit', '1', '--reverse')).to.deep.equal([{ x: 1 }])
    expect(await json(dir, 'sismember', 's', 'b')).to.deep.equal({ key: 's', member: 'b', present: true })
    expect(await json(dir, 'sismember', 's', 'z')).to.deep.equal({ key: 's', member: 'z', present: false })
    expect(errorOf(await cli(dir, '--json', 'smembers', 's', '--limit', '-1'), 2).code).to.equal('MESHBEE_INVALID_ARGUMENT')
  })

  it('changes reads the change feed after a seq; watch prints changes as they land, here and inside a running peer', async function () {
    this.timeout(180_000)
    await json(dir, 'init')
    await json(dir, 'put', 'a', '{"x":1}')
    await json(dir, 'put', 'b', 'hello')
    await json(dir, 'patch', 'a', '{"y":2}')
    const feed = await ndjson(dir, 'changes')
    expect(feed.map((c) => [c.type, c.key, c.value])).to.deep.equal([['put', 'b', 'hello'], ['put', 'a', { x: 1, y: 2 }]])
    expect(feed[1].seq).to.be.above(feed[0].seq)
    expect(await ndjson(dir, 'changes', '--since', String(feed[0].seq))).to.deep.equal([feed[1]])
    expect(await ndjson(dir, 'changes', '--lt', 'b')).to.deep.equal([feed[1]])
    const initial = await ndjson(dir, 'watch', '--initial', '--limit', '2')
    expect(initial.map((c) => [c.key, c.value, c.origin])).to.deep.equal([['a', { x: 1, y: 2 }, 'remote'], ['b', 'hello', 'remote']])
    expect(errorOf(await cli(dir, '--json', 'changes', '--since', '-1'), 2).code).to.equal('MESHBEE_USAGE')

    // inside a running peer: a watch started there sees a put made by another command
    const peer = new Online(dir, ['join', '--no-request'])
    try {
      await peer.waitFor('the control socket', (e) => e.event === 'joining')
      // the watch prints b's entry first (--initial): from then on it is watching
      const child = spawn(process.execPath, [...BIN, '--json', 'watch', '--gte', 'b', '--initial', '--limit', '2'], { cwd: dir, env: ENV })
      let out = ''
      const firstLine = new Promise<void>((resolve) => child.stdout.on('data', (d: Buffer) => { out += d.toString(); if (out.includes('\n')) resolve() }))
      const exited = new Promise<number | null>((resolve) => child.on('close', resolve))
      await firstLine
      await json(dir, 'put', 'c', '7')
      expect(await exited).to.equal(0)
      const lines = out.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l))
      expect(lines[0]).to.include({ type: 'put', key: 'b', value: 'hello' })
      expect(lines[1]).to.include({ type: 'put', key: 'c', value: 7, origin: 'local' })
      expect(lines[1].previous).to.equal(null)
    } finally {
      expect(await peer.stop('SIGINT')).to.equal(0)
    }
  })

  it('index add, ls, rm and query: a field index any process keeps', async function () {
    this.timeout(180_000)
    await json(dir, 'init')
    await json(dir, 'put', 't1', '{"status":"open","n":2}')
    await json(dir, 'put', 't2', '{"status":"done"}')
    expect(await json(dir, 'index', 'add', 'byStatus', '--field', 'status')).to.deep.equal({ name: 'byStatus', field: 'status', version: 1, built: true })
    // a later command keeps it: the declaration is the database's
    await json(dir, 'patch', 't3', '{"status":"open"}')
    await json(dir, 'sadd', 's', 'open')
    expect((await ndjson(dir, 'query', 'byStatus', '--eq', 'open')).map((e) => [e.indexKey, e.key])).to.deep.equal([['open', 't1'], ['open', 't3']])
    expect((await ndjson(dir, 'query', 'byStatus', '--reverse', '--limit', '1')).map((e) => e.key)).to.deep.equal(['t3'])
    expect(await json(dir, 'index', 'add', 'byStatus', '--field', 'status'), 'the same declaration').to.include({ built: false })
    await json(dir, 'index', 'add', 'whole', '--field', '', '--index-version', '2')
    expect((await json(dir, 'index', 'ls')).map((i: { name: string, version: number }) => [i.name, i.version])).to.deep.equal([['byStatus', 1], ['whole', 2]])
    expect((await ndjson(dir, 'query', 'whole')).map((e) => [e.indexKey, e.key, e.value])).to.deep.equal([['open', 's', ['open']]])
    expect(await json(dir, 'index', 'rm', 'whole')).to.deep.equal({ name: 'whole', removed: true })
    expect(errorOf(await cli(dir, '--json', 'query', 'whole'), 3).code).to.equal('MESHBEE_INDEX_NOT_FOUND')
    expect(errorOf(await cli(dir, '--json', 'index', 'rm', 'whole'), 3).code).to.equal('MESHBEE_NOT_FOUND')

    await json(dir, 'put', 'n1', '{"title":"Buy milk","body":"and eggs"}')
    await json(dir, 'put', 'n2', '{"title":"Eggplant"}')
    expect(await json(dir, 'index', 'add', 'notes', '--text', 'title', 'body')).to.deep.equal({ name: 'notes', text: ['title', 'body'], version: 1, built: true })
    expect((await ndjson(dir, 'search', 'notes', 'EGG')).map((e) => e.key).sort()).to.deep.equal(['n1', 'n2'])
    expect((await ndjson(dir, 'search', 'notes', 'milk egg')).map((e) => e.key)).to.deep.equal(['n1'])
    expect(errorOf(await cli(dir, '--json', 'index', 'add', 'x'), 2).code).to.equal('MESHBEE_USAGE')
  })

  it('verify checks the view against the logs; --repair rebuilds a damaged one (exit 5 without it)', async () => {
    await json(dir, 'init')
    await json(dir, 'put', 'a', '1')
    await json(dir, 'sadd', 's', 'x')
    expect(await json(dir, 'verify')).to.include({ ok: true, repaired: false, keys: 2 })
    // damage below the digest: the set's record says nothing of its parts
    const { MeshDB } = await import('../index.js')
    const db = new MeshDB(join(dir, '.meshbee'))
    await db.open()
    const view = db.engine.view
    await view.settle()
    const [[k]] = await view.slots.iterator({ gte: Buffer.from('s'), lte: Buffer.from('s') }).all()
    await view.slots.del(k)
    await db.close()
    const damaged = await cli(dir, '--json', 'verify')
    expect(errorOf(damaged, 5).code).to.equal('MESHBEE_VIEW_DAMAGED')
    expect(JSON.parse(damaged.stdout)).to.include({ ok: false, repaired: false })
    expect(await json(dir, 'verify', '--repair')).to.include({ ok: false, repaired: true })
    expect(await json(dir, 'verify')).to.include({ ok: true })
    expect(await json(dir, 'smembers', 's')).to.deep.equal(['x'])
  })

  it('compact clears what every member has folded and collects tombstones; info shows bytes on disk; an offline member holds it back', async function () {
    this.timeout(180_000)
    const created = await json(dir, 'init')
    // five rounds over the same keys (overwrites), then deletes of a tenth of them
    const file = join(dir, 'rounds.ndjson')
    const pad = 'x'.repeat(200)
    const round = (n: number): string[] => Array.from({ length: 300 }, (_, i) => JSON.stringify({ key: `k/${String(i).padStart(3, '0')}`, value: { round: n, i, pad } }))
    const gone = Array.from({ length: 30 }, (_, i) => `k/${String(i * 10).padStart(3, '0')}`)
    writeFileSync(file, [...[1, 2, 3, 4, 5].flatMap(round), ...gone.map((key) => JSON.stringify({ key, value: null }))].join('\n') + '\n')
    expect(await json(dir, 'import', file)).to.include({ puts: 1500, dels: 30 })
    await json(dir, 'put', 'k/001', '"last"')
    const before = await ndjson(dir, 'ls')
    expect(before).to.have.length(270)
    const [{ length }] = await json(dir, 'writers')

    const info = await json(dir, 'info')
    expect(info.history).to.equal('live')
    expect(info.stats.disk.logs).to.be.a('number').and.greaterThan(0)
    expect(info.stats.disk.view).to.be.a('number').and.greaterThan(0)
    expect(info.stats).to.include({ tombstones: 30, blocksCleared: 0, tombstonesCollected: 0 })
    const text = (await cli(dir, 'info')).stdout
    expect(text).to.match(/^disk +logs \d+(\.\d)? (B|KiB|MiB), view \d+(\.\d)? (B|KiB|MiB)$/m)
    expect(text).to.match(/^compaction +0 blocks cleared, 0 tombstones collected \(since open\); 30 tombstones held$/m)
    expect(text).to.match(/^history +live /m)

    // a single writer has folded everything it wrote: all of it is stable at once
    const result = await json(dir, 'compact')
    expect(Object.keys(result).sort()).to.deep.equal(['blocksCleared', 'bytesAfter', 'bytesBefore', 'heldBackBy', 'ms', 'tombstones', 'tombstonesCollected'])
    expect(result.blocksCleared).to.be.greaterThan(length / 2).and.lessThan(length)
    expect(result).to.include({ tombstonesCollected: 30, tombstones: 0 })
    expect(result.heldBackBy).to.deep.equal([])
    expect(result.bytesAfter.logs).to.be.lessThan(result.bytesBefore.logs)
    expect(result.bytesAfter.view).to.be.lessThan(result.bytesBefore.view)
    expect(result.ms).to.be.a('number').and.at.least(0)
    // the view is what it was; the cleared history is gone, with a stable code (from 0: the latest tree only)
    expect(await ndjson(dir, 'ls')).to.deep.equal(before)
    expect(await json(dir, 'get', 'k/001')).to.deep.equal({ key: 'k/001', value: 'last' })
    const net = await ndjson(dir, 'diff', created.writerKey)
    expect(net.find((c) => c.key === 'k/001')).to.include({ type: 'put', value: 'last' })
    expect(errorOf(await cli(dir, '--json', 'diff', created.writerKey, '--from', '1', '--to', '2'), 1).code).to.equal('MESHBEE_HISTORY_CLEARED')
    // a change-feed reader from before the dropped deletions is told so, and from which seq on the feed reads again
    const missed = errorOf(await cli(dir, '--json', 'changes', '--since', '1'), 1)
    expect(missed.code).to.equal('MESHBEE_FEED_COMPACTED')
    expect(missed.seq).to.be.a('number').and.greaterThan(1)
    expect((await ndjson(dir, 'changes', '--since', String(missed.seq))).map((c) => [c.key, c.value])).to.deep.equal([['k/001', 'last']])
    const after = await json(dir, 'info')
    expect(after.stats.tombstones).to.equal(0)
    expect(after.stats.disk.view).to.be.lessThan(info.stats.disk.view)
    // the first compact's own record is all there is to clear now
    const again = await json(dir, 'compact')
    expect(again).to.include({ tombstonesCollected: 0, tombstones: 0 })
    expect(again.blocksCleared).to.be.at.most(1)

    // a member that has folded nothing (never online) holds stability back: nothing is cleared
    const other = join(dir, 'other')
    const opened = await json(dir, '--dir', other, 'init', '--key', created.key)
    await json(dir, 'add-writer', opened.writerKey)
    await json(dir, 'put', 'k/002', '"overwritten"')
    await json(dir, 'del', 'k/003')
    const held = await json(dir, 'compact')
    expect(held).to.include({ blocksCleared: 0, tombstonesCollected: 0, tombstones: 1 })
    expect(held.heldBackBy).to.deep.equal([opened.writerKey])
    const heldText = await cli(dir, 'compact')
    expect(heldText.code, heldText.stderr).to.equal(0)
    expect(heldText.stdout).to.match(new RegExp(`^held back by +${opened.writerKey}$`, 'm'))
      .and.match(/^blocks cleared +0$/m).and.match(/^tombstones held +1$/m).and.match(/^logs on disk +\d.* -> \d/m)
      .and.include('must come online and catch up').and.include('meshbee remove-writer <key>')
    // removed, it holds the tombstones back no more; the log blocks it does, until it comes online
    // once (a membership change it wrote before its removal could still cut a log below them)
    await json(dir, 'remove-writer', opened.writerKey)
    const freed = await json(dir, 'compact')
    expect(freed.tombstones).to.equal(0)
    expect(freed.heldBackBy).to.deep.equal([opened.writerKey])
    expect(freed.blocksCleared).to.equal(0)
    const freedText = await cli(dir, 'compact')
    expect(freedText.stdout).to.include('a removed member holds the log blocks back until it comes online once')
  })

  it('export, import round trip keeps documents and sets; files are never overwritten without --force', async () => {
    const a = join(dir, 'a')
    const b = join(dir, 'b')
    const file = join(dir, 'dump.ndjson')
    const lines = Array.from({ length: 1203 }, (_, i) => JSON.stringify({ key: `k/${String(i).padStart(4, '0')}`, value: i % 3 === 0 ? { i, tags: ['x'] } : `v${i}` }))
    writeFileSync(file, lines.join('\n') + '\n{"key":"k/gone","value":null}\n')
    await Promise.all([json(dir, '--dir', a, 'init'), json(dir, 'init', b)])
    expect(await json(dir, '--dir', a, 'import', file)).to.deep.equal({ file, puts: 1203, dels: 1, docs: 0, sets: 0 })
    await json(dir, '--dir', a, 'patch', 'doc', '{"title":"milk","n":{"x":[1]}}')
    await json(dir, '--dir', a, 'sadd', 'tags', 'home')
    await json(dir, '--dir', a, 'sadd', 'tags', '7')

    const out = join(dir, 'out.ndjson')
    const expected = [
      '{"key":"doc","type":"doc","value":{"n":{"x":[1]},"title":"milk"}}',
      ...lines,
      '{"key":"tags","type":"set","value":["home",7]}'
    ].join('\n') + '\n'
    expect(await json(dir, '--dir', a, 'export', out)).to.deep.equal({ file: out, exported: 1205 })
    expect(readFileSync(out, 'utf8')).to.equal(expected)

    // relative to the working directory; an existing file only with --force
    expect(await json(dir, '--dir', b, 'import', 'out.ndjson')).to.deep.equal({ file: 'out.ndjson', puts: 1203, dels: 0, docs: 1, sets: 1 })
    const refused = await cli(dir, '--dir', b, 'export', 'out.ndjson')
    expect(refused.code).to.equal(1)
    expect(refused.stderr).to.equal('meshbee: MESHBEE_FILE_EXISTS: out.ndjson: the file exists (add --force to overwrite it)\n')
    expect(await json(dir, '--dir', b, 'export', 'out.ndjson', '--force')).to.deep.equal({ file: 'out.ndjson', exported: 1205 })
    expect(readFileSync(out, 'utf8')).to.equal(expected)

    // the imported set and document are a set and a document: sadd adds, patch merges
    expect(await json(dir, '--dir', b, 'sadd', 'tags', 'work')).to.deep.equal({ key: 'tags', member: 'work', present: true })
    expect(await json(dir, '--dir', b, 'smembers', 'tags')).to.deep.equal(['home', 'work', 7])
    expect((await json(dir, '--dir', b, 'patch', 'doc', '{"done":true}')).value).to.deep.equal({ done: true, n: { x: [1] }, title: 'milk' })
  })

  it('import checks each batch whole: a bad line names its file and line, and nothing of its batch is written', async () => {
    const file = join(dir, 'batches.ndjson')
    // 500 lines make the first batch; the second fails at its fourth line (a set line before it)
    const lines = Array.from({ length: 502 }, (_, i) => JSON.stringify({ key: `new/${String(i).padStart(3, '0')}`, value: i }))
    lines.splice(501, 0, '{"key":"tags","type":"set","value":["only"]}')
    writeFileSync(file, [...lines, '{"key":"bad"}', '{"key":"after","value":1}'].join('\n') + '\n')
    await json(dir, 'init')
    const failed = errorOf(await cli(dir, '--json', 'import', file), 1)
    expect(failed).to.deep.include({ code: 'MESHBEE_INVALID_INPUT', file, line: 504, reason: '"value" is missing', written: 500 })
    expect(failed.message).to.include(`${file}:504: "value" is missing`).and.include('500 entries were written before it')
    expect(await json(dir, 'get', 'new/499')).to.deep.equal({ key: 'new/499', value: 499 })
    for (const args of [['get', 'new/500'], ['smembers', 'tags'], ['get', 'after']]) {
      expect(errorOf(await cli(dir, '--json', ...args), 3).code, args.join(' ')).to.equal('MESHBEE_NOT_FOUND')
    }
    const text = await cli(dir, 'import', 'missing.ndjson')
    expect(text.code).to.equal(1)
    expect(text.stderr).to.equal('meshbee: MESHBEE_FILE_NOT_FOUND: missing.ndjson: no such file or directory\n')
  })
})

describe('cli online', function () {
  before(build)
  let dir: string
  let testnet: Online
  let bootstrap: string[]

  before(async () => {
    testnet = new Online(tmpdir(), ['testnet'])
    bootstrap = (await testnet.waitFor('the testnet', (e) => Array.isArray(e.bootstrap))).bootstrap
    expect(bootstrap).to.have.length(1)
    expect(bootstrap[0]).to.match(/^127\.0\.0\.1:\d+$/)
  })

  after(async () => {
    expect(await testnet.stop('SIGINT')).to.equal(0)
  })

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'meshbee-cli-'))
  })

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('while join runs, the other commands run inside it through its socket; a stale socket is removed', async () => {
    const created = await json(dir, 'init')
    const peer = new Online(dir, ['join', ...bootstrap.flatMap((n) => ['--bootstrap', n])])
    try {
      const { socket } = await peer.waitFor('the control socket', (e) => e.event === 'joining')
      expect(socket).to.equal(join(dir, '.meshbee', 'meshbee.sock'))
      expect(lstatSync(socket).mode & 0o777).to.equal(0o600)
      const sub = join(dir, 'sub')
      mkdirSync(sub)
      const other = 'ab'.repeat(32)
      const [put, piped, added, text, again, init] = await Promise.all([
        json(dir, 'put', 'todo/1', '{"title":"milk"}'),
        cliIn(sub, 'from stdin\n', '--json', '--dir', '../.meshbee', 'put', 'note', '-', '--string'),
        json(dir, 'add-writer', other),
        cli(dir, 'put', 'bad', '[1'),
        cli(dir, '--json', 'join'),
        cli(dir, '--json', 'init')
      ])
      expect(put).to.deep.equal({ key: 'todo/1', value: { title: 'milk' } })
      expect(piped.code, piped.stderr).to.equal(0)
      expect(JSON.parse(piped.stdout)).to.deep.equal({ key: 'note', value: 'from stdin\n' })
      expect(added).to.deep.equal({ writer: other, added: true })
      expect(text.code).to.equal(2)
      expect(text.stderr).to.match(/^meshbee: MESHBEE_INVALID_VALUE: /)
      expect(errorOf(again, 1).code).to.equal('MESHBEE_BUSY')
      expect(errorOf(init, 1).code).to.equal('MESHBEE_DB_EXISTS')
      // the running peer made the writes: they are its changes
      await peer.waitFor('the put', (e) => e.event === 'change' && e.key === 'todo/1')
      await peer.waitFor('the piped put', (e) => e.event === 'change' && e.key === 'note' && e.value === 'from stdin\n')
      await peer.waitFor('the new writer', (e) => e.event === 'writer-add' && e.writer === other)

      const [got, info, exported, ...missing] = await Promise.all([
        cli(dir, 'get', 'todo/1'),
        json(dir, 'info'),
        json(sub, '--dir', '../.meshbee', 'export', 'out.ndjson'),
        cli(dir, '--json', 'get', 'nope'),
        cli(dir, '--json', 'del', 'nope'),
        cli(dir, '--json', 'versions', 'nope'),
        cli(dir, '--json', 'smembers', 'nope'),
        cli(dir, '--json', 'smembers', 'todo/1')
      ])
      expect(got).to.deep.equal({ code: 0, stdout: '{\n  "title": "milk"\n}\n', stderr: '' })
      expect(info).to.include({ dir: join(dir, '.meshbee'), key: created.key, writable: true, writers: 2 })
      for (const r of missing) expect(errorOf(r, 3).code).to.equal('MESHBEE_NOT_FOUND')
      expect(exported).to.deep.equal({ file: 'out.ndjson', exported: 2 })
      expect(readFileSync(join(sub, 'out.ndjson'), 'utf8')).to.equal('{"key":"note","value":"from stdin\\n"}\n{"key":"todo/1","value":{"title":"milk"}}\n')

      // killed, the peer leaves its socket behind: the next command finds nobody there and opens
      // the database itself; the next peer to bind removes the stale socket and listens again
      await peer.stop('SIGKILL')
      expect(lstatSync(socket).isSocket()).to.equal(true)
      expect(await json(dir, 'get', 'note')).to.deep.equal({ key: 'note', value: 'from stdin\n' })
      const next = new Online(dir, ['join', '--no-request', ...bootstrap.flatMap((n) => ['--bootstrap', n])])
      try {
        await next.waitFor('the new peer listening', (e) => e.event === 'joining')
        expect(lstatSync(socket).isSocket()).to.equal(true)
        expect(await json(dir, 'get', 'note'), 'served by the new peer').to.deep.equal({ key: 'note', value: 'from stdin\n' })
      } finally {
        expect(await next.stop('SIGINT')).to.equal(0)
      }
      expect(existsSync(socket)).to.equal(false)
    } finally {
      await peer.stop('SIGKILL')
    }
  })

  it('testnet and two joins: a peer opened by key cannot write (exit 4) until --accept-all adds it; writes reach the other peer', async () => {
    // b's path is too long for a Unix socket: its control socket falls back to a private directory under tmpdir
    const a = join(dir, 'a')
    const b = join(dir, 'b'.repeat(110))
    const args = bootstrap.flatMap((n) => ['--bootstrap', n])
    const peers: Online[] = []
    try {
      const created = await json(dir, '--dir', a, 'init')
      const [, opened] = await Promise.all([
        json(dir, '--dir', a, 'put', 'hello', '{"from":"a"}'),
        json(dir, '--dir', b, 'init', '--key', created.key)
      ])
      expect(opened).to.include({ key: created.key, writable: false, created: false })
      const denied = await cli(dir, '--dir', b, 'put', 'x', '1')
      expect(denied.code).to.equal(4)
      expect(denied.stderr).to.include('MESHBEE_NOT_WRITABLE')

      // one after the other: peers announcing at the same instant can miss each other until
      // Hyperswarm's next refresh (see test/sync.test.ts)
      const pa = new Online(dir, ['--dir', a, 'join', '--accept-all', ...args])
      peers.push(pa)
      await pa.waitFor('a announced', (e) => e.event === 'joined')
      const pb = new Online(dir, ['--dir', b, 'join', ...args])
      peers.push(pb)
      const { socket } = await pb.waitFor('b listening', (e) => e.event === 'joining')
      expect(socket.startsWith(join(tmpdir(), 'meshbee-'))).to.equal(true)
      await pb.waitFor('the change from a', (e) => e.event === 'change' && e.key === 'hello')
      expect(pb.events.find((e) => e.event === 'change')).to.deep.include({ value: { from: 'a' }, deleted: false })
      await pa.waitFor('the join request of b', (e) => e.event === 'join-request' && e.writer === opened.writerKey)
      await pb.waitFor('b becoming a writer', (e) => e.event === 'writer-add' && e.self === true)
      expect(pa.events[0]).to.include({ event: 'joining', key: created.key, writable: true, mode: 'join' })
      expect(pa.events.find((e) => e.event === 'peer-add').peers).to.be.at.least(1)

      // written through b's socket, it reaches a; both say when they are caught up, at the same view
      expect(await json(dir, '--dir', b, 'put', 'from-b', '2')).to.deep.equal({ key: 'from-b', value: 2 })
      await pa.waitFor('the change from b', (e) => e.event === 'change' && e.key === 'from-b' && e.value === 2)
      const { hash } = await json(dir, '--dir', b, 'info')
      const caught = await pa.waitFor('a caught up with b', (e) => e.event === 'caught-up' && e.hash === hash)
      expect(caught.writers.map((w: any) => w.writer)).to.have.members([created.writerKey, opened.writerKey])
      await pb.waitFor('b caught up', (e) => e.event === 'caught-up' && e.hash === hash)
      const states = pa.events.filter((e) => e.event === 'caught-up').map((e) => JSON.stringify(e))
      expect(new Set(states).size).to.equal(states.length)

      expect(await pa.stop('SIGINT')).to.equal(0)
      expect(await pb.stop('SIGTERM')).to.equal(0)
      expect(pb.events.at(-1)).to.include({ event: 'left' })
      expect(existsSync(socket)).to.equal(false)
      expect(await json(dir, '--dir', b, 'put', 'from-b', '1')).to.deep.equal({ key: 'from-b', value: 1 })
    } finally {
      for (const p of peers) await p.stop('SIGKILL')
    }
  })

  it('compact inside a running join; a seeder keeps full history (remembered for its directory) and serves what the member cleared', async function () {
    this.timeout(180_000)
    const a = join(dir, 'a')
    const s = join(dir, 's')
    const args = bootstrap.flatMap((n) => ['--bootstrap', n])
    const peers: Online[] = []
    try {
      const created = await json(dir, '--dir', a, 'init')
      for (const v of ['1', '2', '3']) await json(dir, '--dir', a, 'put', 'k', v)
      await json(dir, '--dir', a, 'put', 'gone', 'x')
      await json(dir, '--dir', a, 'del', 'gone')
      const pa = new Online(dir, ['--dir', a, 'join', ...args])
      peers.push(pa)
      await pa.waitFor('a announced', (e) => e.event === 'joined')
      expect(pa.events[0]).to.include({ history: 'live', autoCompact: null })
      const [{ length }] = await json(dir, '--dir', a, 'writers')

      const seed = (): Online => {
        const p = new Online(dir, ['--dir', s, 'seed', created.key, ...args])
        peers.push(p)
        return p
      }
      const seeder = seed()
      expect(await seeder.waitFor('the seeder listening', (e) => e.event === 'joining')).to.include({ mode: 'seed', history: 'full' })
      await until('the seeder holding all of a\'s log', async () => {
        const w = (await json(dir, '--dir', s, 'writers')).find((x: any) => x.key === created.writerKey)
        return w !== undefined && w.held === length && w.folded === length ? w : undefined
      })
      expect((await json(dir, '--dir', s, 'info')).history).to.equal('full')
      expect(await seeder.stop('SIGINT')).to.equal(0)

      // through a's socket: a clears what it has folded (the seeder is no member: it holds nothing back)
      // (the tombstone may have gone before, once a's own record was due: lib cutsEvery, 30 s after open)
      const compacted = await json(dir, '--dir', a, 'compact')
      expect(compacted.blocksCleared).to.be.greaterThan(0)
      expect(compacted.tombstones).to.equal(0)
      expect(compacted.heldBackBy).to.deep.equal([])
      // the join says what was reclaimed; its counters are the running process's
      await pa.waitFor('a saying it cleared blocks', (e) => e.event === 'compacted' && e.blocksCleared === compacted.blocksCleared)
      const said = pa.events.filter((e) => e.event === 'compacted')
      expect(said.reduce((n, e) => n + e.tombstonesCollected, 0)).to.equal(1)
      expect(said.at(-1).tombstones).to.equal(0)
      expect((await json(dir, '--dir', a, 'info')).stats).to.include({ blocksCleared: compacted.blocksCleared, tombstonesCollected: 1, tombstones: 0 })
      const cleared = errorOf(await cli(dir, '--json', '--dir', a, 'diff', created.writerKey, '--from', '1', '--to', '3'), 1)
      expect(cleared.code).to.equal('MESHBEE_HISTORY_CLEARED')
      expect(cleared.message).to.include('meshbee seed')

      // the seeder's directory kept every block, and remembers to: opened without the seed running
      expect((await json(dir, '--dir', s, 'info')).history).to.equal('full')
      expect(await json(dir, '--dir', s, 'compact')).to.include({ blocksCleared: 0 })
      expect((await ndjson(dir, '--dir', s, 'diff', created.writerKey, '--from', '1', '--to', '3')).map((c) => [c.key, c.value])).to.deep.equal([['k', 2]])
      // seeding again, it serves a the range a cleared
      const again = seed()
      await again.waitFor('the seeder connected', (e) => e.event === 'peer-add')
      expect((await ndjson(dir, '--dir', a, 'diff', created.writerKey, '--from', '1', '--to', '3')).map((c) => [c.key, c.value])).to.deep.equal([['k', 2]])
      expect(await again.stop('SIGINT')).to.equal(0)
      expect(await pa.stop('SIGINT')).to.equal(0)
    } finally {
      for (const p of peers) await p.stop('SIGKILL')
    }
  })

  it('join --auto-compact compacts on its own once this writer has recorded; --history full (remembered) keeps every block', async function () {
    this.timeout(180_000)
    const a = join(dir, 'a')
    const f = join(dir, 'f')
    const peers: Online[] = []
    try {
      await json(dir, '--dir', a, 'init')
      expect(await json(dir, '--dir', f, 'init', '--history', 'full')).to.include({ created: true })
      expect((await json(dir, '--dir', f, 'info')).history).to.equal('full')
      for (const d of [a, f]) {
        for (const v of ['1', '2', '3']) await json(dir, '--dir', d, 'put', 'k', v)
        await json(dir, '--dir', d, 'put', 'gone', 'x')
        await json(dir, '--dir', d, 'del', 'gone')
      }
      // (the local testnet: with no bootstrap the DHT looks for the public one, and leaving waits on it)
      const args = bootstrap.flatMap((n) => ['--bootstrap', n])
      const pa = new Online(dir, ['--dir', a, 'join', '--no-request', '--auto-compact', '1s', ...args])
      const pf = new Online(dir, ['--dir', f, 'join', '--no-request', '--auto-compact', '1s', ...args])
      peers.push(pa, pf)
      expect(await pa.waitFor('a listening', (e) => e.event === 'joining')).to.include({ history: 'live', autoCompact: 1000 })
      expect(await pf.waitFor('f listening', (e) => e.event === 'joining')).to.include({ history: 'full', autoCompact: 1000 })
      // a write after open: the fold after it makes this writer's stability record due, and the
      // next automatic run records it and compacts
      await json(dir, '--dir', a, 'put', 'k', '4')
      const auto = await pa.waitFor('a compacting on its own', (e) => e.event === 'compacted' && e.blocksCleared > 0, 90_000)
      expect(auto).to.include({ tombstones: 0 })
      expect((await json(dir, '--dir', a, 'info')).stats).to.include({ tombstonesCollected: 1, tombstones: 0 })
      // f keeps every block: once it has recorded, its tombstone goes (after any fold), no block is cleared, by hand neither
      await json(dir, '--dir', f, 'put', 'k', '4')
      expect(await pf.waitFor('f collecting its tombstone', (e) => e.event === 'compacted', 90_000)).to.include({ blocksCleared: 0, tombstonesCollected: 1, tombstones: 0 })
      expect(await json(dir, '--dir', f, 'compact')).to.include({ blocksCleared: 0, tombstones: 0 })
      expect((await json(dir, '--dir', f, 'info')).stats).to.include({ blocksCleared: 0, tombstonesCollected: 1 })
      expect(await pa.stop('SIGINT')).to.equal(0)
      expect(await pf.stop('SIGINT')).to.equal(0)
    } finally {
      for (const p of peers) await p.stop('SIGKILL')
    }
  })

  it('private databases: pair a writer and a reader by invites answered by a running join; a used invite is refused; seed is blind', async () => {
    const a = join(dir, 'a')
    const args = bootstrap.flatMap((n) => ['--bootstrap', n])
    const peers: Online[] = []
    try {
      const created = await json(dir, '--dir', a, 'init', '--encrypted')
      await json(dir, '--dir', a, 'put', 'hello', '{"from":"a"}')
      // made before the join: stored, and answered once the join runs
      const stored = await json(dir, '--dir', a, 'invite')
      expect(stored).to.include({ role: 'writer', uses: 1, answered: 'on join' })
      const pa = new Online(dir, ['--dir', a, 'join', ...args])
      peers.push(pa)
      expect((await pa.waitFor('a announced', (e) => e.event === 'joining'))).to.include({ privacy: 'encrypted' })
      await pa.waitFor('a announced', (e) => e.event === 'joined')
      // made inside the running join (through its socket): answered at once
      const forReader = await json(dir, '--dir', a, 'invite', '--role', 'reader')
      expect(forReader).to.include({ role: 'reader', answered: 'now' })

      const b = join(dir, 'b')
      const paired = await json(dir, '--dir', b, 'pair', stored.invite, ...args, '--timeout', '30000')
      expect(paired).to.include({ key: created.key, role: 'writer', writable: true, privacy: 'encrypted', dir: b })
      // pair waits until it is admitted, which it sees in a's log, after a's put
      expect(await json(dir, '--dir', b, 'get', 'hello')).to.deep.equal({ key: 'hello', value: { from: 'a' } })
      expect(await json(dir, '--dir', b, 'put', 'from-b', '2')).to.deep.equal({ key: 'from-b', value: 2 })

      const c = join(dir, 'c')
      const text = await cli(dir, '--dir', c, 'pair', forReader.invite, ...args, '--timeout', '30000')
      expect(text.code, text.stderr).to.equal(0)
      expect(text.stdout).to.match(/^role +reader$/m).and.match(/^writable +false$/m).and.include('meshbee join')
      expect(await json(dir, '--dir', c, 'get', 'hello')).to.deep.equal({ key: 'hello', value: { from: 'a' } })
      expect(errorOf(await cli(dir, '--json', '--dir', c, 'put', 'x', '1'), 4).code).to.equal('MESHBEE_NOT_WRITABLE')

      // the member's lists, through its socket: both invites used, c a reader
      const readerKey = (await json(dir, '--dir', c, 'info')).writerKey
      await pa.waitFor('c added', (e) => e.event === 'writer-add' && e.writer === readerKey && e.reader === true)
      const writers = await json(dir, '--dir', a, 'writers')
      expect(writers.find((w: any) => w.key === paired.writerKey)).to.include({ member: true, reader: false })
      expect(writers.find((w: any) => w.key === readerKey)).to.include({ member: true, reader: true })
      expect((await json(dir, '--dir', a, 'invite', 'ls')).map((i: any) => [i.role, i.used, i.state])).to.deep.equal([['writer', 1, 'used up'], ['reader', 1, 'used up']])
      expect(await json(dir, '--dir', a, 'info')).to.include({ privacy: 'encrypted', writers: 2, readers: 1 })

      const refused = errorOf(await cli(dir, '--json', '--dir', join(dir, 'd'), 'pair', stored.invite, ...args, '--timeout', '30000'), 1)
      expect(refused).to.include({ code: 'MESHBEE_INVITE_REFUSED', reason: 'MESHBEE_INVITE_USED' })

      // a peer with the key alone seeds blind, and says so
      const s = join(dir, 's')
      const seeder = new Online(dir, ['--dir', s, 'seed', created.key, ...args])
      peers.push(seeder)
      await seeder.waitFor('the seeder finding the database encrypted', (e) => e.event === 'blind')
      expect(await json(dir, '--dir', s, 'info')).to.include({ privacy: 'blind', role: null, hash: null })
      expect(errorOf(await cli(dir, '--json', '--dir', s, 'get', 'hello'), 1).code).to.equal('MESHBEE_BLIND')
      expect(await seeder.stop('SIGINT')).to.equal(0)
      expect(await pa.stop('SIGINT')).to.equal(0)
    } finally {
      for (const p of peers) await p.stop('SIGKILL')
    }
  })
})
