/**
 * The control socket of a running peer. `meshbee join` and `meshbee seed` listen on a Unix domain
 * socket of their database directory; every other command on that directory connects first and,
 * when the peer answers, runs inside it against its open database, with the client's working
 * directory, output and (when the command reads it) stdin. One request per connection, JSON lines:
 *
 *   client → peer  {"v":1,"argv":[…],"cwd":"/abs"}, then when asked {"stdin":"<base64>"}… {"stdin":null}
 *   peer → client  {"out":"…"} {"err":"…"} {"stdin":true} … and last {"exit":<code>}
 *
 * The socket is `<dir>/meshbee.sock`, mode 0600. When that path is too long for a Unix socket, it
 * is `<tmpdir>/meshbee-<uid>/<hash of the directory's real path>.sock`, in a directory only this
 * user can enter. A socket left by a peer that died is removed by the next peer that binds; a
 * client finding nobody there opens the database itself.
 */
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { lstatSync, mkdirSync, realpathSync, unlinkSync, type Stats } from 'node:fs'
import { createConnection, createServer, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { isAbsolute, join } from 'node:path'
import { PassThrough, Writable } from 'node:stream'
import { finished } from 'node:stream/promises'
import { StringDecoder } from 'node:string_decoder'
import { CliError, busy, type Io } from './context.js'

/** sun_path holds 108 bytes on Linux and 104 on macOS, the terminating NUL included. */
const MAX_SOCKET_PATH = 103
const MAX_LINE = 1 << 20
/** How long a peer that leaves waits for the commands it is running. */
const DRAIN_MS = 5000

/** A command sent to a running peer: its arguments (after `meshbee`) and the client's working directory. */
export interface Request { argv: string[], cwd: string }

type Message = Record<string, unknown>
const isMessage = (m: unknown): m is Message => m !== null && typeof m === 'object' && !Array.isArray(m)
const errno = (err: unknown): unknown => (err as NodeJS.ErrnoException | null)?.code
const send = (socket: Socket, m: Message, cb?: (err?: Error | null) => void): void => {
  if (socket.writable) socket.write(JSON.stringify(m) + '\n', cb)
  else cb?.(new Error('the connection is closed'))
}

/** lstat of `path` (null if absent), refused unless it is this user's and `ok` holds. */
function checked (path: string, ok: (st: Stats) => boolean, what: string): Stats | null {
  let st: Stats
  try {
    st = lstatSync(path)
  } catch (err) {
    if (errno(err) === 'ENOENT') return null
    throw err
  }
  const uid = process.getuid?.()
  if ((uid !== undefined && st.uid !== uid) || !ok(st)) throw new CliError('MESHBEE_UNSAFE_SOCKET', `${path} is not ${what} of this user: remove it`)
  return st
}

/**
 * The control socket of the database in `dir` (an absolute path): `<dir>/meshbee.sock`, or the
 * fallback under os.tmpdir() when that path is too long (null when its directory is absent and
 * not `create`d).
 */
export function socketPath (dir: string, create = false): string | null {
  const local = join(dir, 'meshbee.sock')
  if (Buffer.byteLength(local) <= MAX_SOCKET_PATH) return local
  const tmp = join(tmpdir(), `meshbee-${process.getuid?.() ?? 'user'}`)
  if (create) mkdirSync(tmp, { recursive: true, mode: 0o700 })
  if (checked(tmp, (st) => st.isDirectory() && (st.mode & 0o077) === 0, 'a private directory') === null) return null
  let real = dir
  try {
    real = realpathSync(dir)
  } catch {}
  return join(tmp, `${createHash('sha256').update(real).digest('hex').slice(0, 32)}.sock`)
}

/** Calls `onMessage` with each JSON line that arrives; `onBad` once for a line that is not JSON or too long. */
function readLines (socket: Socket, onMessage: (m: unknown) => void, onBad: () => void): void {
  const decoder = new StringDecoder('utf8')
  let buffer = ''
  const bad = (): void => {
    socket.off('data', onData)
    onBad()
  }
  const onData = (chunk: Buffer): void => {
    buffer += decoder.write(chunk)
    for (let i = buffer.indexOf('\n'); i !== -1; i = buffer.indexOf('\n')) {
      const line = buffer.slice(0, i)
      buffer = buffer.slice(i + 1)
      let m: unknown
      try {
        m = JSON.parse(line)
      } catch {
        return bad()
      }
      onMessage(m)
    }
    if (buffer.length > MAX_LINE) bad()
  }
  socket.on('data', onData)
}

/** Removes the socket file at `path` if it is still the one `st` describes. */
function removeIfSame (path: string, st: Stats): void {
  try {
    const now = lstatSync(path)
    if (now.ino === st.ino && now.dev === st.dev) unlinkSync(path)
  } catch {}
}

/**
 * A connection to the peer listening on `path`, or null. With `removeStale` (a peer about to bind
 * there), a socket nobody listens on (its peer died) is removed; clients leave it alone, so that a
 * client can never remove the socket of a peer that has just bound the same path.
 */
async function connect (path: string, removeStale = false): Promise<Socket | null> {
  const st = checked(path, (s) => s.isSocket(), 'a socket')
  if (st === null) return null
  const socket = createConnection(path)
  try {
    await once(socket, 'connect')
    return socket
  } catch (err) {
    socket.destroy()
    if (removeStale && errno(err) === 'ECONNREFUSED') removeIfSame(path, st)
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
 * Runs a command in the peer listening for the database in `dir` (an absolute path), its output
 * going to `io` and stdin sent when the command asks for it. Resolves to the command's exit code,
 * or null when no peer listens there.
 */
export async function forward (dir: string, argv: string[], io: Io): Promise<number | null> {
  const path = socketPath(dir)
  const socket = path === null ? null : await connect(path)
  if (socket === null) return null
  return await new Promise<number>((resolve, reject) => {
    let exit: number | null = null
    readLines(socket, (m) => {
      if (!isMessage(m)) return
      if (typeof m.out === 'string') {
        // one wait for drain however many lines of the chunk found the pipe full
        if (!io.stdout.write(m.out) && !socket.isPaused()) {
          socket.pause()
          io.stdout.once('drain', () => socket.resume())
        }
      } else if (typeof m.err === 'string') io.stderr.write(m.err)
      else if (m.stdin === true) {
        const input = io.stdin()
        input.on('data', (c: Buffer | string) => {
          send(socket, { stdin: Buffer.from(c).toString('base64') })
          if (socket.writableNeedDrain) {
            input.pause()
            socket.once('drain', () => input.resume())
          }
        })
        input.on('end', () => send(socket, { stdin: null }))
      } else if (typeof m.exit === 'number' && Number.isInteger(m.exit) && m.exit >= 0 && m.exit < 256) {
        exit = m.exit
        socket.end()
      }
    }, () => socket.destroy())
    // a reader of our stdout that went away (`| head`) ends the command
    const outputClosed = (): void => {
      socket.destroy()
      reject(new CliError('MESHBEE_OUTPUT_CLOSED', 'the output was closed'))
    }
    io.stdout.once('error', outputClosed)
    socket.on('error', () => {})
    socket.on('close', () => {
      io.stdout.off('error', outputClosed)
      if (exit !== null) resolve(exit)
      else reject(new CliError('MESHBEE_PEER_GONE', `the peer running on ${dir} closed the connection before the command finished`))
    })
    send(socket, { v: 1, argv, cwd: io.cwd })
  })
}

function request (m: unknown): Request | null {
  if (!isMessage(m) || m.v !== 1 || typeof m.cwd !== 'string' || !isAbsolute(m.cwd) || m.cwd.includes('\0')) return null
  const argv = m.argv
  if (!Array.isArray(argv) || argv.length > 256 || !argv.every((a): a is string => typeof a === 'string')) return null
  return { argv, cwd: m.cwd }
}

/** Runs one connection: its request through `run`, with the client's io. */
function session (socket: Socket, run: (req: Request, io: Io) => Promise<number>): Promise<void> {
  return new Promise((resolve) => {
    let input: PassThrough | null = null
    let started = false
    let serving = false
    const stdin = (): PassThrough => {
      if (input === null) send(socket, { stdin: true })
      return (input ??= new PassThrough())
    }
    const serve = async (req: Request): Promise<void> => {
      const stream = (name: 'out' | 'err'): Writable => new Writable({
        decodeStrings: false,
        write (chunk: string | Buffer, _enc, cb) { send(socket, { [name]: String(chunk) }, cb) }
      }).on('error', () => {})
      const [stdout, stderr] = [stream('out'), stream('err')]
      const code = await run(req, { stdout, stderr, stdin, cwd: req.cwd, tty: false }).catch(() => 1)
      stdout.end()
      stderr.end()
      await Promise.all([finished(stdout), finished(stderr)]).catch(() => {})
      send(socket, { exit: code })
      socket.end()
    }
    readLines(socket, (m) => {
      const i = input as PassThrough | null
      if (!started) {
        started = true
        const req = request(m)
        serving = req !== null
        if (req !== null) void serve(req).finally(resolve)
        else {
          // a client of this version never sends one: say why (too many arguments) and close
          send(socket, { err: 'meshbee: MESHBEE_USAGE: the running peer takes a command of at most 256 arguments\n' })
          send(socket, { exit: 2 }, () => socket.end())
        }
      } else if (isMessage(m) && i !== null && typeof m.stdin === 'string') {
        if (!i.write(Buffer.from(m.stdin, 'base64')) && !socket.isPaused()) {
          socket.pause()
          i.once('drain', () => socket.resume())
        }
      } else if (isMessage(m) && i !== null && m.stdin === null) i.end()
      else socket.destroy()
    }, () => socket.destroy())
    socket.on('error', () => {})
    socket.on('close', () => {
      const i = input as PassThrough | null
      if (i !== null && !i.writableEnded) i.destroy(new CliError('MESHBEE_PEER_GONE', 'the client went away before its stdin ended'))
      if (!serving) resolve()
    })
  })
}

async function bind (server: Server, path: string, dir: string): Promise<Stats> {
  // a stale socket is removed; a live one means another peer runs on the database
  const live = await connect(path, true)
  live?.destroy()
  if (live !== null) throw busy(dir)
  // umask, not a chmod after listen: the socket never exists with wider permissions
  const umask = process.umask(0o177)
  try {
    server.listen(path)
  } finally {
    process.umask(umask)
  }
  await once(server, 'listening')
  const st = lstatSync(path)
  if ((st.mode & 0o777) !== 0o600) {
    server.close()
    removeIfSame(path, st)
    throw new CliError('MESHBEE_UNSAFE_SOCKET', `${path} was created with mode ${(st.mode & 0o777).toString(8)}, not 600`)
  }
  return st
}

/** A running peer's control socket. */
export interface ControlServer {
  /** Where it listens. */
  readonly path: string
  /** Stops listening, removes the socket and waits (a few seconds at most) for the commands running. */
  close: () => Promise<void>
}

/**
 * Listens on the control socket of the database in `dir` (an absolute path). Each request runs
 * through `run` with the client's io; `run` resolves to the exit code sent back.
 */
export async function listen (dir: string, run: (req: Request, io: Io) => Promise<number>): Promise<ControlServer> {
  const path = socketPath(dir, true) as string
  const sockets = new Set<Socket>()
  const running = new Set<Promise<void>>()
  const server = createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    const p = session(socket, run).finally(() => running.delete(p))
    running.add(p)
  })
  const st = await bind(server, path, dir)
  const cleanup = (): void => { removeIfSame(path, st) }
  process.once('exit', cleanup)
  return {
    path,
    close: async () => {
      process.off('exit', cleanup)
      server.close()
      cleanup()
      let timer: NodeJS.Timeout | undefined
      await Promise.race([Promise.allSettled(running), new Promise((resolve) => { timer = setTimeout(resolve, DRAIN_MS) })])
      clearTimeout(timer)
      for (const s of sockets) s.destroy()
    }
  }
}
