/**
 * The `meshbee` command line (bin/meshbee.js runs its compiled form in dist/). Commands live in
 * cli/program.ts; `meshbee --help` lists them.
 */
import { run } from './program.js'

const code = await run(process.argv)
// Let stdout drain (a pipe or a file), then exit even if a socket or timer lingers.
process.stdout.write('', () => process.exit(code))
