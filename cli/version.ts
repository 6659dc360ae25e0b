import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * meshbee's version, from the package.json above this file: one level up in the sources (cli/),
 * two in the built package (dist/cli/).
 */
export function packageVersion (): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  while (true) {
    const file = join(dir, 'package.json')
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string, version?: string }
      if (pkg.name === 'meshbee' && typeof pkg.version === 'string') return pkg.version
    }
    const up = dirname(dir)
    if (up === dir) return '0.0.0'
    dir = up
  }
}
