import { expect } from 'chai'
import { existsSync, readFileSync } from 'node:fs'
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
