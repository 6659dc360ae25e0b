/**
 * The multi-process chaos runner: every peer is its own process (scripts/chaos/peer.ts),
 * replicating over local TCP connections, and some of them are SIGKILLed: in the middle of a
 * burst of writes, while they fold what a new link brings in, while idle, and while they recover
 * in open. A killed peer is restarted at once on the same directory.
 *
 * The steps are the seed's (schedule.ts, variant 'procs'), but kills land at real moments,
 * so a replay runs the same steps, not the same interleaving. Clocks are real (`Date.now() +
 * skew`). One-way catch-ups are approximated by a link that is cut once the target holds what
 * the source holds.
 *
 * At the end every peer is brought up and linked, and once all agree each is asked for its view,
 * then closed (it must exit 0: no process may crash but those killed). The parent then opens
 * every directory itself and runs the same final checks as the in-process runner (checks.ts
 * `finalChecks`: views equal to each other and to the reference model, writers() agree, every
 * acknowledged write in its writer's log), plus: each write in flight at a kill is in the log
 * wholly or not at all, in order, and nothing else is.
 *
 * An encrypted schedule: peer 0 creates the database encrypted, every other peer (and every
 * reopen) is handed its key (MESHBEE_CHAOS_ENCRYPTION_KEY, see peer.ts). The views are compared
 * among the live writers only (checks.ts says why), and once the directories are reopened here,
 * linked in this process, each live writer writes once more: no other peer may hold the key of
 * those entries (`finalEntriesCheck`).
 *
 * Compaction (`schedule.compaction`): each process opens with its options; `compact` steps run
 * `db.compact()` in it, and a 'mid-compact' kill lands `delay` ms into one. Since compaction may
 * clear a write's blocks later, each acknowledged write is checked against the entries its
 * process read back when it resolved, and the writes in flight at a kill against the log as the
 * restarted process reads it at once. Once the directories are reopened here, linked, every live
 * writer compacts (`stabilityRound`, checks.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { MeshDB } from '../../index.js'
import { ChaosFailure, agree, checkAckNodes, linkedBy, dump, entriesAt, entriesOf, fail, finalChecks, finalEntriesCheck, holdsAll, inSync, liveIn, matchWrite, stabilityRound, waitFor, type Ack, type Holding } from './checks.js'
import type { MemberModel } from './model.js'
import { connect } from '../link.js'
import { describeStep, replayCommand, seedStore } from './inproc.js'
import { damageView, flipTarget } from './damage.js'
import { compactionOptions, describeSchedule, formatAt, type ChaosOp, type Schedule, type Step } from './schedule.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const CHILD = fileURLToPath(new URL('./peer.ts', import.meta.url))

type Msg = { t: string, [k: string]: unknown }

/** One peer process. */
class Child {
  readonly proc: ChildProcess
  stderr = ''
  exit: { code: number | null, signal: NodeJS.Signals | null } | null = null
  readonly exited: Promise<void>
  killed = false
  ready: Msg | null = null
  /** Ops this process reported as issued, by op number, and whether each was settled (acked or refused). */
  readonly issued = new Map<number, { before: number, done: boolean }>()
  private readonly listeners = new Set<(m: Msg) => void>()
  private pending = ''

  constructor (readonly name: string, dir: string, key: string | undefined, skew: number, sparseAfter: number | undefined, env: Record<string, string> = {}) {
    this.proc = spawn(process.execPath, ['--import', 'tsx', CHILD, dir, key ?? '-', String(skew), name, sparseAfter === undefined ? '-' : String(sparseAfter)], {
      cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env }
    })
    this.proc.stdout?.setEncoding('utf8')
    this.proc.stdout?.on('data', (chunk: string) => {
      this.pending += chunk
      let nl: number
      while ((nl = this.pending.indexOf('\n')) !== -1) {
        const line = this.pending.slice(0, nl)
        this.pending = this.pending.slice(nl + 1)
        if (!line.startsWith('{')) continue
        const m = JSON.parse(line) as Msg
        if (m.t === 'ready') this.ready = m
        if (m.t === 'issue') this.issued.set(m.n as number, { before: m.before as number, done: false })
        if (m.t === 'ack' || m.t === 'refused') {
          const i = this.issued.get(m.n as number)
          if (i !== undefined) i.done = true
        }
        for (const l of [...this.listeners]) l(m)
      }
    })
    this.proc.stderr?.setEncoding('utf8')
    this.proc.stderr?.on('data', (d: string) => { this.stderr = (this.stderr + d).slice(-20_000) })
    this.proc.stdin?.on('error', () => {})
    this.exited = new Promise((resolve) => {
      this.proc.once('exit', (code, signal) => {
        this.exit = { code, signal }
        for (const l of [...this.listeners]) l({ t: 'exit' })
        resolve()
      })
    })
  }

  get running (): boolean { return this.exit === null }

  send (cmd: Record<string, unknown>): void {
    if (this.running) this.proc.stdin?.write(JSON.stringify(cmd) + '\n')
  }

  on (l: (m: Msg) => void): () => void {
    this.listeners.add(l)
    return () => { this.listeners.delete(l) }
  }

  /** The next message matching `pred`; rejects if the process exits first, or after `timeout`. */
  next (pred: (m: Msg) => boolean, what: string, timeout = 60_000): Promise<Msg> {
    return new Promise((resolve, reject) => {
      if (!this.running) {
        reject(new ChaosFailure(`${this.name} is not running (${what}); stderr:\n${this.stderr.slice(-3000)}`))
        return
      }
      const timer = setTimeout(() => { off(); reject(new ChaosFailure(`${this.name}: no ${what} in ${timeout} ms; stderr:\n${this.stderr.slice(-3000)}`)) }, timeout)
      const off = this.on((m) => {
        if (m.t === 'exit') {
          clearTimeout(timer)
          off()
          reject(new ChaosFailure(`${this.name} exited (${String(this.exit?.code)}/${String(this.exit?.signal)}) while waiting for ${what}; stderr:\n${this.stderr.slice(-3000)}`))
        } else if (m.t === 'error') {
          clearTimeout(timer)
          off()
          reject(new ChaosFailure(`${this.name} failed during ${what}: ${m.message as string}`))
        } else if (pred(m)) {
          clearTimeout(timer)
          off()
          resolve(m)
        }
      })
    })
  }

  async request (cmd: Record<string, unknown>, reply: string, timeout?: number): Promise<Msg> {
    const p = this.next((m) => m.t === reply, `${cmd.c as string} -> ${reply}`, timeout)
    this.send(cmd)
    return await p
  }

  async kill (): Promise<void> {
    this.killed = true
    this.proc.kill('SIGKILL')
    await this.exited
  }
}

/** Ops in flight at a kill: the log from `start` to `end` (its length at restart) must hold a prefix of them, each whole. */
interface InFlight { peer: number, writer: string, start: number, end: number, ops: Array<{ op: ChaosOp, target?: string, format: 1 | 2 }> }

export interface ProcsResult {
  seed: number
  ms: number
  acked: number
  rejected: number
  kills: number
  inflight: number
  summary: string
}

export interface ProcsOptions {
  onTrace?: (line: string) => void
  timeout?: number
  keep?: boolean
}

export async function runProcs (schedule: Schedule, opts: ProcsOptions = {}): Promise<ProcsResult> {
  const started = Date.now()
  const seed = schedule.seed
  const timeout = opts.timeout ?? 60_000
  const trace: string[] = []
  const acks: Ack[] = []
  const inflight: InFlight[] = []
  const counts = { acked: 0, rejected: 0, kills: 0, inflight: 0, unchecked: 0 }
  const root = await mkdtemp(join(tmpdir(), `meshbee-chaosp-${seed}-`))
  const skews = [...schedule.skews]
  const dirs = skews.map((_, i) => join(root, `p${i}`))
  const children: Array<Child | null> = skews.map(() => null)
  const writerKeys: string[] = []
  const links = new Set<string>()
  let key: string | undefined
  /** An encrypted schedule: the creator's encryption key (hex), handed to every other peer and reopen. */
  let encryptionKey: string | undefined
  let opNumber = 0
  let failed = false
  /** The step being run: a peer writes the log format of `formatAt` it (schedule.legacyUntil). */
  let stepIndex = 0

  const note = (line: string): void => {
    trace.push(line)
    opts.onTrace?.(line)
  }
  const child = (i: number): Child => {
    const c = children[i]
    if (c == null || !c.running) fail(`p${i} is not running`)
    return c
  }

  /**
   * Starts peer i's process. `damaged`: its view was damaged while it was down, so a rebuild on
   * this open is expected (peer.ts reports it otherwise); the day-ahead peer may be refused with
   * MESHBEE_CLOCK_AHEAD.
   */
  const start = async (i: number, killAfterOpen = -1, damaged = false): Promise<Child> => {
    const env: Record<string, string> = {}
    if (damaged) env.MESHBEE_CHAOS_DAMAGE = '1'
    if (schedule.dayAhead === i) env.MESHBEE_CHAOS_AHEAD = '1'
    if (schedule.compaction !== undefined) env.MESHBEE_CHAOS_COMPACTION = JSON.stringify(compactionOptions(schedule, i))
    // (the format from the start: the open's own fold may append a stability record, which an older release never writes)
    if (formatAt(schedule, i, stepIndex) === 1) env.MESHBEE_CHAOS_FORMAT = '1'
    if (schedule.encrypted === true) {
      if (encryptionKey !== undefined) env.MESHBEE_CHAOS_ENCRYPTION_KEY = encryptionKey
      else if (i === 0) env.MESHBEE_CHAOS_ENCRYPTED = '1'
      else fail(`p${i} starts before the creator made the database`)
    }
    const c = new Child(`p${i}`, dirs[i] as string, key, skews[i] as number, schedule.sparseAfter, env)
    children[i] = c
    if (killAfterOpen >= 0) {
      await c.next((m) => m.t === 'open' || m.t === 'ready', 'open')
      await new Promise<void>((resolve) => setTimeout(resolve, killAfterOpen))
      await c.kill()
      counts.kills++
      return await start(i)
    }
    const ready = await c.next((m) => m.t === 'ready', 'ready', 60_000)
    if (i === 0) key = ready.key as string
    if (schedule.encrypted === true) {
      if (ready.privacy !== 'encrypted' || typeof ready.encryptionKey !== 'string') fail(`p${i} opened ${String(ready.privacy)}, not encrypted`)
      encryptionKey ??= ready.encryptionKey
    }
    writerKeys[i] = ready.writer as string
    return c
  }

  const linkId = (a: number, b: number): string => `${Math.min(a, b)},${Math.max(a, b)}`
  const link = async (a: number, b: number): Promise<boolean> => {
    const id = linkId(a, b)
    const x = children[a]
    const y = children[b]
    if (a === b || links.has(id) || x == null || y == null || !x.running || !y.running) return false
    const [lo, hi] = [Math.min(a, b), Math.max(a, b)]
    await child(lo).request({ c: 'dial', link: id, port: child(hi).ready?.port }, 'dialed')
    links.add(id)
    return true
  }
  const unlink = async (a: number, b: number): Promise<boolean> => {
    const id = linkId(a, b)
    if (!links.has(id)) return false
    links.delete(id)
    const lo = children[Math.min(a, b)]
    if (lo != null && lo.running) await lo.request({ c: 'cut', link: id }, 'cut')
    return true
  }
  const dropLinks = (i: number): void => {
    for (const id of [...links]) if (id.split(',').map(Number).includes(i)) links.delete(id)
  }
  const isolate = async (i: number): Promise<void> => {
    for (const id of [...links]) {
      const [a, b] = id.split(',').map(Number) as [number, number]
      if (a === i || b === i) await unlink(a, b)
    }
  }
  const relink = async (i: number): Promise<void> => {
    for (const [a, b] of schedule.allowed) if (a === i || b === i) await link(a, b)
  }
  const components = (): number[][] => {
    const seen = new Set<number>()
    const out: number[][] = []
    for (let i = 0; i < children.length; i++) {
      if (children[i]?.running !== true || seen.has(i)) continue
      const group: number[] = []
      const stack = [i]
      seen.add(i)
      while (stack.length > 0) {
        const x = stack.pop() as number
        group.push(x)
        for (const id of links) {
          const [a, b] = id.split(',').map(Number) as [number, number]
          const o = a === x ? b : b === x ? a : -1
          if (o >= 0 && !seen.has(o) && children[o]?.running === true) {
            seen.add(o)
            stack.push(o)
          }
        }
      }
      out.push(group)
    }
    return out
  }
  /** Waits until every group of linked peers agrees and has folded everything (re-checked on the children's events). */
  const settle = async (what: string): Promise<void> => {
    for (const group of components()) {
      const deadline = Date.now() + timeout
      let last: Msg[] = []
      while (true) {
        let wake: () => void = () => {}
        const woke = new Promise<void>((resolve) => { wake = resolve })
        const offs = group.map((i) => child(i).on((m) => { if (m.t === 'event' || m.t === 'exit') wake() }))
        try {
          last = await Promise.all(group.map(async (i) => await child(i).request({ c: 'state' }, 'state')))
          for (const [j, s] of last.entries()) {
            if ((s.problems as string[]).length > 0) fail(`p${group[j] as number} logged: ${(s.problems as string[]).join('\n')}`)
          }
          const why = agree(last.map((s) => s.holdings as Holding[]), group.map((i) => 'p' + i), linkedBy(group, [...links].map((id) => id.split(',').map(Number) as [number, number])))
          if (last.every((s) => s.settled === true) && why === null) break
          if (Date.now() > deadline) fail(`${what}: group ${group.map((i) => 'p' + i).join(',')} never synced: settled ${JSON.stringify(last.map((s) => s.settled))}; ${why ?? 'they hold the same'}: ${JSON.stringify(last.map((s) => s.holdings)).slice(0, 3000)}`)
          let timer: NodeJS.Timeout | undefined
          await Promise.race([woke, new Promise<void>((resolve) => { timer = setTimeout(resolve, 100) })])
          clearTimeout(timer)
        } finally {
          for (const off of offs) off()
        }
      }
    }
  }

  /** Sends an op; resolves with the child's ack or refusal for it. */
  const op = async (i: number, o: ChaosOp): Promise<string> => {
    const c = child(i)
    const n = opNumber++
    const target = o.kind === 'add-writer' || o.kind === 'remove-writer' ? writerKeys[o.target] : undefined
    const format = formatAt(schedule, i, stepIndex)
    const p = c.next((m) => (m.t === 'ack' || m.t === 'refused') && m.n === n, `ack of op ${n}`, timeout)
    c.send({ c: 'op', n, op: o, keys: writerKeys, format })
    const m = await p
    if (m.t === 'refused') {
      counts.rejected++
      return `refused ${m.code as string}`
    }
    if (m.folded !== Math.min(m.cut as number, m.after as number)) fail(`read your writes: p${i}'s own log is folded to ${String(m.folded)} of ${String(m.after)} after the write resolved`)
    const ack: Ack = { peer: i, writer: writerKeys[i] as string, before: m.before as number, after: m.after as number, op: o, target, format }
    checkAckNodes(ack, unhex(m.nodes), 0, `p${i}'s op ${n} as acknowledged, log [${ack.before}, ${ack.after})`)
    acks.push(ack)
    counts.acked++
    return `ok [${m.before as number},${m.after as number})${format === 1 ? ' in format 1' : ''}`
  }

  /** Ops sent without waiting (a burst), by op number, so a kill can land among them. */
  let burst: { peer: number, sent: Array<{ n: number, op: ChaosOp, target?: string, format: 1 | 2 }>, acked: Set<number> } | null = null
  const burstProblems: string[] = []

  const kill = async (i: number, s: Extract<Step, { t: 'kill' }>): Promise<string> => {
    const c = children[i]
    if (c == null || !c.running) return 'peer down'
    if (s.when === 'mid-fold') {
      for (const [a, b] of schedule.allowed) if (a === i || b === i) await link(a, b)
      // kill once data starts arriving (a fold is under way), or after a bound if none comes
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, 300)
        const off = c.on((m) => { if (m.t === 'event') done() })
        function done (): void { clearTimeout(timer); off(); resolve() }
      })
    }
    if (s.when === 'mid-compact') {
      // once the compaction has started (or after a bound, if the process is still busy)
      const started = c.next((m) => m.t === 'compacting', 'compacting', 5_000).catch(() => {})
      c.send({ c: 'compact' })
      await started
    }
    await new Promise<void>((resolve) => setTimeout(resolve, s.delay))
    await c.kill()
    counts.kills++
    dropLinks(i)
    // the ops it had issued but not settled: a prefix of them may be in its log, each whole
    const open = [...c.issued.entries()].filter(([, v]) => !v.done).sort((a, b) => a[0] - b[0])
    let flight: InFlight | null = null
    if (open.length > 0) {
      const ops = open.map(([n]) => {
        const sent = burst?.sent.find((x) => x.n === n)
        if (sent === undefined) fail(`p${i}: issued op ${n} is unknown`)
        return { op: sent.op, target: sent.target, format: sent.format }
      })
      flight = { peer: i, writer: writerKeys[i] as string, start: (open[0] as [number, { before: number }])[1].before, end: -1, ops }
      counts.inflight += ops.length
    }
    burst = null
    if (burstProblems.length > 0) fail(burstProblems.join('\n'))
    const again = await start(i, s.when === 'mid-open' ? s.delay : -1)
    const length = again.ready?.length as number
    if (flight !== null) {
      if (length < flight.start) fail(`p${i}'s log shrank across a kill: ${length} < ${flight.start}`)
      flight.end = length
      // checked now, as the restarted process reads its log (compaction may clear it later); what
      // it cannot read now (sealed, or cleared already), at the end
      const start = flight.start === 0 && flight.end > 0 ? 1 : flight.start
      const got = await again.request({ c: 'entries', from: start, to: flight.end }, 'entries')
      if (got.sealed === 0 && got.cleared === 0) fitInFlight(flight, unhex(got.nodes), start)
      else inflight.push(flight)
    }
    return `killed ${s.when}${flight !== null ? `, ${flight.ops.length} in flight, log ${flight.start}->${length}` : ''}`
  }

  const runStep = async (s: Step): Promise<string> => {
    switch (s.t) {
      case 'op': return children[s.peer]?.running === true ? await op(s.peer, s.op) : 'peer down'
      case 'burst': {
        const c = children[s.peer]
        if (c == null || !c.running) return 'peer down'
        const b = { peer: s.peer, sent: [] as Array<{ n: number, op: ChaosOp, target?: string, format: 1 | 2 }>, acked: new Set<number>() }
        burst = b
        c.on((m) => {
          if (!b.sent.some((x) => x.n === m.n)) return
          if (m.t === 'refused') counts.rejected++
          if (m.t !== 'ack') return
          b.acked.add(m.n as number)
          const x = b.sent.find((y) => y.n === m.n) as { op: ChaosOp, target?: string, format: 1 | 2 }
          const ack: Ack = { peer: s.peer, writer: writerKeys[s.peer] as string, before: m.before as number, after: m.after as number, op: x.op, target: x.target, format: x.format }
          try {
            checkAckNodes(ack, unhex(m.nodes), 0, `p${s.peer}'s op ${m.n as number} as acknowledged, log [${ack.before}, ${ack.after})`)
          } catch (err) {
            burstProblems.push((err as Error).message)
          }
          acks.push(ack)
          counts.acked++
          if (m.folded !== Math.min(m.cut as number, m.after as number)) burstProblems.push(`read your writes: p${s.peer}'s own log is folded to ${String(m.folded)} of ${String(m.after)} after a write resolved`)
        })
        const format = formatAt(schedule, s.peer, stepIndex)
        for (const o of s.ops) {
          const n = opNumber++
          const target = o.kind === 'add-writer' || o.kind === 'remove-writer' ? writerKeys[o.target] : undefined
          b.sent.push({ n, op: o, target, format })
          c.send({ c: 'op', n, op: o, keys: writerKeys, format })
        }
        return `${s.ops.length} sent`
      }
      case 'kill': return await kill(s.peer, s)
      case 'compact': {
        const c = children[s.peer]
        if (c == null || !c.running) return 'peer down'
        const r = await c.request({ c: 'compact' }, 'compacted', timeout)
        if (compactionOptions(schedule, s.peer).history === 'full' && (r.blocksCleared as number) > 0) fail(`p${s.peer} keeps full history, yet compact() cleared ${r.blocksCleared as number} blocks`)
        return `compacted: ${r.blocksCleared as number} blocks cleared, ${r.tombstonesCollected as number} tombstones collected, ${r.tombstones as number} held`
      }
      case 'link': return await link(s.a, s.b) ? 'linked' : 'no-op'
      case 'unlink': return await unlink(s.a, s.b) ? 'cut' : 'no-op'
      case 'oneway': {
        // approximated: a link, cut as soon as `to` holds every member log as far as `from` does
        // (`from` may have received some of `to`'s entries by then)
        if (!await link(s.from, s.to)) return 'no-op'
        const deadline = Date.now() + timeout
        while (true) {
          const [a, b] = await Promise.all([child(s.from).request({ c: 'state' }, 'state'), child(s.to).request({ c: 'state' }, 'state')])
          const caught = b.settled === true && holdsAll(a.holdings as Holding[], b.holdings as Holding[])
          if (caught) break
          if (Date.now() > deadline) fail(`one-way p${s.from}->p${s.to} never caught up`)
          await new Promise<void>((resolve) => {
            const timer = setTimeout(done, 100)
            const offs = [child(s.from).on(done), child(s.to).on(done)]
            function done (m?: Msg): void {
              if (m !== undefined && m.t !== 'event' && m.t !== 'exit') return
              clearTimeout(timer)
              for (const off of offs) off()
              resolve()
            }
          })
        }
        await unlink(s.from, s.to)
        return 'caught up'
      }
      case 'restart':
      case 'down': {
        const c = children[s.peer]
        if (c == null || !c.running) return 'peer down'
        await isolate(s.peer)
        const damage = s.t === 'restart' ? s.damage : undefined
        let target: string | null = null
        if (damage === 'flip') {
          const final = await c.request({ c: 'final' }, 'final')
          target = flipTarget((final.view as Array<[string, string]>).map(([, v]) => Buffer.from(v, 'hex').toString()))
        }
        await c.request({ c: 'close' }, 'closed')
        await c.exited
        if (c.exit?.code !== 0) fail(`p${s.peer} exited with ${String(c.exit?.code)} on close; stderr:\n${c.stderr.slice(-3000)}`)
        children[s.peer] = null
        if (s.t === 'down') return 'down'
        if (damage !== undefined) note(`  p${s.peer}'s view damaged: ${await damageView(join(dirs[s.peer] as string, 'view'), damage, target)}`)
        skews[s.peer] = s.skew
        const c2 = await start(s.peer, -1, damage !== undefined)
        if (damage !== undefined) {
          // what open does not check (slots and parts only feed later merges), verify does
          const report = await c2.request({ c: 'verify' }, 'verified')
          if (report.ok !== true) note(`  p${s.peer}'s verify found and repaired: ${(report.problems as string[]).join('; ')}`)
        }
        if (s.relink) await relink(s.peer)
        return 'restarted'
      }
      case 'up': {
        if (children[s.peer]?.running === true) return 'no-op'
        await start(s.peer)
        if (s.relink) await relink(s.peer)
        return 'up'
      }
    }
  }

  try {
    for (let i = 0; i < skews.length; i++) {
      await seedStore(dirs[i] as string, seed, i)
      await start(i)
    }
    for (const m of schedule.initialMembers) await op(0, { kind: 'add-writer', target: m })
    acks.length = 0 // setup, not the schedule
    counts.acked = 0
    for (let i = 1; i < skews.length; i++) await link(0, i)
    await settle('setup')
    for (let i = 1; i < skews.length; i++) await unlink(0, i)
    note(`setup: ${describeSchedule(schedule)}; writers ${writerKeys.map((w, i) => `p${i}=${w.slice(0, 8)}`).join(' ')}`)

    for (let n = 0; n < schedule.steps.length; n++) {
      const s = schedule.steps[n] as Step
      stepIndex = n
      const upgraded = [...Array(schedule.peers).keys()].filter((i) => n > 0 && formatAt(schedule, i, n) !== formatAt(schedule, i, n - 1)).map((i) => `p${i}`)
      let outcome: string
      try {
        outcome = await runStep(s)
        // a burst is followed by its kill: no settling in between
        if (s.t !== 'burst') await settle(`step ${n}`)
      } catch (err) {
        note(`#${n} ${describeStep(s)} -> FAILED`)
        throw err
      }
      note(`#${n} ${upgraded.length > 0 ? `[${upgraded.join(' ')} to format 2] ` : ''}${describeStep(s)} -> ${outcome}`)
    }

    // the final full sync
    for (let i = 0; i < children.length; i++) if (children[i]?.running !== true) await start(i)
    for (const [a, b] of schedule.final) await link(a, b)
    if (components().length !== 1) fail(`the final links ${JSON.stringify(schedule.final)} do not connect every peer`)
    await settle('final sync')
    const finals = await Promise.all(children.map(async (_, i) => await child(i).request({ c: 'final' }, 'final')))
    for (const [i, f] of finals.entries()) {
      if ((f.problems as string[]).length > 0) fail(`p${i} logged: ${(f.problems as string[]).join('\n')}`)
    }
    for (let i = 0; i < children.length; i++) {
      const c = child(i)
      const closed = await c.request({ c: 'close' }, 'closed')
      await c.exited
      if (c.exit?.code !== 0) fail(`p${i} exited with ${String(c.exit?.code)}/${String(c.exit?.signal)} on close; stderr:\n${c.stderr.slice(-3000)}`)
      if ((closed.problems as string[]).length > 0) fail(`p${i} logged: ${(closed.problems as string[]).join('\n')}`)
    }

    // every directory, reopened here: the same view; linked, and synced (a process may have
    // appended a stability record on its timer after the final sync, which the others did not
    // get before they closed); the checks against the logs. Here records come from compact() alone.
    const dbs: Array<MeshDB<string, string>> = []
    const cuts: Array<() => void> = []
    let full: number[] = []
    let cleared = 0
    try {
      for (let i = 0; i < dirs.length; i++) {
        const db = new MeshDB<string, string>(dirs[i] as string, { key, ...(encryptionKey !== undefined ? { encryptionKey: Buffer.from(encryptionKey, 'hex') } : {}), ...compactionOptions(schedule, i), cutsEvery: 0, autoCompact: false })
        await db.open()
        dbs.push(db)
        const view = (await dump(db)).map(([k, v]) => [k.toString('hex'), v.toString('hex')])
        if (JSON.stringify(view) !== JSON.stringify(finals[i]?.view)) fail(`p${i}'s view changed when it reopened`)
      }
      for (const [a, b] of schedule.final) cuts.push(connect(dbs[a] as MeshDB<string, string>, dbs[b] as MeshDB<string, string>))
      const sync = async (): Promise<void> => {
        await waitFor(() => dbs, async () => await inSync(dbs, linkedBy(dbs.map((_, i) => i), schedule.final)), () => 'the reopened peers never synced', timeout)
      }
      await sync()
      const names = dbs.map((_, i) => 'p' + i)
      const history = dbs.map((_, i) => compactionOptions(schedule, i).history)
      const ref = await finalChecks(dbs, names, acks, { history, links: schedule.final })
      full = ref.full
      // the views the processes reported: the same on every peer that reads everything
      const first = finals[ref.source]
      for (const i of full) {
        const f = finals[i] as Msg
        if (JSON.stringify(f.view) !== JSON.stringify(first?.view)) fail(`p${i}'s view differs from p${ref.source}'s: ${JSON.stringify(f.view).slice(0, 600)} vs ${JSON.stringify(first?.view).slice(0, 600)}`)
        if (f.hash !== first?.hash) fail(`p${i}'s view digest differs from p${ref.source}'s`)
      }
      for (const f of inflight) counts.unchecked += await checkInFlight(dbs, f, schedule.encrypted === true ? ref.members : null)
      if (schedule.encrypted === true && full.length > 0) {
        const r = await finalEntriesCheck(dbs, names, full, sync)
        note(r.line)
      }
      note((await stabilityRound(dbs, names, ref, sync, { history, clockAhead: schedule.dayAhead })).line)
      cleared = ref.cleared
    } finally {
      for (const cut of cuts) cut()
      for (const db of dbs) await db.close().catch(() => {})
    }
    note(`final: ${(finals[full[0] ?? 0]?.view as unknown[]).length} keys, ${counts.acked} acked, ${counts.rejected} refused, ${counts.kills} kills, ${counts.inflight} ops in flight at kills` +
      (schedule.encrypted === true ? `; ${full.length} live writer(s) read everything` : '') +
      (cleared > 0 ? `; ${cleared} acknowledged writes cleared everywhere since (checked when acknowledged)` : '') +
      (counts.unchecked > 0 ? `; ${counts.unchecked} kills' writes in flight cleared before they could be read` : ''))
    return { seed, ms: Date.now() - started, ...counts, summary: describeSchedule(schedule) }
  } catch (err) {
    failed = true
    const e = err instanceof Error ? err : new Error(String(err))
    const msg = `chaos schedule failed — replay with: ${replayCommand(schedule)} (kills land at real moments: the same steps, not the same interleaving)\n` +
      `${describeSchedule(schedule)}\n${e.message}\nlast steps:\n  ${trace.slice(-25).join('\n  ')}` +
      (opts.keep === true ? `\ndirectories kept in ${root}` : '')
    const out = e instanceof ChaosFailure ? new ChaosFailure(msg) : new Error(msg)
    out.stack = msg + '\n' + (e.stack ?? '')
    throw out
  } finally {
    for (const c of children) if (c?.running === true) await c.kill()
    if (!(failed && opts.keep === true)) await rm(root, { recursive: true, force: true })
  }
}

/** Nodes sent as hex pairs (peer.ts), as buffers. */
function unhex (nodes: unknown): Array<{ key: Buffer, value: Buffer }> {
  if (!Array.isArray(nodes)) fail('a message without its entries')
  return (nodes as Array<[string, string]>).map(([k, v]) => ({ key: Buffer.from(k, 'hex'), value: Buffer.from(v, 'hex') }))
}

/**
 * At the end, the writes in flight at a kill that the restarted process could not read at once
 * (sealed, or cleared already): the log, as its writer's copy holds it now, is checked as
 * {@link fitInFlight} says, if it can be read whole. Returns 1 if it cannot (compaction cleared
 * some of it), else 0.
 */
async function checkInFlight (dbs: Array<MeshDB<string, string>>, f: InFlight, members: Map<string, MemberModel> | null): Promise<number> {
  const db = dbs[f.peer] as MeshDB<string, string>
  const where = `p${f.peer}: the writes in flight at a kill`
  const start = f.start === 0 && f.end > 0 ? 1 : f.start // a log's first write also appends the header
  // an encrypted database's writer that is no live member may have lost the key of an epoch it
  // made past its cut (its grants there do not count): such entries cannot be matched
  const sealed = members !== null && !liveIn(members, f.writer) ? { count: 0 } : undefined
  const cleared = { count: 0 }
  const nodes = await entriesAt(db, f.writer, start, f.end, where, sealed, cleared)
  if ((sealed?.count ?? 0) > 0) return 0
  if (cleared.count > 0) return 1
  fitInFlight(f, nodes, start)
  return 0
}

/**
 * The log between `start` and `end` holds a prefix of the in-flight ops, each whole, and nothing
 * else (`nodes`: its entries from `start`, key bookkeeping left out). How many entries an op
 * appended is found by trying each count its kind allows (a set remove may append none, a
 * membership change that was a no-op none) until the rest fits.
 */
function fitInFlight (f: InFlight, nodes: Array<{ key: Buffer, value: Buffer }>, start: number): void {
  const where = `p${f.peer}: the writes in flight at a kill`
  const reasons: string[] = []
  const fits = (i: number, at: number): boolean => {
    if (at === nodes.length) return true // the rest never landed (or appended nothing)
    const x = f.ops[i]
    if (x === undefined) {
      reasons.push(`${nodes.length - at} entries at ${start + at} that no write in flight explains`)
      return false
    }
    const [least, most] = entriesOf(x.op, x.format)
    for (let n = Math.min(most, nodes.length - at); n >= least; n--) {
      const why = matchWrite(x.op, nodes.slice(at, at + n), x.format, f.writer, x.target)
      if (why !== null) {
        reasons.push(`${JSON.stringify(x.op).slice(0, 200)} as ${n} entries at ${start + at}: ${why}`)
        continue
      }
      if (fits(i + 1, at + n)) return true
    }
    if (least > nodes.length - at) reasons.push(`${JSON.stringify(x.op).slice(0, 200)} needs ${least} entries, ${nodes.length - at} left at ${start + at}: in the log only in part`)
    return false
  }
  if (!fits(0, 0)) fail(`${where}: the log [${f.start}, ${f.end}) is not a prefix of them, each whole: ${reasons.slice(0, 6).join('; ')}`)
}
