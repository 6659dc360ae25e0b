/** What the runner sends a child process, and what comes back. */

export type System = 'meshbee' | 'hyperbee' | 'classic-level' | 'autobase' | 'yjs' | 'automerge'

export interface LocalParams { puts: number, batched: number, batch: number, gets: number }
export interface ConvergeParams { writers: number, perWriter: number }
export interface CatchupParams { writers: number, keys: number, overwrites: number }
export interface ScaleSetupParams { writers: number, perWriter: number, batch: number }
export interface ScaleFoldParams { dir: string, key: string, writers: number, ops: number, round: number }
/**
 * Parts: `members` in the large set and `fields` in the large document (built untimed in writes of
 * `batch` ops), `smallFields` in the small document; `ops` measured ops per case after `warmup`.
 */
export interface PartsParams { members: number, fields: number, smallFields: number, batch: number, ops: number, warmup: number }
/** crdt-benchmarks B3.1: `clients` writers (20·⌊√n⌋ for its N = n) each set the same map key. */
export interface B3Params { n: number, clients: number }

export type Spec =
  | { workload: 'local', system: 'meshbee' | 'hyperbee' | 'classic-level', params: LocalParams, round: number }
  | { workload: 'converge', system: 'meshbee' | 'autobase', params: ConvergeParams, round: number }
  | { workload: 'catchup', system: 'meshbee' | 'autobase', params: CatchupParams, round: number }
  | { workload: 'scale-setup', system: 'meshbee', params: ScaleSetupParams, round: number }
  | { workload: 'scale-fold', system: 'meshbee', params: ScaleFoldParams, round: number }
  | { workload: 'parts', system: 'meshbee', params: PartsParams, round: number }
  | { workload: 'b3', system: 'meshbee' | 'yjs' | 'automerge', params: B3Params, round: number }

/** Named figures of one trial (ops/s, ms, counts, MB…) plus facts worth printing once. */
export interface Result {
  metrics: Record<string, number>
  info?: Record<string, string>
}

export const RESULT_TAG = '@@BENCH_RESULT '
