/**
 * One trial in its own process: `tsx scripts/bench/child.ts '<spec as JSON>'`. Prints one line,
 * RESULT_TAG + the result as JSON, on stdout; anything else goes to stderr.
 */
import { runB3 } from './b3.js'
import { removeTempDirs } from './common.js'
import { runCatchup } from './catchup.js'
import { runConverge } from './converge.js'
import { runLocal } from './local.js'
import { runParts } from './parts.js'
import { runScaleFold, runScaleSetup } from './scale.js'
import { RESULT_TAG, type Result, type Spec } from './types.js'

async function run (spec: Spec): Promise<Result> {
  switch (spec.workload) {
    case 'local': return await runLocal(spec.system, spec.params)
    case 'converge': return await runConverge(spec.system, spec.params)
    case 'catchup': return await runCatchup(spec.system, spec.params)
    case 'scale-setup': return await runScaleSetup(spec.params)
    case 'scale-fold': return await runScaleFold(spec.params)
    case 'parts': return await runParts(spec.params, spec.round)
    case 'b3': return await runB3(spec.system, spec.params)
  }
}

const spec = JSON.parse(process.argv[2]) as Spec
try {
  const result = await run(spec)
  // the scale setup hands its directory to later trials: the runner removes it
  if (spec.workload !== 'scale-setup') await removeTempDirs()
  process.stdout.write(RESULT_TAG + JSON.stringify(result) + '\n')
  process.exit(0)
} catch (err) {
  process.stderr.write(`trial failed: ${(err as Error).stack ?? String(err)}\n`)
  await removeTempDirs().catch(() => {})
  process.exit(1)
}
