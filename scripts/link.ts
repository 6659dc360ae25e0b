/**
 * In-process replication links, shared by the tests, the chaos harness and the benchmarks.
 */
import type { Duplex } from 'node:stream'

/** Pipes two replication streams together (initiator first). Returns a function that cuts the link. */
export function pipe (s1: Duplex, s2: Duplex): () => void {
  s1.pipe(s2).pipe(s1)
  const noop = (): void => {}
  s1.on('error', noop)
  s2.on('error', noop)
  return () => {
    s1.destroy()
    s2.destroy()
  }
}

/** Pipes two databases' replication streams together. Returns a function that cuts the link. */
export function connect (a: { replicate: (initiator: boolean) => Duplex }, b: { replicate: (initiator: boolean) => Duplex }): () => void {
  return pipe(a.replicate(true), b.replicate(false))
}
