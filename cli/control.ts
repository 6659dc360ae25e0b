/**
 * The control socket of a running peer. `meshbee join` and `meshbee seed` listen on a Unix domain
 * socket of their database directory; every other command on that directory connects first and,
 * when the peer answers, runs inside it against its open database, with the client's working
 * directory, output and (on request) stdin. One request per connection, as JSON lines:
 *
 *   client → peer  {"v":1,"argv":[…],"cwd":"/abs"}, then when asked {"stdin":"<base64>"}… {"stdin":null}
 *   peer → client  {"out":"…"} {"err":"…"} {"stdin":true} … and last {"exit":<code>}
 *
 * The socket is `<dir>/meshbee.sock`, mode 0600. When that path is too long for a Unix socket, it
 * is `<tmpdir>/meshbee-<uid>/<hash of the directory>.sock` in a directory only this user can
 * enter, and `<dir>/meshbee.sock.path` names it.
 */
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { lstatSync, mkdirSync, realpathSync, unlinkSync, writeFileSync, type Stats } from 'node:fs'
import { createConnection, createServer, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { isAbsolute, join } from 'node:path'
import { PassThrough, Writable } from 'node:stream'
import { finished } from 'node:stream/promises'
import { StringDecoder } from 'node:string_decoder'
import { CliError, busy, type Io } from './context.js'

const SOCKET = 'meshbee.sock'
const POINTER = 'meshbee.sock.path'
/** sun_path holds 108 bytes on Linux and 104 on macOS, the terminating NUL included. */
const MAX_SOCKET_PATH = 103
const MAX_LINE = 1 << 20
const MAX_ARGS = 256
/** How long a peer that leaves waits for the commands it is running. */
const DRAIN_MS = 5000

/** A command sent to a running peer: its arguments (after `meshbee`) and the client's working directory. */
export interface Request { argv: string[], cwd: string }

type Message = Record<string, unknown>

const isMessage = (m: unknown): m is Message => m !== null && typeof m === 'object' && !Array.isArray(m)
const errno = (err: unknown): unknown => (err as NodeJS.ErrnoException | null)?.code
const unsafe = (what: string): CliError => new CliError('MESHBEE_UNSAFE_SOCKET', `${what}: remove it, or fix its owner and mode`)

function ownedByMe (st: Stats): boolean {
  const uid = process.getuid?.()
  return uid === undefined || st.uid === uid
}

/** `<tmpdir>/meshbee-<uid>`, private to this user (created when `create`); null if absent. */
function privateDir (create: boolean): string | null {
  const dir = join(tmpdir(), `meshbee-${process.getuid?.() ?? 'user'}`)
  if (create) mkdirSync(dir, { recursive: true, mode: 0o700 })
  let st: Stats
  try {
    st = lstatSync(dir)
  } catch (err) {
    if (errno(err) === 'ENOENT') return null
    throw err
  }
  if (!st.isDirectory() || !ownedByMe(st) || (st.mode & 0o077) !== 0) throw unsafe(`${dir} is not a directory private to this user`)
  return dir
}

/**
 * The control socket of the database in `dir` (an absolute path): `<dir>/meshbee.sock`, or the
 * fallback under os.tmpdir() when that path is too long (null if its directory does not exist
 * and `create` is false).
 */
export function socketPath (dir: string, create = false): string | null {
  const local = join(dir, SOCKET)
  if (Buffer.byteLength(local) <= MAX_SOCKET_PATH) return local
  let real = dir
  try {
    real = realpathSync(dir)
  } catch {}
  const tmp = privateDir(create)
  return tmp === null ? null : join(tmp, `${createHash('sha256').update(real).digest('hex').slice(0, 32)}.sock`)
}

/** Calls `onMessage` with each JSON line that arrives; `onBad` once for a line that is not JSON or too long. */
function readLines (socket: Socket, onMessage: (m: unknown) => void, onBad: () => void): void {
  const decoder = new StringDecoder('utf8')
  let buffer = ''
  let bad = false
  socket.on('data', (chunk: Buffer) => {
    buffer += decoder.write(chunk)
    let i: number
    while (!bad && (i = buffer.indexOf('\n')) !== -1) {
      const line = buffer.slice(0, i)
      buffer = buffer.slice(i + 1)
      let m: unknown
      try {
        m = JSON.parse(line)
      } catch {
        bad = true
        break
      }
      onMessage(m)
    }
    if (buffer.length > MAX_LINE) bad = true
    if (bad) {
      socket.removeAllListeners('data')
      onBad()
    }
  })
}

const send = (socket: Socket, m: Message, cb?: (err?: Error | null) => void): void => {
  if (socket.writable) socket.write(JSON.stringify(m) + '\n', cb)
  else cb?.(new Error('the client has gone'))
}

/** An existing socket file at `path` (checked to be this user's socket), or null. */
function existing (path: string): Stats | null {
  let st: Stats
  try {
    st = lstatSync(path)
  } catch (err) {
    if (errno(err) === 'ENOENT') return null
    throw err
  }
  if (!st.isSocket() || !ownedByMe(st)) throw unsafe(`${path} is not a socket of this user`)
  return st
}

/** Removes the socket file at `path` if it is still the one `st` describes. */
function removeIfSame (path: string, st: Stats): void {
  try {
    const now = lstatSync(path)
    if (now.ino === st.ino && now.dev === st.dev) unlinkSync(path)
  } catch {}
}

async function connect (path: string): Promise<Socket | null> {
  const st = existing(path)
  if (st === null) return null
  const socket = createConnection(path)
  try {
    await once(socket, 'connect')
    return socket
  } catch (err) {
    socket.destroy()
    // a socket file nobody listens on is left by a peer that died: remove it
    if (errno(err) === 'ECONNREFUSED') removeIfSame(path, st)
    if (errno(err) === 'ECONNREFUSED' || errno(err) === 'ENOENT') return null
    throw err
  }
}

/** Whether a peer is listening for the database in `dir` (an absolute path). */
export async function answers (dir: string): Promise<boolean> {
  const path = socketPath(dir)
  const socket = path === null ? null : await connect(path)
  socket?.destroy()
  return socket !== null
}

/**
 * Runs a command in the peer listening for the database in `dir` (an absolute path), with the
 * output going to `io` and stdin sent when the command asks for it. Resolves to the command's
 * exit code, or null when no peer listens there.
 */
export async function forward (dir: string, argv: string[], io: Io): Promise<number | null> {
  const path = socketPath(dir)
  const socket = path === null ? null : await connect(path)
  if (socket === null) return null
  return await new Promise<number>((resolve, reject) => {
    let exit: number | null = null
    const sendStdin = (): void => {
      const input = io.stdin()
      input.on('data', (c: Buffer | string) => {
        send(socket, { stdin: Buffer.from(c).toString('base64') })
        if (socket.writableNeedDrain) {
          input.pause()
          socket.once('drain', () => input.resume())
        }
      })
      input.on('end', () => send(socket, { stdin: null }))
    }
    readLines(socket, (m) => {
      if (!isMessage(m)) return
      if (typeof m.out === 'string') {
        if (!io.stdout.write(m.out)) {
          socket.pause()
          io.stdout.once('drain', () => socket.resume())
        }
      } else if (typeof m.err === 'string') io.stderr.write(m.err)
      else if (m.stdin === true) sendStdin()
      else if (typeof m.exit === 'number' && Number.isInteger(m.exit) && m.exit >= 0 && m.exit < 256) {
        exit = m.exit
        socket.end()
      }
    }, () => socket.destroy())
    socket.on('error', () => {})
    socket.on('close', () => {
      if (exit !== null) resolve(exit)
      else reject(new CliError('MESHBEE_PEER_GONE', `the peer running on ${dir} closed the connection before the command finished`))
    })
    send(socket, { v: 1, argv, cwd: io.cwd })
  })
}

function request (m: unknown): Request | null {
  if (!isMessage(m) || m.v !== 1 || typeof m.cwd !== 'string' || !isAbsolute(m.cwd) || m.cwd.includes('\0')) return null
  const argv = m.argv
  if (!Array.isArray(argv) || argv.length > MAX_ARGS || !argv.every((a): a is string => typeof a === 'string')) return null
  return { argv, cwd: m.cwd }
}

/** A running peer's control socket. */
export interface ControlServer {
  /** Where it listens. */
  readonly path: string
  /** Stops listening, removes the socket and waits (a few seconds at most) for running commands. */
  close: () => Promise<void>
}

async function bind (server: Server, path: string, dir: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    // umask, not a chmod after listen: the socket never exists with wider permissions
    const umask = process.umask(0o177)
    try {
      server.listen(path)
    } finally {
      process.umask(umask)
    }
    try {
      await once(server, 'listening')
      return
    } catch (err) {
      if (errno(err) !== 'EADDRINUSE' || attempt > 0) throw err
      // connect() removes a stale socket; a live one means another peer runs on the database
      const live = await connect(path)
      live?.destroy()
      if (live !== null) throw busy(dir)
    }
  }
}

/**
 * Listens on the control socket of the database in `dir` (an absolute path). Each request runs
 * through `run` with the client's io; `run` resolves to the exit code sent back.
 */
export async function listen (dir: string, run: (req: Request, io: Io) => Promise<number>): Promise<ControlServer> {
  const path = socketPath(dir, true) as string
  const sockets = new Set<Socket>()
  const running = new Set<Promise<void>>()

  const serve = async (socket: Socket, req: Request, stdin: () => PassThrough): Promise<void> => {
    const stream = (name: 'out' | 'err'): Writable => new Writable({
      decodeStrings: false,
      write (chunk: string | Buffer, _enc, cb) { send(socket, { [name]: String(chunk) }, cb) }
    }).on('error', () => {})
    const stdout = stream('out')
    const stderr = stream('err')
    const code = await run(req, { stdout, stderr, stdin, cwd: req.cwd, tty: false }).catch(() => 1)
    stdout.end()
    stderr.end()
    await Promise.all([finished(stdout), finished(stderr)]).catch(() => {})
    send(socket, { exit: code })
    socket.end()
  }

  const server = createServer((socket) => {
    sockets.add(socket)
    socket.on('error', () => {})
    let input: PassThrough | null = null
    const stdin = (): PassThrough => {
      if (input === null) {
        input = new PassThrough()
        send(socket, { stdin: true })
      }
      return input
    }
    let started = false
    readLines(socket, (m) => {
      if (!started) {
        started = true
        const req = request(m)
        if (req === null) {
          send(socket, { err: 'meshbee: MESHBEE_BAD_REQUEST: not a meshbee command request\n' })
          send(socket, { exit: 2 })
          socket.end()
          return
        }
        const p = serve(socket, req, stdin).finally(() => running.delete(p))
        running.add(p)
      } else if (isMessage(m) && input !== null && typeof m.stdin === 'string') {
        const i: PassThrough = input
        if (!i.write(Buffer.from(m.stdin, 'base64'))) {
          socket.pause()
          i.once('drain', () => socket.resume())
        }
      } else if (isMessage(m) && input !== null && m.stdin === null) input.end()
      else socket.destroy()
    }, () => socket.destroy())
    socket.on('close', () => {
      sockets.delete(socket)
      const i = input as PassThrough | null
      if (i !== null && !i.writableEnded) i.destroy(new CliError('MESHBEE_PEER_GONE', 'the client went away before its stdin ended'))
    })
  })

  await bind(server, path, dir)
  const st = lstatSync(path)
  if ((st.mode & 0o777) !== 0o600) {
    server.close()
    removeIfSame(path, st)
    throw unsafe(`${path} was created with mode ${(st.mode & 0o777).toString(8)}, not 600`)
  }
  const pointer = path === join(dir, SOCKET) ? null : join(dir, POINTER)
  if (pointer !== null) writeFileSync(pointer, path + '\n')
  const cleanup = (): void => {
    removeIfSame(path, st)
    if (pointer !== null) {
      try {
        unlinkSync(pointer)
      } catch {}
    }
  }
  process.once('exit', cleanup)

  return {
    path,
    close: async () => {
      process.off('exit', cleanup)
      server.close()
      cleanup()
      let timer: NodeJS.Timeout | undefined
      await Promise.race([
        Promise.allSettled(running),
        new Promise((resolve) => { timer = setTimeout(resolve, DRAIN_MS) })
      ])
      clearTimeout(timer)
      for (const s of sockets) s.destroy()
    }
  }
}
