/**
 * Demo of the CRDT core (until the real demo exists): two devices, a and b, edit the same keys
 * while apart, then exchange their log entries in different orders, b receiving some twice.
 * Prints both views; exits 0 iff they are identical.
 */
import { HLC, type Stamp } from '../crdt/hlc.js'
import { type Json } from '../crdt/json.js'
import { EMPTY, merge, render, type KeyState } from '../crdt/keystate.js'
import { tagId, tagsOf } from '../crdt/orset.js'

interface Entry { readonly key: string, readonly stamp: Stamp, readonly state: KeyState }

class Device {
  readonly log: Entry[] = []
  private readonly clock: HLC
  private readonly own = new Map<string, KeyState>()
  private readonly view = new Map<string, KeyState>()
  private wall: number

  constructor (readonly name: string, private readonly writer: Uint8Array, wall: number) {
    this.wall = wall
    this.clock = new HLC({ wallClock: () => this.wall++ })
  }

  put (key: string, value: Json | null): void {
    this.write(key, (v) => ({ ...EMPTY, reg: { ...v, value: value === null ? null : new TextEncoder().encode(JSON.stringify(value)) } }))
  }

  patch (key: string, fields: { [name: string]: Json }): void {
    this.write(key, (v) => ({ ...EMPTY, fields: new Map(Object.entries(fields).map(([name, value]) => [name, { ...v, value: [value] as const }])) }))
  }

  sadd (key: string, member: Json): void {
    this.write(key, (v) => ({ ...EMPTY, adds: new Map([[tagId(v), { tag: v, member }]]) }))
  }

  srem (key: string, member: Json): void {
    const seen = this.get(key)
    this.write(key, () => ({ ...EMPTY, removed: new Map(tagsOf(seen.adds, seen.removed, member).map((t) => [tagId(t), t])) }))
  }

  receive (entries: Entry[]): void {
    for (const e of entries) {
      this.clock.observe(e.stamp)
      this.view.set(e.key, merge(this.get(e.key), e.state))
    }
  }

  rendering (): string {
    return [...this.view.keys()].sort().map((key) => {
      const bytes = render(this.get(key))
      return `  ${key.padEnd(8)} ${bytes === null ? '(absent)' : new TextDecoder().decode(bytes)}`
    }).join('\n')
  }

  /** Each entry carries the device's whole contribution to the key, not just this operation. */
  private write (key: string, delta: (v: { stamp: Stamp, writer: Uint8Array }) => KeyState): void {
    const stamp = this.clock.now()
    const own = merge(this.own.get(key) ?? EMPTY, delta({ stamp, writer: this.writer }))
    this.own.set(key, own)
    this.view.set(key, merge(this.get(key), own))
    this.log.push({ key, stamp, state: own })
  }

  private get (key: string): KeyState {
    return this.view.get(key) ?? EMPTY
  }
}

// b's wall clock runs 5 ms behind a's.
const a = new Device('a', new Uint8Array(32).fill(0xaa), 1_000_000)
const b = new Device('b', new Uint8Array(32).fill(0xbb), 999_995)

// Together: a creates a profile and a tag set; b gets them.
a.put('profile', { name: 'Ada', city: 'London' })
a.sadd('tags', 'math')
b.receive(a.log)
const shared = a.log.length

// Apart: concurrent edits of the same keys.
a.patch('profile', { city: 'Paris' })
b.patch('profile', { city: 'Berlin', email: 'ada@example.org' })
b.srem('tags', 'math') // removes the tag b has seen...
a.sadd('tags', 'math') // ...while a adds it again: the unseen add wins
a.sadd('tags', 'crdt')
a.put('status', 'draft')
b.put('status', 'final')
b.put('note', 'remember the milk')
b.put('note', null)

// Together again, in different orders: a gets b's entries newest first, b gets a's twice.
a.receive([...b.log].reverse())
b.receive([...a.log.slice(shared), ...a.log])

for (const d of [a, b]) console.log(`${d.name}:\n${d.rendering()}`)
const converged = a.rendering() === b.rendering()
console.log(converged ? 'converged' : 'DIVERGED')
process.exitCode = converged ? 0 : 1
