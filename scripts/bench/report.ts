/**
 * The markdown report: one summary table (medians, ratio meshbee / anchor, the issue's target and
 * whether it is met), detail tables per workload, and every round's figure.
 */
import { caseName, type Plan } from './plan.js'
import type { Result, Spec, System } from './types.js'

export interface Trial { spec: Spec, result: Result & { error?: string, timedOut?: boolean, wallMs?: number } }

export interface ReportInput {
  plan: Plan
  trials: Trial[]
  sync: string | null
  /** The view-store comparison (opt-in): printed only when it ran. */
  viewstore: string | null
  /** Replication and folds under load (load.ts, opt-in): printed only when it ran. */
  underLoad: string | null
  /** Watching, indexes and search (views.ts), markdown; null when not run. */
  views: string | null
  /** Private databases (private.ts), markdown; null when not run. */
  privateDbs: string | null
  command: string
  started: Date
  minutes: number
  machine: string
  versions: string
  /** 1-minute load averages: before the run, before each trial, at the end. */
  load: number[]
}

/** A median over rounds; `lower` marks a median that is only a lower bound (a timeout counted). */
interface Cell { median: number, values: number[], timeouts: number, failures: string[], lower: boolean }

const NONE: Cell = { median: NaN, values: [], timeouts: 0, failures: [], lower: false }

function median (xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length === 0 ? NaN : s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2
}

const int = (x: number): string => Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '—'
const ms = (x: number): string => !Number.isFinite(x) ? '—' : x >= 10_000 ? `${(x / 1000).toFixed(1)} s` : `${Math.round(x).toLocaleString('en-US')} ms`
const ratio = (x: number): string => !Number.isFinite(x) ? '—' : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x >= 0.1 ? x.toFixed(2) : x.toPrecision(2)
const mb = (x: number): string => Number.isFinite(x) ? x.toFixed(0) : '—'
/** Short times, to the µs below 10 ms. */
const fine = (x: number): string => !Number.isFinite(x) ? '—' : x < 10 ? `${x.toFixed(3)} ms` : `${Math.round(x).toLocaleString('en-US')} ms`

export function report (r: ReportInput): string {
  const { plan: p, trials } = r

  /** The cell of one metric over rounds, for trials matching `pick`. Timeouts count as +limit (lower bound). */
  const cell = (pick: (s: Spec) => boolean, metric: string): Cell => {
    const ts = trials.filter((t) => pick(t.spec))
    if (ts.length === 0) return NONE
    const values: number[] = []
    const failures: string[] = []
    let timeouts = 0
    for (const t of ts) {
      if (t.result.timedOut === true) {
        timeouts++
        if (metric === 'ms') values.push(p.trialTimeoutMs)
      } else if (t.result.error !== undefined) failures.push(t.result.error)
      else if (t.result.metrics[metric] !== undefined) values.push(t.result.metrics[metric])
    }
    const m = median(values)
    return { median: m, values, timeouts, failures, lower: timeouts > 0 && m >= p.trialTimeoutMs }
  }
  const of = (workload: Spec['workload'], system: System, key?: string) => (s: Spec): boolean =>
    s.workload === workload && s.system === system && (key === undefined || keyOf(s) === key)
  const fmtCell = (c: Cell, f: (x: number) => string): string => {
    if (c.values.length === 0) return c.timeouts > 0 ? `> ${ms(p.trialTimeoutMs)} (timeout)` : c.failures.length > 0 ? 'failed' : '—'
    return (c.lower ? '> ' : '') + f(c.median) + (c.timeouts > 0 && !c.lower ? ` (${c.timeouts} timeout)` : '')
  }

  const lines: string[] = []
  const out = (s = ''): void => { lines.push(s) }
  const rows: string[][] = []
  const failures: string[] = []

  type Dir = 'higher' | 'lower'
  /** A summary row: meshbee vs an anchor on one metric; `target` is on meshbee / anchor. */
  const row = (name: string, m: Cell, anchorName: string, a: Cell, f: (x: number) => string, dir: Dir, target?: number, less = 'faster', more = 'slower'): void => {
    const q = m.median / a.median
    let rq = ratio(q)
    // a timed-out anchor makes the ratio of times an upper bound
    if (a.lower && dir === 'lower') rq = '< ' + rq
    if (m.lower && dir === 'lower') rq = '> ' + rq
    let t = '—'
    let met = '—'
    if (target !== undefined) {
      t = dir === 'higher' ? `≥ ${target}` : `≤ ${target} (${Math.round(1 / target)}× faster)`
      if (Number.isFinite(q) && !m.lower) met = (dir === 'higher' ? q >= target : q <= target) ? 'yes' : '**no**'
    }
    if (dir === 'lower' && Number.isFinite(q) && q > 0) rq += ` (${ratio(1 / q)}× ${q < 1 ? less : more})`
    rows.push([name, fmtCell(m, f), anchorName, fmtCell(a, f), rq, t, met])
  }

  // ---- local
  if (trials.some((t) => t.spec.workload === 'local')) {
    const l = (s: System, m: string): Cell => cell(of('local', s), m)
    const L = p.local
    row(`put, one at a time, awaited (ops/s; ${int(L.puts)} keys)`, l('meshbee', 'put'), 'Hyperbee', l('hyperbee', 'put'), int, 'higher', 0.8)
    row('〃', l('meshbee', 'put'), 'classic-level', l('classic-level', 'put'), int, 'higher')
    row(`put, batches of ${int(L.batch)} (ops/s; ${int(L.batched)} keys)`, l('meshbee', 'batch'), 'Hyperbee', l('hyperbee', 'batch'), int, 'higher', 0.8)
    row('〃', l('meshbee', 'batch'), 'classic-level', l('classic-level', 'batch'), int, 'higher')
    row(`get random existing key, awaited (ops/s; ${int(L.gets)} gets)`, l('meshbee', 'get'), 'classic-level', l('classic-level', 'get'), int, 'higher', 0.7)
    row('〃', l('meshbee', 'get'), 'Hyperbee', l('hyperbee', 'get'), int, 'higher')
    row('get random existing key, getSync (ops/s; same keys)', l('meshbee', 'getSync'), 'classic-level', l('classic-level', 'getSync'), int, 'higher')
    row(`full iteration (entries/s; ${int(L.puts + L.batched)} entries)`, l('meshbee', 'scan'), 'classic-level', l('classic-level', 'scan'), int, 'higher', 0.5)
    row('〃', l('meshbee', 'scan'), 'Hyperbee', l('hyperbee', 'scan'), int, 'higher')
  }

  // ---- convergence
  const conv = (s: System, c: string, m = 'ms'): Cell => cell(of('converge', s, c), m)
  if (trials.some((t) => t.spec.workload === 'converge')) {
    for (const c of p.converge) {
      if (!c.autobase) continue
      const name = caseName(c)
      row(`convergence, ${c.writers} writers × ${c.perWriter} offline puts (time to identical views)`, conv('meshbee', name), 'autobase', conv('autobase', name), ms, 'lower', c.writers === 4 ? 0.05 : undefined)
    }
    const [small, large] = p.linearity
    const a = conv('meshbee', small)
    const b = conv('meshbee', large)
    const q = b.median / a.median
    rows.push([`convergence linearity: meshbee ${large.replace('x', ' × ')} vs ${small.replace('x', ' × ')} (4× the ops)`,
      `${ms(b.median)} vs ${ms(a.median)}`, '—', '—', `${ratio(q)}× the time`, '≤ 5× the time', Number.isFinite(q) ? (q <= 5 ? 'yes' : '**no**') : '—'])
  }

  // ---- catch-up
  const cu = p.catchup
  if (trials.some((t) => t.spec.workload === 'catchup')) {
    const m = (s: System, k: string): Cell => cell(of('catchup', s), k)
    row(`catch-up: ${cu.writers} writers overwrote ${int(cu.keys)} keys ${cu.overwrites}× each while a peer was away (time)`, m('meshbee', 'ms'), 'autobase', m('autobase', 'ms'), ms, 'lower', 0.05)
    const read = m('meshbee', 'read')
    const pairs = cu.writers * cu.keys
    const q = read.median / pairs
    rows.push([`catch-up entries read (changed (writer, key) pairs: ${int(pairs)}; log entries: ${int(pairs * cu.overwrites)})`,
      fmtCell(read, int), 'autobase', fmtCell(m('autobase', 'read'), int) + ' nodes applied', `${ratio(q)} × changed`, '≤ 1.1 × changed',
      Number.isFinite(q) ? (q <= 1.1 ? 'yes' : '**no**') : '—'])
  }

  // ---- scale
  const sc = (w: number, k: string): Cell => cell((s) => s.workload === 'scale-fold' && s.params.writers === w, k)
  if (trials.some((t) => t.spec.workload === 'scale-fold')) {
    const [s16, s64] = p.scale
    const big = sc(s64.writers, 'peakMB')
    rows.push([`fold of ${s64.writers} writers × ${int(s64.perWriter)} ops by a fresh peer: peak RSS (MB)`, fmtCell(big, mb), '—', '—', '—', '< 300 MB',
      Number.isFinite(big.median) ? (big.median < 300 ? 'yes' : '**no**') : '—'])
    const a = sc(s16.writers, 'ms')
    const b = sc(s64.writers, 'ms')
    const opsQ = (s64.writers * s64.perWriter) / (s16.writers * s16.perWriter)
    const q = b.median / a.median
    rows.push([`fold linearity: ${s64.writers} vs ${s16.writers} writers (${ratio(opsQ)}× the ops)`, `${ms(b.median)} vs ${ms(a.median)}`, '—', '—',
      `${ratio(q)}× the time`, `≤ ${ratio(opsQ * 1.25)}× the time`, Number.isFinite(q) ? (q <= opsQ * 1.25 ? 'yes' : '**no**') : '—'])
  }

  // ---- parts (log format 2): large set and document against small ones, and B3.1
  const pc = (k: string): Cell => cell((s) => s.workload === 'parts', k)
  const PT = p.parts
  if (trials.some((t) => t.spec.workload === 'parts')) {
    /** A row of two meshbee cases of the same run: `target` bounds big / small. */
    const pair = (name: string, big: string, anchorName: string, small: string, target?: number): void => {
      const a = pc(big)
      const b = pc(small)
      const q = a.median / b.median
      rows.push([name, fmtCell(a, fine), anchorName, fmtCell(b, fine), `${ratio(q)}× the time`,
        target !== undefined ? `≤ ${target}× the time` : '—', target !== undefined && Number.isFinite(q) ? (q <= target ? 'yes' : '**no**') : '—'])
    }
    pair(`sadd of a new member to a ${int(PT.members)}-member set (median ms per awaited sadd; ${int(PT.ops)} sadds)`, 'saddBigMs', 'meshbee, sadd to an empty set (a new key each time)', 'saddEmptyMs', 1.5)
    pair('〃', 'saddBigMs', `meshbee, sadd to a small set (0–${PT.warmup + PT.ops - 1} members)`, 'saddSmallMs', 1.5)
    pair(`diagnostic: sadd of a new member sorting after all ${int(PT.members)} (its log key next to the last one's)`, 'saddLastMs', 'meshbee, sadd to an empty set', 'saddEmptyMs')
    pair(`one-field patch of a ${int(PT.fields)}-field document (median ms per awaited patch; ${int(PT.ops)} patches)`, 'patchBigMs', `meshbee, one-field patch of a ${PT.smallFields}-field document`, 'patchSmallMs', 1.5)
    const bytes = (k: string): string => int(pc(k).median)
    rows.push([`log bytes appended per sadd, ${int(PT.members)}-member set / empty set / small set (Hypercore block bytes; of which the entry's bee key + value)`,
      `${bytes('saddBigBytes')} / ${bytes('saddEmptyBytes')} / ${bytes('saddSmallBytes')} (${bytes('saddBigEntry')} / ${bytes('saddEmptyEntry')} / ${bytes('saddSmallEntry')})`,
      'meshbee, sadd to an empty set in a fresh log', bytes('freshSaddBytes'), '—', '—', '—'])
    rows.push([`log bytes appended per one-field patch, ${int(PT.fields)}-field / ${PT.smallFields}-field document (block bytes; entry bytes)`,
      `${bytes('patchBigBytes')} / ${bytes('patchSmallBytes')} (${bytes('patchBigEntry')} / ${bytes('patchSmallEntry')})`, '—', '—', '—', '—', '—'])
  }
  const b3 = (s: System, k: string): Cell => cell(of('b3', s), k)
  if (trials.some((t) => t.spec.workload === 'b3')) {
    for (const anchor of ['yjs', 'automerge'] as const) {
      const name = anchor === 'yjs' ? 'Yjs' : 'Automerge'
      row(`B3.1: ${int(p.b3.clients)} writers set one map key; time to apply every update to one replica (merge core)`, b3('meshbee', 'ms'), name, b3(anchor, 'ms'), fine, 'lower')
      row('B3.1: encoded state of the merged replica (bytes)', b3('meshbee', 'docBytes'), name, b3(anchor, 'docBytes'), int, 'lower', undefined, 'smaller', 'larger')
    }
  }

  // ---- header
  out(`### ${r.started.toISOString().slice(0, 10)} — \`${r.command}\` (preset: ${p.preset})`)
  out()
  // The benchmark itself keeps about one core busy: a load well above 1 means other work too.
  const maxLoad = Math.max(...r.load)
  out(`Machine: ${r.machine}. Load average (1 min) before the run ${r.load[0].toFixed(1)}, median before each trial ${median(r.load.slice(1, -1)).toFixed(1)}, ` +
    `max ${maxLoad.toFixed(1)}` + (maxLoad > 2.5 ? ' — other processes were using the CPUs during the run: absolute figures are depressed; ratios within a round are fairer than absolutes.' : '.'))
  out()
  out(`Versions: ${r.versions}.`)
  out()
  out(`Wall time ${r.minutes.toFixed(1)} min. Each figure is the median over rounds (local ${p.local.rounds}, convergence ${[...new Set(p.converge.map((c) => c.rounds))].join('/')}, ` +
    `catch-up ${p.catchup.rounds}, scale folds ${p.scaleRounds}, parts ${p.parts.rounds}, B3.1 ${p.b3.rounds}); within a round the systems alternate (their order rotates) and every trial runs ` +
    'in its own child process. Ratio = meshbee / anchor on the figure shown (ops/s: higher is better; times: lower is better).')
  out()
  out('| measure | meshbee | anchor | anchor value | meshbee / anchor | target | met |')
  out('|---|---:|---|---:|---|---|---|')
  for (const rw of rows) out(`| ${rw.join(' | ')} |`)
  out()

  // ---- details
  if (trials.some((t) => t.spec.workload === 'converge')) {
    out('Convergence details (medians): time from connecting every writer to the creator (a star) until every view is identical; ' +
      'meshbee: db.hash() equal and every writer folded to its length on every peer; autobase: every Hyperbee view at the same version holding every key, contents equal. ' +
      'Reads: meshbee diff entries summed over peers; autobase nodes handed to apply() summed over bases (re-applies after reorders included).')
    out()
    out('| writers × offline puts | meshbee | meshbee folds | meshbee diff entries read | autobase | autobase nodes applied | autobase system length / signed |')
    out('|---|---:|---:|---:|---:|---:|---:|')
    for (const c of p.converge) {
      const n = caseName(c)
      const ab = c.autobase
      out(`| ${c.writers} × ${c.perWriter} | ${fmtCell(conv('meshbee', n), ms)} | ${int(conv('meshbee', n, 'folds').median)} | ${int(conv('meshbee', n, 'diffEntries').median)} | ` +
        `${ab ? fmtCell(conv('autobase', n), ms) : 'not run'} | ${ab ? int(conv('autobase', n, 'applied').median) : ''} | ` +
        `${ab ? `${int(conv('autobase', n, 'systemLength').median)} / ${int(conv('autobase', n, 'signedLength').median)}` : ''} |`)
    }
    out()
  }
  if (trials.some((t) => t.spec.workload === 'catchup')) {
    const m = (s: System, k: string): string => int(cell(of('catchup', s), k).median)
    out(`Catch-up details (medians): ${cu.writers} writers + 1 peer; the peer saw the first ${int(cu.keys)} puts, left; each writer then wrote ${cu.overwrites} batches of ` +
      `${int(cu.keys)} puts over the same keys (${int(cu.writers * cu.keys * cu.overwrites)} log entries) and the writers converged; the clock runs from the peer connecting to the first writer until its view equals theirs.`)
    out()
    out('| system | time | entries read by the returning peer | keys re-merged | folds | blocks fetched before the fold (sparse catch-up) |')
    out('|---|---:|---:|---:|---:|---:|')
    out(`| meshbee | ${fmtCell(cell(of('catchup', 'meshbee'), 'ms'), ms)} | ${m('meshbee', 'read')} (stats().diffEntries) | ${m('meshbee', 'keysMerged')} | ${m('meshbee', 'folds')} | ${m('meshbee', 'sparseBlocks')} of ${int(cu.writers * cu.keys * cu.overwrites)} |`)
    out(`| autobase | ${fmtCell(cell(of('catchup', 'autobase'), 'ms'), ms)} | ${m('autobase', 'read')} (nodes applied) | — | — | — |`)
    out()
  }
  if (trials.some((t) => t.spec.workload.startsWith('scale'))) {
    out('Scale details (medians over fresh-process folds): the logs of W writers sit in one Corestore (one namespace per writer, no replication); ' +
      'a fresh peer opens the database by key and open() folds everything. Peak RSS is the fold process\'s getrusage maxRSS (it includes the Node + tsx baseline, shown as RSS before open).')
    out()
    out('| writers × ops | fold time | ops/s | peak RSS MB | RSS before open MB | log bytes / op | view bytes / op | diff entries | setup (writing the logs) |')
    out('|---|---:|---:|---:|---:|---:|---:|---:|---:|')
    for (const s of p.scale) {
      const f = (k: string): Cell => sc(s.writers, k)
      const setup = trials.find((t) => t.spec.workload === 'scale-setup' && t.spec.params.writers === s.writers)
      const logBytes = setup?.result.metrics.logBytes
      out(`| ${s.writers} × ${int(s.perWriter)} | ${fmtCell(f('ms'), ms)} | ${int(f('opsPerSec').median)} | ${mb(f('peakMB').median)} | ${mb(f('rssBeforeMB').median)} | ` +
        `${logBytes !== undefined ? int(logBytes / (s.writers * s.perWriter)) : '—'} | ${int(f('viewBytesPerOp').median)} | ${int(f('diffEntries').median)} | ${ms(setup?.result.metrics.setupMs ?? NaN)} |`)
    }
    out()
  }

  if (trials.some((t) => t.spec.workload === 'parts')) {
    out(`Parts details (medians over rounds): one fresh database per round; a set of ${int(PT.members)} members (16 B each) and a document of ${int(PT.fields)} fields ` +
      `built untimed with \`db.write\` (${int(PT.batch)} sadds, or one patch of ${int(PT.batch)} fields, per write), then ${PT.warmup} unmeasured and ${int(PT.ops)} measured ` +
      'single awaited writes per case, the cases interleaved write by write (their order rotating with the round). Block bytes: the own core\'s byteLength delta per write ' +
      '(the Hyperbee block: entry plus index path); entry bytes: the bee key + value of that block; log blocks read: Hypercore blocks Hyperbee read per write ' +
      `(\`core.get\` calls, its B-tree path where not in memory), over ${Math.min(PT.ops, 50)} more untimed writes per case.`)
    out()
    out('| case | median ms | mean ms | p95 ms | first write after the build (in this order: empty set, large set, large document) | block bytes / write | entry bytes / write | log blocks read / write |')
    out('|---|---:|---:|---:|---:|---:|---:|---:|')
    const caseRow = (name: string, k: string, first?: string): void => {
      out(`| ${name} | ${fine(pc(k + 'Ms').median)} | ${fine(pc(k + 'Mean').median)} | ${fine(pc(k + 'P95').median)} | ${first !== undefined ? fine(pc(first).median) : '—'} | ` +
        `${int(pc(k + 'Bytes').median)} | ${int(pc(k + 'Entry').median)} | ${pc(k + 'Reads').median.toFixed(2)} |`)
    }
    caseRow(`sadd, ${int(PT.members)}-member set (new member at a random place)`, 'saddBig', 'firstSaddBigMs')
    caseRow('sadd, empty set (a new key each time)', 'saddEmpty', 'firstSaddEmptyMs')
    caseRow(`sadd, small set (0–${PT.warmup + PT.ops - 1} members)`, 'saddSmall')
    caseRow(`sadd, ${int(PT.members)}-member set, new member sorting last`, 'saddLast')
    caseRow(`patch, ${int(PT.fields)}-field document`, 'patchBig', 'firstPatchBigMs')
    caseRow(`patch, ${PT.smallFields}-field document`, 'patchSmall')
    out()
    out(`Build (untimed in the figures above): the set in ${ms(pc('buildSetMs').median)}, the document in ${ms(pc('buildDocMs').median)}. ` +
      `A sadd to an empty set in a fresh log (a second database) appends ${int(pc('freshSaddBytes').median)} block bytes. ` +
      `A Hyperbee lookup in the own log (\`bee.get\`, median of ${int(PT.ops)}) of a random member of the large set takes ${fine(pc('lookupRandomMs').median)}, ` +
      `of a member of the small set ${fine(pc('lookupSmallMs').median)}.`)
    out()
    const per = (k: string): string => trials.filter((t) => t.spec.workload === 'parts' && t.result.metrics[k] !== undefined).map((t) => ratio(t.result.metrics[k])).join(', ')
    out(`Ratios per round: sadd large / empty set ${per('saddRatio')}; large / small set ${per('saddSmallRatio')}; sorting last / empty set ${per('saddLastRatio')}; patch ${per('patchRatio')}.`)
    out()
  }
  if (trials.some((t) => t.spec.workload === 'b3')) {
    out(`B3.1 details (medians over rounds), after crdt-benchmarks' B3.1 "20√N clients concurrently set number in Map" with its N = ${int(p.b3.n)}: ` +
      `${int(p.b3.clients)} writers each set key 'v' of one map to their index; time = applying all ${int(p.b3.clients)} updates to replica 1 (replica 0, the reference, applied them untimed); ` +
      'meshbee is the pure merge core (LWW field registers: decodeField + mergeRegisters; encodeField), no log or view (b3.ts).')
    out()
    out('| system | time | updates, total bytes | encode time | encoded state bytes | parse time |')
    out('|---|---:|---:|---:|---:|---:|')
    for (const [s, name] of [['meshbee', 'meshbee merge core'], ['yjs', 'Yjs'], ['automerge', 'Automerge']] as const) {
      out(`| ${name} | ${fmtCell(b3(s, 'ms'), fine)} | ${int(b3(s, 'updateBytes').median)} | ${fine(b3(s, 'encodeMs').median)} | ${int(b3(s, 'docBytes').median)} | ${fine(b3(s, 'parseMs').median)} |`)
    }
    out()
  }

  // ---- every round
  out('<details><summary>Every round</summary>')
  out()
  out('| trial | round | figures | process wall time |')
  out('|---|---:|---|---:|')
  for (const t of trials) {
    const figs = t.result.timedOut === true ? 'timeout' : t.result.error !== undefined ? `failed: ${t.result.error}` :
      Object.entries(t.result.metrics).map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(1)}`).join(', ')
    if (t.result.error !== undefined && t.result.timedOut !== true) failures.push(`${describe(t.spec)} round ${t.spec.round}: ${t.result.error}`)
    out(`| ${describe(t.spec)} | ${t.spec.round} | ${figs} | ${ms(t.result.wallMs ?? NaN)} |`)
  }
  out()
  out('</details>')
  out()
  if (failures.length > 0) {
    out('Failed trials (excluded from the medians):')
    out()
    for (const f of failures) out(`- ${f}`)
    out()
  }
  out('#### Write-to-visible latency over a hyperdht testnet')
  out()
  out(r.sync ?? 'not run (excluded by --only).')
  if (r.viewstore !== null) {
    out()
    out('#### View-store candidates')
    out()
    // viewstore.ts heads its own output for a standalone run: the section heading above replaces it
    out(r.viewstore.replace(/^## .*\n+/m, ''))
  }
  if (r.underLoad !== null) {
    out()
    out('#### Replication and folds under load')
    out()
    out(r.underLoad)
  }
  if (r.views !== null) {
    out()
    out('#### Watching, indexes and search')
    out()
    out(r.views)
  }
  if (r.privateDbs !== null) {
    out()
    out(r.privateDbs.replace(/^### /m, '#### '))
  }
  return lines.join('\n')
}

function keyOf (s: Spec): string {
  return s.workload === 'converge' ? caseName(s.params) : ''
}

function describe (s: Spec): string {
  switch (s.workload) {
    case 'local': return `local ${s.system}`
    case 'converge': return `converge ${caseName(s.params)} ${s.system}`
    case 'catchup': return `catch-up ${s.params.keys}x${s.params.overwrites} ${s.system}`
    case 'scale-setup': return `scale setup ${s.params.writers}x${s.params.perWriter}`
    case 'scale-fold': return `scale fold ${s.params.writers} writers`
    case 'parts': return 'parts'
    case 'b3': return `B3.1 ${s.system}`
  }
}
