/**
 * crdt/ is the pure core: it may import only other crdt/ files and a few encoding packages — no
 * lib/, no sync/, no node: modules, nothing that does I/O.
 */
import { expect } from 'chai'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'

const CRDT = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'crdt')
const ALLOWED_PACKAGES = new Set(['@msgpack/msgpack', 'compact-encoding', 'b4a'])

/** Every module specifier of a source text: imports, re-exports, import(), require(). */
function specifiers (text: string): string[] {
  return ts.preProcessFile(text, true, true).importedFiles.map((f) => f.fileName)
}

/** Why `spec`, imported from crdt/`file`, breaks purity, or null if it does not. */
function violation (file: string, spec: string): string | null {
  if (spec.startsWith('.')) {
    const target = resolve(CRDT, dirname(file), spec)
    if (!target.startsWith(CRDT + sep)) return `${spec} leaves crdt/`
    if (!existsSync(target.replace(/\.js$/, '.ts'))) return `${spec} does not exist in crdt/`
    return null
  }
  return ALLOWED_PACKAGES.has(spec) ? null : `${spec} is not an allowed package`
}

function crdtFiles (dir = CRDT): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? crdtFiles(join(dir, e.name)) : /\.[cm]?[jt]s$/.test(e.name) ? [relative(CRDT, join(dir, e.name))] : [])
}

describe('purity of crdt/', () => {
  it('every file in crdt/ imports only crdt/ files and the allowed packages', () => {
    const files = crdtFiles()
    expect(files).to.include.members(['hlc.ts', 'lww.ts', 'lwwmap.ts', 'orset.ts', 'keystate.ts', 'codec.ts'])
    const problems = files.flatMap((file) => {
      const text = readFileSync(join(CRDT, file), 'utf8')
      return specifiers(text).flatMap((spec) => {
        const why = violation(file, spec)
        return why === null ? [] : [`crdt/${file}: ${why}`]
      })
    })
    expect(problems).to.deep.equal([])
  })

  it('the check sees every kind of import', () => {
    const text = [
      "import { a } from '../lib/meshdb.js'",
      "import type { B } from '../sync/swarm.js'",
      "export * from 'node:fs'",
      "const m = await import('hyperswarm')",
      "const r = require('fs')",
      "import './lww.js'",
      "import c from 'compact-encoding'"
    ].join('\n')
    const found = specifiers(text).map((s) => [s, violation('x.ts', s) !== null])
    expect(found).to.deep.equal([
      ['../lib/meshdb.js', true], ['../sync/swarm.js', true], ['node:fs', true], ['hyperswarm', true],
      ['fs', true], ['./lww.js', false], ['compact-encoding', false]
    ])
  })
})

/** The relative imports of every .ts file in `dir`, resolved to repository paths. */
function importsOf (dir: string): Array<{ file: string, target: string }> {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
  return readdirSync(join(root, dir)).filter((f) => f.endsWith('.ts')).flatMap((f) =>
    specifiers(readFileSync(join(root, dir, f), 'utf8')).filter((s) => s.startsWith('.'))
      .map((s) => ({ file: `${dir}/${f}`, target: relative(root, resolve(root, dir, s)).replace(/\.js$/, '.ts') })))
}

describe('layering', () => {
  it('sync/ imports nothing of lib/: lib/ gives it a SyncHost', () => {
    expect(importsOf('sync').filter((i) => i.target.startsWith('lib' + sep)).map((i) => `${i.file} → ${i.target}`)).to.deep.equal([])
  })

  it('no module below the engine imports it: only the adapter that opens it does', () => {
    const users = importsOf('lib').filter((i) => i.target === join('lib', 'engine.ts')).map((i) => i.file)
    expect(users).to.deep.equal(['lib/adapter.ts'])
  })

  it('nothing under scripts/ imports from test/', () => {
    const files = readdirSync('scripts', { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile() && e.name.endsWith('.ts'))
      .map((e) => join(e.parentPath, e.name))
    expect(files.length).to.be.greaterThan(5)
    const bad = files.filter((f) => specifiers(readFileSync(f, 'utf8')).some((s) => s.startsWith('.') && relative('.', resolve(dirname(f), s)).startsWith('test' + sep)))
    expect(bad).to.deep.equal([])
  })
})
