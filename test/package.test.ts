/**
 * meshbee as an app gets it: `npm pack` the repository (which builds dist/), install the tarball
 * into a fresh app outside the repository, and use it there with plain `node` (no tsx), with a
 * strict TypeScript consumer (no skipLibCheck), through the installed `meshbee` binary, and by
 * running every program in examples/ as a user who copied it would. Dependencies come from npm's
 * cache, which `npm ci` filled (`--prefer-offline`).
 */
import { expect } from 'chai'
import { execFile } from 'node:child_process'
import { copyFileSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

const ROOT = join(import.meta.dirname, '..')
const run = promisify(execFile)
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm'
const ENV: NodeJS.ProcessEnv = { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' }
delete ENV.MESHBEE_DIR

interface Out { stdout: string, stderr: string }

async function sh (cwd: string, file: string, args: string[], timeout = 120_000): Promise<Out> {
  try {
    return await run(file, args, { cwd, env: ENV, timeout, maxBuffer: 64 * 1024 * 1024 })
  } catch (err) {
    const e = err as Error & Partial<Out>
    throw new Error(`${file} ${args.join(' ')} failed in ${cwd}: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`)
  }
}

/** The first ```ts block of the README's "## Use" section: the snippet a new user copies first. */
function readmeSnippet (): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
  const use = readme.slice(readme.indexOf('\n## Use'))
  const m = /```ts\n([\s\S]*?)```/.exec(use)
  if (m === null) throw new Error('README.md has no ts snippet under "## Use"')
  return m[1]
}

/** A consumer of the public API: every exported type by name, in strict mode. */
const CONSUMER = `
import { MeshDB, MeshError, MeshTypeError, HLC, compareStamps, compareVersions, stampToString, stampFromString } from 'meshbee'
import type {
  CorestoreLike, Cuts, DiffChange, ErrorCode, HLCOptions, HyperswarmLike, HyperswarmOptions, JoinRequest, Json, KeyType,
  KeyVersion, MeshDBOptions, ObserveResult, Stamp, Stats, SwarmOptions, Version, WriterInfo
} from 'meshbee'
import { startTestnet, type Testnet } from 'meshbee/testnet'

interface Todo { title: string, done?: boolean }
const options: MeshDBOptions<string, Todo> = { valueEncoding: 'json', sparseAfter: 256, maxDrift: 60_000 }
const db = new MeshDB<string, Todo>('./data', options)
await db.put('todo/1', { title: 'milk' })
const todo: Todo | undefined = await db.get('todo/1')
await db.patch('todo/1', { done: true })
await db.sadd('tags', 'home')
const members: Json[] = await db.smembers('tags')
const type: KeyType | undefined = await db.typeOf('tags')
const writers: WriterInfo[] = db.writers()
const versions: Array<KeyVersion<string, Todo>> = await db.versions('todo/1')
for await (const c of db.diff(db.writerKey)) { const change: DiffChange<string, Todo> = c; void change }
const cuts: Cuts = db.cuts()
const past = db.checkout(cuts)
await past.open()
const old: Todo | undefined = await past.get('todo/1')
const stats: Stats = db.stats()
db.on('join-request', (r: JoinRequest) => { void db.addWriter(r.key) })
const swarm: SwarmOptions = { swarm: { bootstrap: [{ host: '127.0.0.1', port: 49737 }] } satisfies HyperswarmOptions }
const testnet: Testnet = await startTestnet(1)
await db.join({ swarm: testnet.swarmOptions() })
const stamp: Stamp = new HLC({ wallClock: () => 1 } satisfies HLCOptions).now()
const order: number = compareStamps(stamp, stampFromString(stampToString(stamp))) + compareVersions({ stamp, writer: db.writerKey } satisfies Version, { stamp, writer: db.key })
try { await db.addWriter('nope') } catch (err) {
  if (err instanceof MeshError || err instanceof MeshTypeError) { const code: ErrorCode = err.code; void code }
}
const hub: HyperswarmLike | undefined = undefined
const store: CorestoreLike | undefined = undefined
const observed: ObserveResult | undefined = undefined
// @ts-expect-error a value that is not a Todo
await db.put('todo/2', 42)
void [todo, members, type, versions, old, stats, swarm, order, hub, store, observed]
await db.close()
await testnet.destroy()
`

/** Plain node: two databases replicate a write in process. */
const REPLICATE = `
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MeshDB } from 'meshbee'

const dir = mkdtempSync(join(tmpdir(), 'meshbee-consumer-'))
const a = new MeshDB(join(dir, 'a'), { valueEncoding: 'json' })
await a.put('todo/1', { title: 'milk' })
const b = new MeshDB(join(dir, 'b'), { key: a.key, valueEncoding: 'json' })
await b.open()
const s = a.replicate(true)
s.pipe(b.replicate(false)).pipe(s)
while (await b.get('todo/1') === undefined) await new Promise((resolve) => b.once('update', resolve))
console.log(JSON.stringify({ value: await b.get('todo/1'), same: a.hash().equals(b.hash()) }))
s.destroy()
await a.close()
await b.close()
`

/**
 * An app with its own Hypercore: npm hoists it, corestore (meshbee's dependency) loads it, and
 * meshbee's pinned one is nested in meshbee. The replicator workaround must be on the copy
 * corestore loads, from import on, and on the one the database's cores run on.
 */
const LAYOUT = `
import { mkdtempSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MeshDB } from 'meshbee'

const PATCHED = Symbol.for('meshbee.hypercore-sync-patch')
const fromMeshbee = createRequire(createRequire(import.meta.url).resolve('meshbee/package.json'))
const fromCorestore = createRequire(fromMeshbee.resolve('corestore'))
const Replicator = fromCorestore('hypercore/lib/replicator.js')
const patchedOnImport = Replicator.Peer.prototype[PATCHED] === true
const db = new MeshDB(join(mkdtempSync(join(tmpdir(), 'meshbee-layout-')), 'db'))
await db.put('k', 'v')
const used = db.engine.own.core.core.replicator.constructor
console.log(JSON.stringify({
  corestore: fromCorestore('hypercore/package.json').version,
  meshbee: fromMeshbee('hypercore/package.json').version,
  patchedOnImport,
  used: used === Replicator,
  patchedOnOpen: used.Peer.prototype[PATCHED] === true
}))
await db.close()
`

describe('the package, installed in an app', function () {
  this.timeout(240_000)
  let work: string
  let app: string
  let files: string[]

  before(async function () {
    work = await mkdtemp(join(tmpdir(), 'meshbee-package-'))
    app = join(work, 'app')
    const packed = JSON.parse((await sh(ROOT, NPM, ['pack', '--json', '--pack-destination', work])).stdout) as Array<{ filename: string, files: Array<{ path: string }> }>
    files = packed[0].files.map((f) => f.path)
    const tarball = join(work, packed[0].filename)
    const dev = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> }).devDependencies
    await sh(work, 'mkdir', ['app'])
    writeFileSync(join(app, 'package.json'), JSON.stringify({
      name: 'app',
      private: true,
      type: 'module',
      dependencies: { meshbee: `file:${tarball}` },
      devDependencies: { typescript: dev.typescript, '@types/node': dev['@types/node'] }
    }, null, 2))
    await sh(app, NPM, ['install', '--prefer-offline', '--no-audit', '--no-fund'], 180_000)
  })

  after(async () => {
    await rm(work, { recursive: true, force: true })
  })

  it('ships the compiled library, CLI and declarations, and no sources or tests', () => {
    expect(files).to.include.members(['package.json', 'README.md', 'bin/meshbee.js', 'dist/index.js', 'dist/index.d.ts',
      'dist/lib/meshdb.js', 'dist/lib/testnet.js', 'dist/cli/main.js'])
    expect(files.filter((f) => /\.ts$/.test(f) && !f.endsWith('.d.ts')), 'TypeScript sources').to.deep.equal([])
    expect(files.filter((f) => /^(test|scripts|types)\//.test(f) || f.endsWith('.map')), 'tests, scripts, source maps').to.deep.equal([])
  })

  it('plain node imports meshbee and two databases replicate a write', async () => {
    writeFileSync(join(app, 'replicate.mjs'), REPLICATE)
    const out = JSON.parse((await sh(app, process.execPath, ['replicate.mjs'])).stdout) as unknown
    expect(out).to.deep.equal({ value: { title: 'milk' }, same: true })
  })

  it('a strict TypeScript consumer (nodenext, no skipLibCheck) type-checks, the README snippet too', async () => {
    writeFileSync(join(app, 'consumer.ts'), CONSUMER)
    writeFileSync(join(app, 'readme.ts'), readmeSnippet() + '\nexport {}\n')
    writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { strict: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', noEmit: true, skipLibCheck: false, types: ['node'] },
      files: ['consumer.ts', 'readme.ts']
    }))
    await sh(app, process.execPath, [join(app, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', '.'])
    // and the check is real: a type error in the consumer fails it
    writeFileSync(join(app, 'broken.ts'), "import { MeshDB } from 'meshbee'\nconst db = new MeshDB<string, number>('./x')\nawait db.put('k', 'not a number')\n")
    const broken = await run(process.execPath, [join(app, 'node_modules', 'typescript', 'bin', 'tsc'), '--strict', '--module', 'nodenext', '--noEmit', 'broken.ts'], { cwd: app }).then(() => null, (e: Out) => e)
    expect(broken?.stdout).to.match(/error TS2345/)
  })

  it('the installed meshbee binary runs --help, init, put and get', async () => {
    const bin = join(app, 'node_modules', '.bin', 'meshbee')
    const dir = join(work, 'cli-db')
    expect((await sh(app, bin, ['--help'])).stdout).to.include('Usage: meshbee')
    const init = JSON.parse((await sh(app, bin, ['--json', '--dir', dir, 'init'])).stdout) as { key: string }
    expect(init.key).to.match(/^[0-9a-f]{64}$/)
    await sh(app, bin, ['--dir', dir, 'put', 'todo/1', '{"title":"milk"}'])
    expect(JSON.parse((await sh(app, bin, ['--json', '--dir', dir, 'get', 'todo/1'])).stdout)).to.deep.equal({ key: 'todo/1', value: { title: 'milk' } })
  })

  it('installs no build tools at run time: neither tsx, typescript nor esbuild', async () => {
    const tree = (await sh(app, NPM, ['ls', '--omit=dev', '--all', '--parseable'])).stdout
    const names = tree.split('\n').filter((l) => l !== '').map((l) => l.slice(l.lastIndexOf('node_modules/') + 'node_modules/'.length))
    expect(names).to.include('meshbee')
    expect(names.filter((n) => ['tsx', 'typescript', 'esbuild'].includes(n))).to.deep.equal([])
  })

  it('every example in examples/ runs as copied into the app', async () => {
    const examples = readdirSync(join(ROOT, 'examples')).filter((f) => f.endsWith('.mjs'))
    expect(examples.length).to.be.greaterThanOrEqual(3)
    const expected: Record<string, RegExp[]> = {
      'two-devices.mjs': [/phone reads \{ title: 'milk', done: false \}/, /laptop reads \{ title: 'eggs', done: false \}/, /same view: true/],
      'documents-and-sets.mjs': [/recipe \{ serves: 4, title: 'crêpes' \}/, /tags \[ 'french', 'sweet' \]/, /types doc set/, /same view: true/, /after put \{ title: 'waffles' \} value/],
      'conflicts-and-diffs.mjs': [/winner (blue|green) \(b reads \1 too\)/, /version [0-9a-f]{8} put "(blue|green)"/, /b changed colour put "green"/, /before the conflict, colour was undefined/],
      'private-sync.mjs': [/laptop writable: true \| privacy: encrypted/, /laptop reads diary\/1: Dear diary/, /the server cannot read: MESHBEE_BLIND/, /phone reads diary\/2 via the server: Written on the laptop/],
      'reclaim-space.mjs': [/before: tombstones 25 \| notes 25/, /after: tombstones 0 \| collected 25 \| blocks cleared true/, /same view: true \| notes 25/],
      'watch-and-query.mjs': [/phone open: todo\/2 \| search "creme su": todo\/2/, /laptop open: todo\/2 \| search "creme su": todo\/2/, /the laptop saw: local put todo\/2, remote put todo\/1/, /since then: del todo\/2/]
    }
    expect(Object.keys(expected).sort()).to.deep.equal([...examples].sort())
    for (const name of examples) {
      copyFileSync(join(ROOT, 'examples', name), join(app, name))
      const { stdout } = await sh(app, process.execPath, [name], 60_000)
      for (const re of expected[name]) expect(stdout, name).to.match(re)
    }
  })

  it('patches the Hypercore corestore loads when the app has its own (hoisted, meshbee\'s nested)', async () => {
    // last: it changes the app's tree
    const pinned = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }).dependencies.hypercore
    const other = pinned === '11.37.1' ? '11.39.5' : '11.37.1'
    await sh(app, NPM, ['install', '--prefer-offline', '--no-audit', '--no-fund', `hypercore@${other}`], 180_000)
    writeFileSync(join(app, 'layout.mjs'), LAYOUT)
    const out = JSON.parse((await sh(app, process.execPath, ['layout.mjs'])).stdout) as unknown
    expect(out).to.deep.equal({ corestore: other, meshbee: pinned, patchedOnImport: true, used: true, patchedOnOpen: true })
  })
})
