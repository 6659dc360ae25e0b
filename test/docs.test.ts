import { expect } from 'chai'
import { existsSync, readFileSync } from 'node:fs'

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
