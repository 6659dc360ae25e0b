/**
 * `meshbee join` and `meshbee seed`: stay online on the database's discovery key, replicate, and
 * report what happens (changes as they fold, peers, membership, join requests, catching up) until
 * SIGINT or SIGTERM. A catch-up of a large backlog shows a progress bar on a terminal.
 * `meshbee testnet`: a local DHT to point them at.
 */
import { SingleBar, Presets } from 'cli-progress'
import HyperDHT from 'hyperdht'
import type { Logger } from 'pino'
import type { JoinRequest } from '../sync/swarm.js'
import { AUTO_COMPACT_EVERY } from '../lib/compaction.js'
import { bytes, count, decodeStored, hex, historyOf, show, type DB, type Json, type Output } from './context.js'

export interface OnlineOptions {
  bootstrap?: Array<{ host: string, port: number }>
  /** Add every peer that asks to join (members only). */
  acceptAll?: boolean
  /** Ask connected peers to add this peer when it is not a member. */
  request?: boolean
  /** 'join' or 'seed', for the messages. */
  mode: 'join' | 'seed'
  /** The control socket other commands on this directory run through. */
  socket?: string
  /** Whether stderr is a terminal (the progress bar). */
  tty?: boolean
  /** The database compacts on its own (join --auto-compact): true (the library's interval), or at most every this many ms. */
  autoCompact?: true | number
}

/** Changes of one fold listed one per line on a terminal; more are counted. */
const MAX_LISTED = 100
/** Blocks to fold before a progress bar is worth showing. */
const LARGE_BACKLOG = 500
/** How often the catch-up state is looked at besides on folds (a log can grow without a change to the view). */
const TICK_MS = 250
/** Ticks between looks at what compaction reclaimed (db.stats() measures the disk). */
const RECLAIM_TICKS = 4

/**
 * Blocks of members' logs known here (the signed lengths heard of, up to each member's cut) and
 * arrived: held from the start of the log, or folded (a sparse catch-up folds before the rest of
 * the log has arrived).
 */
function backlog (db: DB): { known: number, arrived: number } {
  let known = 0
  let arrived = 0
  for (const w of db.writers()) {
    if (!w.member) continue
    known += w.cut
    arrived += Math.min(Math.max(w.held, w.folded), w.cut)
  }
  return { known, arrived }
}

async function readValue (db: DB, key: string): Promise<Json | undefined> {
  const raw = await db.get(key, { valueEncoding: 'utf8' }) as unknown as string | undefined
  return raw === undefined ? undefined : decodeStored(raw)
}

/** Resolves on the first SIGINT or SIGTERM. */
function signalled (): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (sig: NodeJS.Signals): void => {
      process.off('SIGINT', on)
      process.off('SIGTERM', on)
      resolve(sig)
    }
    process.on('SIGINT', on)
    process.on('SIGTERM', on)
  })
}

/**
 * Joins the swarm with `db` and prints what happens on `out` (text, or one JSON event per line)
 * until SIGINT or SIGTERM; then leaves. Resolves when it has left.
 */
export async function online (db: DB, out: Output, log: Logger, opts: OnlineOptions): Promise<void> {
  const stop = signalled()
  const dht = opts.bootstrap !== undefined && opts.bootstrap.length > 0
    ? new HyperDHT({ bootstrap: opts.bootstrap, firewalled: false })
    : null
  const tty = !out.json && opts.tty === true
  let bar: SingleBar | null = null
  let barBase = 0
  let failure: unknown = null

  // What changed in a fold: each writer's diff between the lengths folded before and after it.
  let seen = db.cuts()
  let reporting: Promise<void> = Promise.resolve()
  const report = async (): Promise<void> => {
    const now = db.cuts()
    const keys = new Set<string>()
    for (const [writer, to] of now) {
      const from = seen.get(writer) ?? 0
      if (from === to) continue
      for await (const c of db.diff(writer, { from: Math.min(from, to), to: Math.max(from, to) })) keys.add(c.key)
    }
    seen = now
    // a person at a terminal gets a count for a large fold (a catch-up), not thousands of lines
    if (!out.json && process.stdout.isTTY === true && keys.size > MAX_LISTED) {
      await out.write(`${keys.size} keys changed ("meshbee ls" lists them)`)
      keys.clear()
    }
    for (const key of [...keys].sort()) {
      const value = await readValue(db, key)
      await out.write(out.json
        ? JSON.stringify({ event: 'change', key, value: value ?? null, deleted: value === undefined })
        : `change ${key} ${show(value)}`)
    }
    tick()
    checkCaughtUp()
  }
  const onUpdate = (): void => {
    reporting = reporting.then(report).catch((err: { code?: string, message?: string }) => {
      log.error({ err }, 'could not report changes')
      event('error', { code: err.code ?? 'MESHBEE_UNEXPECTED', message: err.message }, `could not report changes: ${err.code ?? ''} ${err.message ?? ''}`)
    })
  }

  const event = (name: string, fields: Record<string, unknown>, text: string): void => {
    out.item({ event: name, ...fields }, () => text)
  }
  const onPeerAdd = (k: Buffer | null): void => {
    connected = true
    event('peer-add', { peer: k === null ? null : hex(k), peers: db.peers }, `peer-add ${k === null ? '?' : hex(k)} (${db.peers} connected)`)
  }
  const onPeerRemove = (k: Buffer | null): void => event('peer-remove', { peer: k === null ? null : hex(k), peers: db.peers }, `peer-remove ${k === null ? '?' : hex(k)} (${db.peers} connected)`)
  const onWriterAdd = (k: Buffer): void => {
    const self = k.equals(db.writerKey)
    // a reader of an encrypted database is a member that never writes
    const reader = db.writers().some((w) => w.key.equals(k) && w.reader)
    event('writer-add', { writer: hex(k), self, reader },
      `writer-add ${hex(k)}${reader ? ' (a reader)' : ''}${self ? (reader ? ' (this peer: now reads the database)' : ' (this peer: now writable)') : ''}`)
  }
  const onWriterRemove = (k: Buffer, cut: number): void => {
    event('writer-remove', { writer: hex(k), cut, self: k.equals(db.writerKey) }, `writer-remove ${hex(k)} at ${cut}`)
  }
  const onJoinRequest = (r: JoinRequest): void => {
    const peer = r.remotePublicKey === null ? null : hex(r.remotePublicKey)
    event('join-request', { writer: hex(r.key), peer }, `join-request ${hex(r.key)}${opts.acceptAll === true ? '' : ` (run: meshbee add-writer ${hex(r.key)}${db.privacy === 'encrypted' ? `, or meshbee add-reader ${hex(r.key)}` : ''})`}`)
    if (opts.acceptAll !== true) return
    db.addWriter(r.key).then(() => {
      event('writer-accepted', { writer: hex(r.key) }, `accepted ${hex(r.key)}`)
    }, (err: { code?: string, message?: string }) => {
      event('error', { code: err.code ?? 'MESHBEE_UNEXPECTED', message: err.message, writer: hex(r.key) }, `could not add ${hex(r.key)}: ${err.code ?? ''} ${err.message ?? ''}`)
    })
  }

  // Caught up: every member folded to the length known for it, once a peer has connected; said
  // again for each new state reached, never twice for the same one.
  let connected = false
  let caughtUp = ''
  const lengths = new Map<string, number>()
  const checkCaughtUp = (): void => {
    // a blind seeder folds no view: it has no state to compare
    if (!connected || db.status !== 'open' || db.privacy === 'blind') return
    const members = db.writers().filter((w) => w.member)
    if (members.some((w) => w.folded < w.cut)) return
    const hash = hex(db.hash())
    const writers = members.map((w) => ({ writer: hex(w.key), length: w.folded }))
    const state = hash + JSON.stringify(writers)
    if (state === caughtUp) return
    caughtUp = state
    const lines = writers.filter((w) => lengths.get(w.writer) !== w.length).map((w) => `caught up ${w.writer} at ${w.length}`)
    for (const w of writers) lengths.set(w.writer, w.length)
    event('caught-up', { hash, writers }, [...lines, `caught up: ${hash}`].join('\n'))
  }

  // Progress of a large catch-up, on a terminal only: blocks of members' logs arrived of those known.
  const tick = (): void => {
    if (!tty || db.status !== 'open') return
    const { known, arrived } = backlog(db)
    if (bar === null) {
      if (known - arrived < LARGE_BACKLOG) return
      barBase = arrived
      bar = new SingleBar({
        format: 'catching up [{bar}] {percentage}% | {value}/{total} blocks arrived',
        hideCursor: true,
        stream: process.stderr
      }, Presets.shades_classic)
      bar.start(known - arrived, 0)
      return
    }
    bar.setTotal(known - barBase)
    bar.update(arrived - barBase)
    if (arrived >= known) {
      bar.stop()
      bar = null
    }
  }
  // A peer opened by key alone learns that the database is encrypted when its first block arrives:
  // from then on it seeds blind. Said once.
  let saidBlind = false
  const checkBlind = (): void => {
    if (saidBlind || db.status !== 'open' || db.privacy !== 'blind') return
    saidBlind = true
    event('blind', { key: hex(db.key) }, 'seeding blind: the database is encrypted; this peer downloads and serves its logs and reads nothing')
  }

  // Space reclaimed, said when the counters move: automatic compaction, tombstones collected as
  // members record how far they folded, a "meshbee compact" run through the control socket.
  const counted = (): { blocks: number, tombstones: number } => {
    const s = db.stats()
    return { blocks: s.blocksCleared, tombstones: s.tombstonesCollected }
  }
  let reclaimed = counted()
  let ticks = 0
  const checkReclaimed = (): void => {
    if (db.status !== 'open') return
    const s = db.stats()
    const blocks = s.blocksCleared - reclaimed.blocks
    const tombstones = s.tombstonesCollected - reclaimed.tombstones
    if (blocks === 0 && tombstones === 0) return
    reclaimed = { blocks: s.blocksCleared, tombstones: s.tombstonesCollected }
    event('compacted', { blocksCleared: blocks, tombstonesCollected: tombstones, tombstones: s.tombstones, disk: s.disk },
      `compacted: ${count(blocks, 'block')} cleared, ${count(tombstones, 'tombstone')} collected (${s.tombstones} held); on disk logs ${bytes(s.disk.logs)}, view ${bytes(s.disk.view)}`)
  }

  // after the changes already being reported, so that "caught up" follows them
  const ticker = setInterval(() => {
    checkBlind()
    tick()
    if (++ticks % RECLAIM_TICKS === 0) checkReclaimed()
    reporting = reporting.then(checkCaughtUp).catch((err) => log.error({ err }, 'could not check the catch-up'))
  }, TICK_MS)

  const listeners: Array<[string, (...args: any[]) => void]> = [['update', onUpdate], ['peer-add', onPeerAdd], ['peer-remove', onPeerRemove],
    ['writer-add', onWriterAdd], ['writer-remove', onWriterRemove], ['join-request', onJoinRequest]]
  for (const [event, fn] of listeners) db.on(event, fn)
  try {
    const history = historyOf(db)
    const auto = opts.autoCompact === undefined ? null : opts.autoCompact === true ? AUTO_COMPACT_EVERY : opts.autoCompact
    const info = { key: hex(db.key), discoveryKey: hex(db.discoveryKey), writerKey: hex(db.writerKey), writable: db.writable, privacy: db.privacy, mode: opts.mode, socket: opts.socket ?? null, history, autoCompact: auto }
    event('joining', info, [
      `${opts.mode === 'seed' ? 'seeding' : 'joining'} ${info.key}`,
      `  discovery key ${info.discoveryKey}`,
      `  writer key    ${info.writerKey}${db.writable ? ' (writable)' : ' (not a member)'}`,
      ...(info.privacy === 'encrypted' ? ['  encrypted: this peer answers its invites while it runs'] : []),
      ...(history === 'full' ? ['  full history: every block of every log is kept'] : []),
      ...(auto === null ? [] : [`  compacts on its own after folds, at most every ${auto / 1000} s`]),
      ...(opts.socket === undefined ? [] : [`  other meshbee commands on this directory run here (${opts.socket})`]),
      '  Ctrl-C to leave'
    ].join('\n'))
    checkBlind()
    // Ctrl-C works while the announce is still under way (it can take long without a network)
    const joining = db.join(dht === null ? {} : { swarm: { dht } })
    let sig = await Promise.race([joining.then(() => null), stop])
    if (sig === null) {
      event('joined', { peers: db.peers }, db.peers === 0 ? 'announced on the DHT; waiting for peers' : `announced on the DHT (${db.peers} connected)`)
      if (opts.request === true && !db.writable) {
        const asked = db.requestJoin()
        event('join-requested', { writer: info.writerKey, asked }, `asking members to add ${info.writerKey} (${asked} peers now, and every peer met later)`)
      }
      sig = await stop
    } else joining.catch(() => {})
    log.debug({ signal: sig }, 'leaving')
  } catch (err) {
    failure = err
  } finally {
    clearInterval(ticker)
    checkReclaimed()
    const b = bar as SingleBar | null
    b?.stop()
    for (const [event, fn] of listeners) db.off(event, fn)
    await reporting
    await db.leave().catch(() => {})
    if (dht !== null) await dht.destroy().catch(() => {})
  }
  if (failure !== null) throw failure
  event('left', { key: hex(db.key) }, 'left')
}

/**
 * `meshbee testnet`: a DHT of `nodes` nodes on 127.0.0.1 (the first on `port`, or any free port),
 * printing the bootstrap `host:port` to pass to `join --bootstrap` and `seed --bootstrap`, until
 * SIGINT or SIGTERM.
 */
export async function testnet (out: Output, opts: { nodes: number, port?: number }): Promise<void> {
  const stop = signalled()
  const { startTestnet } = await import('../lib/testnet.js')
  const net = await startTestnet(opts.nodes, { port: opts.port })
  try {
    const bootstrap = net.bootstrap.map((n) => `${n.host}:${n.port}`)
    out.result({ bootstrap, nodes: opts.nodes }, () => [
      `testnet of ${opts.nodes} DHT nodes on 127.0.0.1`,
      ...bootstrap.map((b) => `bootstrap ${b}`),
      `  meshbee join ${bootstrap.map((b) => `--bootstrap ${b}`).join(' ')}`,
      '  Ctrl-C to stop'
    ].join('\n'))
    await stop
  } finally {
    await net.destroy()
  }
}
