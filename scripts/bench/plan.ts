/**
 * The sizes of each preset. `full` is what the issue asks for; `medium` keeps every workload and
 * anchor, the 4 × 500 convergence case and its 4 × 2000 linearity case, but scales the
 * other slow ones down so a run fits in about 15 minutes on 2 cores (autobase at the full sizes
 * needs well over an hour); `quick` is a smoke run (about 2 minutes on a quiet machine). Ratios
 * are only ever taken between figures of the same run.
 */
import type { B3Params, CatchupParams, ConvergeParams, LocalParams, PartsParams, ScaleSetupParams } from './types.js'

export type Preset = 'quick' | 'medium' | 'full'

export interface ConvergeCase extends ConvergeParams {
  /** Whether autobase runs this case too (the largest cases are meshbee-only, for linearity). */
  autobase: boolean
  rounds: number
}

export interface Plan {
  preset: Preset
  local: LocalParams & { rounds: number }
  converge: ConvergeCase[]
  /** [small, large]: two meshbee cases with the same writers and 4× the ops, for the linearity row. */
  linearity: [string, string]
  catchup: CatchupParams & { rounds: number }
  scale: Array<Omit<ScaleSetupParams, 'batch'>>
  scaleRounds: number
  /** Writes to a large set and document against small ones (parts.ts); the sizes in every preset. */
  parts: PartsParams & { rounds: number }
  /** crdt-benchmarks B3.1 (b3.ts): its N = 6,000, so 20·⌊√N⌋ = 1,540 writers, in every preset. */
  b3: B3Params & { rounds: number }
  /** Per-trial time limit (ms): a trial over it is recorded as a timeout (a lower bound). */
  trialTimeoutMs: number
}

export const caseName = (c: ConvergeParams): string => `${c.writers}x${c.perWriter}`

export function plan (preset: Preset): Plan {
  switch (preset) {
    case 'quick': return {
      preset,
      local: { puts: 1000, batched: 5000, batch: 1000, gets: 2000, rounds: 3 },
      converge: [
        { writers: 2, perWriter: 100, autobase: true, rounds: 3 },
        { writers: 4, perWriter: 100, autobase: true, rounds: 3 },
        { writers: 4, perWriter: 400, autobase: false, rounds: 3 },
        { writers: 16, perWriter: 10, autobase: true, rounds: 1 }
      ],
      linearity: ['4x100', '4x400'],
      catchup: { writers: 3, keys: 100, overwrites: 10, rounds: 3 },
      scale: [{ writers: 16, perWriter: 200 }, { writers: 64, perWriter: 200 }],
      scaleRounds: 3,
      parts: { members: 100_000, fields: 10_000, smallFields: 3, batch: 5000, ops: 200, warmup: 20, rounds: 1 },
      b3: { n: 6000, clients: 1540, rounds: 1 },
      trialTimeoutMs: 120_000
    }
    case 'medium': return {
      preset,
      local: { puts: 3000, batched: 20_000, batch: 1000, gets: 10_000, rounds: 3 },
      converge: [
        { writers: 2, perWriter: 250, autobase: true, rounds: 3 },
        { writers: 4, perWriter: 500, autobase: true, rounds: 3 },
        { writers: 4, perWriter: 2000, autobase: false, rounds: 3 },
        { writers: 16, perWriter: 16, autobase: true, rounds: 3 }
      ],
      linearity: ['4x500', '4x2000'],
      catchup: { writers: 3, keys: 1000, overwrites: 10, rounds: 3 },
      scale: [{ writers: 16, perWriter: 1000 }, { writers: 64, perWriter: 1000 }],
      scaleRounds: 3,
      parts: { members: 100_000, fields: 10_000, smallFields: 3, batch: 5000, ops: 200, warmup: 20, rounds: 3 },
      b3: { n: 6000, clients: 1540, rounds: 3 },
      trialTimeoutMs: 300_000
    }
    case 'full': return {
      preset,
      local: { puts: 10_000, batched: 100_000, batch: 1000, gets: 50_000, rounds: 5 },
      converge: [
        { writers: 2, perWriter: 1000, autobase: true, rounds: 3 },
        { writers: 4, perWriter: 500, autobase: true, rounds: 3 },
        { writers: 4, perWriter: 2000, autobase: false, rounds: 3 },
        { writers: 16, perWriter: 125, autobase: true, rounds: 3 }
      ],
      linearity: ['4x500', '4x2000'],
      catchup: { writers: 3, keys: 1000, overwrites: 100, rounds: 3 },
      scale: [{ writers: 16, perWriter: 2000 }, { writers: 64, perWriter: 2000 }],
      scaleRounds: 3,
      parts: { members: 100_000, fields: 10_000, smallFields: 3, batch: 5000, ops: 200, warmup: 20, rounds: 3 },
      b3: { n: 6000, clients: 1540, rounds: 3 },
      trialTimeoutMs: 900_000
    }
  }
}
