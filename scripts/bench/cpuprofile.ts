/**
 * Summarizes a V8 .cpuprofile: self time by package and by function.
 *
 * Profile only the measured phase of one trial (common.ts profStart/profStop):
 *   mkdir -p /tmp/prof && BENCH_CPU_PROF=/tmp/prof node --import tsx scripts/bench/child.ts '<spec JSON>'
 * or a whole process: node --cpu-prof --cpu-prof-dir=/tmp/prof --import tsx scripts/bench/child.ts '<spec JSON>'
 * then:
 *   npx tsx scripts/bench/cpuprofile.ts /tmp/prof/<file>.cpuprofile [top=25]
 *
 * Native time is often labelled with an unrelated native function name (V8 attributes samples in
 * addon code to the nearest symbol it knows): read "(native / V8)" rows with their callers in mind.
 *
 * Specs look like the ones the runner builds (scripts/bench/types.ts), e.g.
 *   '{"workload":"converge","system":"meshbee","params":{"writers":4,"perWriter":400},"round":0}'
 */
import { readFileSync } from 'node:fs'

interface Node {
  id: number
  callFrame: { functionName: string, url: string, lineNumber: number }
  children?: number[]
}
interface Profile { nodes: Node[], samples: number[], timeDeltas: number[], startTime: number, endTime: number }

const file = process.argv[2]
const top = Number(process.argv[3] ?? 25)
if (file === undefined) {
  process.stderr.write('usage: npx tsx scripts/bench/cpuprofile.ts <file.cpuprofile> [top]\n')
  process.exit(2)
}
const prof = JSON.parse(readFileSync(file, 'utf8')) as Profile
const byId = new Map(prof.nodes.map((n) => [n.id, n]))
const self = new Map<number, number>()
for (let i = 0; i < prof.samples.length; i++) self.set(prof.samples[i], (self.get(prof.samples[i]) ?? 0) + (prof.timeDeltas[i] ?? 0))
const total = [...self.values()].reduce((a, b) => a + b, 0)

function where (url: string): string {
  if (url === '') return '(native / V8)'
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (m !== null) return m[1]
  if (url.startsWith('node:')) return 'node core'
  const own = /\/work\/[^/]+\/(?:[^/]+\/)*?((?:lib|crdt|sync|scripts|test)\/.*)$/.exec(url)
  return own !== null ? own[1].split('/').slice(0, 2).join('/') : url
}

const fn = new Map<string, number>()
const pkg = new Map<string, number>()
for (const [id, t] of self) {
  const n = byId.get(id) as Node
  const { functionName, url, lineNumber } = n.callFrame
  const name = `${functionName === '' ? '(anonymous)' : functionName} ${where(url)}${url !== '' ? ':' + String(lineNumber + 1) : ''}`
  fn.set(name, (fn.get(name) ?? 0) + t)
  const p = where(url)
  pkg.set(p, (pkg.get(p) ?? 0) + t)
}
const pct = (t: number): string => (100 * t / total).toFixed(1).padStart(5) + '%'
const wall = (prof.endTime - prof.startTime) / 1000
process.stdout.write(`profile ${file}: ${(total / 1000).toFixed(0)} ms sampled over ${wall.toFixed(0)} ms wall\n\nself time by package/file:\n`)
for (const [p, t] of [...pkg].sort((a, b) => b[1] - a[1]).slice(0, top)) process.stdout.write(`${pct(t)}  ${(t / 1000).toFixed(0).padStart(6)} ms  ${p}\n`)
process.stdout.write('\nself time by function:\n')
for (const [f, t] of [...fn].sort((a, b) => b[1] - a[1]).slice(0, top)) process.stdout.write(`${pct(t)}  ${(t / 1000).toFixed(0).padStart(6)} ms  ${f}\n`)
