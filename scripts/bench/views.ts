/**
 * Views over the converged state (opt-in: `npm run bench -- --only views`; also on its own):
 *
 *   npx tsx scripts/bench/views.ts [N]        (default N = 100,000)
 *
 * 1. The cost of indexes on writes: puts of small documents (awaited, one at a time) into a
 *    database with two field indexes and one full-text index, against the same puts into one
 *    without (the anchor), alternating, in one process. Target: ≤ 1.3×.
 * 2. A query selecting 1 % of N documents by an indexed field, against a filtered full scan of
 *    the same view (the anchor). Target: ≥ 50× faster.
 * 3. Two-term searches over N short documents, beside minisearch (in memory) on the same corpus;
 *    both build times (meshbee: `defineIndex` over the loaded view).
 * 4. Local write → watch event, p50 (target ≤ 0.5 ms); remote write → watch event against remote
 *    write → visible (`getSync` after 'update') in the same run (target ≤ 1.1×), two databases
 *    replicated in process.
 *
 * Prints markdown on stdout; progress on stderr.
 */
import { performance } from 'node:perf_hooks'
import MiniSearch from 'minisearch'
import { MeshDB } from '../../index.js'
import { connect } from '../link.js'
import { lowerMedian as median, machine, mulberry32, progress as log, quantile as pct, removeTempDirs, tempDir, versions } from './common.js'

type Doc = { title: string, status: string, owner: string, n: number }
type DB = MeshDB<string, Doc>

const N = Number(process.argv[2] ?? 100_000)
const PUTS = 2000
const ROUNDS = 5
const QUERIES = 40

const ms = (x: number): string => x < 1 ? x.toFixed(3) : x < 100 ? x.toFixed(2) : x.toFixed(0)

/** A vocabulary with a Zipf-like draw: some words common, most rare. */
const WORDS = Array.from({ length: 2000 }, (_, i) => 'w' + i.toString(36) + ['milk', 'egg', 'bread', 'note', 'plan', 'trip', 'call', 'fix'][i % 8])
function doc (rnd: () => number, n: number): Doc {
  const len = 3 + Math.floor(rnd() * 6)
  const words: string[] = []
  for (let i = 0; i < len; i++) words.push(WORDS[Math.floor(WORDS.length * rnd() ** 2)] as string)
  return { title: words.join(' '), status: 's' + String(Math.floor(rnd() * 100)).padStart(2, '0'), owner: 'o' + Math.floor(rnd() * 1000), n }
}
const key = (i: number): string => 'doc/' + String(i).padStart(7, '0')

const INDEXED = {
  byStatus: { version: 1, field: 'status' },
  byOwner: { version: 1, field: 'owner' },
  titles: { version: 1, text: ['title'] }
}

async function open (indexed: boolean): Promise<DB> {
  const db = new MeshDB<string, Doc>(await tempDir('views'), { valueEncoding: 'json', ...(indexed ? { indexes: INDEXED } : {}) })
  await db.open()
  return db
}

/**
 * Part 1: per-put latency with and without the indexes: a warm-up round (not counted), then
 * ROUNDS rounds, each running both, which one first alternating from round to round.
 */
async function putCost (): Promise<string> {
  const plain: number[] = []
  const indexed: number[] = []
  for (let round = -1; round < ROUNDS; round++) {
    for (const withIndexes of round % 2 === 0 ? [false, true] : [true, false]) {
      const db = await open(withIndexes)
      const rnd = mulberry32(round + 1)
      const times: number[] = []
      for (let i = 0; i < PUTS; i++) {
        const d = doc(rnd, i)
        const t = performance.now()
        await db.put(key(i), d)
        times.push(performance.now() - t)
      }
      if (round >= 0) (withIndexes ? indexed : plain).push(median(times))
      await db.close()
      log(`put round ${round}: ${withIndexes ? 'indexed' : 'plain'} median ${ms(median(times))} ms`)
    }
  }
  const a = median(plain)
  const b = median(indexed)
  const ratios = indexed.map((x, i) => x / (plain[i] as number))
  const r = median(ratios)
  return `| put of a small document (median per awaited put, ${PUTS} puts a round; median of ${ROUNDS} rounds' ratios, after a warm-up round) with two field indexes and a text index | ${ms(b)} ms | the same puts without indexes ${ms(a)} ms | ${r.toFixed(2)}× (rounds ${ratios.map((x) => x.toFixed(2)).join(', ')}) | ≤ 1.3× | ${r <= 1.3 ? 'yes' : '**no**'} |`
}

/** Parts 2 and 3: a loaded view, queried and searched. */
async function queryAndSearch (): Promise<string[]> {
  const db = await open(false)
  await db.defineIndex('byStatus', INDEXED.byStatus)
  const rnd = mulberry32(7)
  const docs: Array<[string, Doc]> = []
  let t = performance.now()
  for (let i = 0; i < N; i += 1000) {
    const batch = []
    for (let j = i; j < Math.min(N, i + 1000); j++) {
      const d = doc(rnd, j)
      docs.push([key(j), d])
      batch.push({ type: 'put' as const, key: key(j), value: d })
    }
    await db.batch(batch)
  }
  log(`loaded ${N} documents with one field index in ${ms(performance.now() - t)} ms`)

  // 2: 1 % of the documents by status, through the index and by a filtered scan
  const viaIndex: number[] = []
  const viaScan: number[] = []
  let found = 0
  // a warm-up round of each (not counted), then 5, each for another status
  for (let r = -1; r < 5; r++) {
    const status = 's' + String(10 + Math.max(0, r) * 7).padStart(2, '0')
    t = performance.now()
    let a = 0
    for await (const _ of db.query('byStatus', { gte: status, lte: status })) a++
    if (r >= 0) viaIndex.push(performance.now() - t)
    t = performance.now()
    let b = 0
    for await (const [, v] of db.iterator()) if (v.status === status) b++
    if (r >= 0) viaScan.push(performance.now() - t)
    if (a !== b) throw new Error(`query found ${a}, the scan ${b}`)
    found = a
  }
  const q = median(viaIndex)
  const s = median(viaScan)
  const queryRow = `| documents with one status (${found} of ${N}, about 1 %): \`query\` on a field index (median of 5, after a warm-up of each) | ${ms(q)} ms | a filtered full scan (\`iterator\`) of the same view ${ms(s)} ms | ${(s / q).toFixed(0)}× faster | ≥ 50× | ${s / q >= 50 ? 'yes' : '**no**'} |`

  // 3: two-term searches, meshbee's text index (built over the loaded view) and minisearch's
  t = performance.now()
  await db.defineIndex('titles', INDEXED.titles)
  const buildMesh = performance.now() - t
  t = performance.now()
  const mini = new MiniSearch<{ id: string, title: string }>({ fields: ['title'], searchOptions: { combineWith: 'AND', prefix: (_term, i, terms) => i === terms.length - 1 } })
  mini.addAll(docs.map(([id, d]) => ({ id, title: d.title })))
  const buildMini = performance.now() - t
  const qr = mulberry32(11)
  // two words of a random document, the second cut short (typed as far as that): each finds it
  const queries = Array.from({ length: QUERIES }, () => {
    const words = (docs[Math.floor(qr() * docs.length)] as [string, Doc])[1].title.split(' ')
    const [x, y] = [words[0] as string, words[words.length - 1] as string]
    return `${x} ${y.slice(0, Math.max(3, y.length - 2))}`
  })
  const meshTimes: number[] = []
  const miniTimes: number[] = []
  let meshHits = 0
  let miniHits = 0
  for (const query of queries) {
    t = performance.now()
    for await (const _ of db.search('titles', query, { limit: 10 })) meshHits++
    meshTimes.push(performance.now() - t)
    t = performance.now()
    miniHits += mini.search(query).slice(0, 10).length
    miniTimes.push(performance.now() - t)
  }
  await db.close()
  return [queryRow,
    `| two-term search, the last a prefix, top 10 (median of ${QUERIES} queries; ${meshHits} results in all) over ${N} short documents | ${ms(median(meshTimes))} ms (p90 ${ms(pct(meshTimes, 0.9))}) | minisearch 7.2 in memory ${ms(median(miniTimes))} ms (p90 ${ms(pct(miniTimes, 0.9))}; ${miniHits} results) | ${(median(meshTimes) / median(miniTimes)).toFixed(1)}× minisearch's time | report | — |`,
    `| building the text index over the ${N} documents | ${ms(buildMesh)} ms (\`defineIndex\` over the view: persisted, in LevelDB) | minisearch \`addAll\` ${ms(buildMini)} ms (in memory) | ${(buildMesh / buildMini).toFixed(1)}× | report | — |`]
}

/** Part 4: write → watch event, local and remote. */
async function watchLatency (): Promise<string[]> {
  const a = await open(false)
  const local: number[] = []
  const started = new Map<string, number>()
  const seen = new Map<string, number>()
  const w = a.watch({ gte: 'w/', lt: 'w0' })
  const reader = (async () => { for await (const c of w) seen.set(c.key, performance.now()) })()
  const rnd = mulberry32(3)
  for (let i = 0; i < PUTS; i++) {
    const k = 'w/' + i
    started.set(k, performance.now())
    await a.put(k, doc(rnd, i))
    while (!seen.has(k)) await new Promise((resolve) => setImmediate(resolve))
    local.push((seen.get(k) as number) - (started.get(k) as number))
  }
  w.close()
  await reader

  // remote: b watches and polls nothing; visibility is `getSync` at each 'update'
  const b = new MeshDB<string, Doc>(await tempDir('views'), { key: a.key, valueEncoding: 'json' })
  await b.open()
  const cut = connect(a, b)
  const event = new Map<string, number>()
  const visible = new Map<string, number>()
  const pendingKeys = new Set<string>()
  b.on('update', () => {
    const t = performance.now()
    for (const k of pendingKeys) {
      if (b.getSync(k) !== undefined) {
        visible.set(k, t)
        pendingKeys.delete(k)
      }
    }
  })
  const bw = b.watch({ gte: 'r/', lt: 'r0' })
  const breader = (async () => { for await (const c of bw) event.set(c.key, performance.now()) })()
  const toEvent: number[] = []
  const toVisible: number[] = []
  for (let i = 0; i < 300; i++) {
    const k = 'r/' + i
    pendingKeys.add(k)
    const t = performance.now()
    await a.put(k, doc(rnd, i))
    while (!event.has(k) || !visible.has(k)) await new Promise((resolve) => setTimeout(resolve, 0))
    toEvent.push((event.get(k) as number) - t)
    toVisible.push((visible.get(k) as number) - t)
  }
  bw.close()
  await breader
  cut()
  await b.close()
  await a.close()
  const l50 = median(local)
  const e50 = median(toEvent)
  const v50 = median(toVisible)
  return [
    `| local put → watch event (p50, ${PUTS} puts; p99 ${ms(pct(local, 0.99))}) | ${ms(l50)} ms | — | — | ≤ 0.5 ms | ${l50 <= 0.5 ? 'yes' : '**no**'} |`,
    `| remote put → watch event on the other peer (p50, 300 puts, in-process replication) | ${ms(e50)} ms | remote put → visible there (\`getSync\` at 'update') ${ms(v50)} ms | ${(e50 / v50).toFixed(2)}× | ≤ 1.1× | ${e50 / v50 <= 1.1 ? 'yes' : '**no**'} |`
  ]
}

async function main (): Promise<void> {
  const started = Date.now()
  const rows: string[] = []
  try {
    rows.push(await putCost())
    rows.push(...await queryAndSearch())
    rows.push(...await watchLatency())
  } finally {
    await removeTempDirs()
  }
  process.stdout.write([
    `Machine: ${machine()}`,
    `Versions: ${versions()}`,
    `Command: \`npx tsx scripts/bench/views.ts ${N}\` (${((Date.now() - started) / 60_000).toFixed(1)} min)`,
    '',
    '| measure | meshbee | anchor (same run) | ratio | target | met |',
    '|---|---:|---|---|---|---|',
    ...rows
  ].join('\n') + '\n')
}

main().catch((err: unknown) => {
  process.stderr.write(`views bench failed: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
