import { expect } from 'chai'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'

describe('docs', () => {
  for (const doc of ['ARCHITECTURE.md', 'README.md']) {
    it(`every repository path named in ${doc} exists`, () => {
      const text = readFileSync(doc, 'utf8')
      const paths = new Set([...text.matchAll(/`((?:lib|crdt|test|scripts|sync|types|bin|cli|examples)\/[\w./*-]*\.(?:ts|js|md))`/g)].map((m) => m[1]))
      expect(paths.size, `${doc} names some paths`).to.be.greaterThan(0)
      const missing = [...paths].filter((p) => !p.includes('*') && !existsSync(p))
      expect(missing, `paths named in ${doc} that do not exist`).to.deep.equal([])
    })
  }
})

/** Every .ts source file of the package (lib/, crdt/, sync/, cli/, index.ts), with its text. */
function sources (): Map<string, string> {
  const out = new Map<string, string>([['index.ts', readFileSync('index.ts', 'utf8')]])
  for (const dir of ['lib', 'crdt', 'sync', 'cli']) {
    for (const f of readdirSync(dir)) if (f.endsWith('.ts')) out.set(`${dir}/${f}`, readFileSync(join(dir, f), 'utf8'))
  }
  return out
}

describe('ARCHITECTURE.md names what exists', () => {
  it('every `Class.member` it names is a class in the sources with that member', () => {
    const text = readFileSync('ARCHITECTURE.md', 'utf8')
    const named = new Set([...text.matchAll(/`([A-Z][A-Za-z]+)\.([a-zA-Z_]\w*)`/g)].map((m) => `${m[1]}.${m[2]}`))
    expect(named.size, 'ARCHITECTURE.md names some members').to.be.greaterThan(10)
    const files = sources()
    // classes of dependencies that the text names, read from the installed package
    files.set('hypercore/lib/merkle-tree.js', readFileSync('node_modules/hypercore/lib/merkle-tree.js', 'utf8'))
    const missing = [...named].filter((name) => {
      const [cls, member] = name.split('.')
      const file = [...files.values()].find((t) => new RegExp(`\\bclass ${cls}\\b`).test(t))
      if (file === undefined) return true
      return !new RegExp(`(^|\\s)(?:(?:private|protected|readonly|static|async|get|set)\\s+)*\\*?\\s*${member}\\s*[(:=<!]`, 'm').test(file)
    })
    expect(missing, 'members named in ARCHITECTURE.md that do not exist').to.deep.equal([])
  })
})

describe('API reference', () => {
  it('typedoc builds it from the TSDoc with no warning: every public export documented, no broken link', async function () {
    this.timeout(120_000)
    const { execFile } = await import('node:child_process')
    const { promisify } = await import('node:util')
    const typedoc = join(import.meta.dirname, '..', 'node_modules', 'typedoc', 'bin', 'typedoc')
    // typedoc.json treats warnings as errors, so a missing doc comment fails the run
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [typedoc, '--emit', 'none'], { timeout: 110_000 })
    expect(stdout + stderr).to.not.match(/warning|error/i)
  })
})
