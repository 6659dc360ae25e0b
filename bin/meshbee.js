#!/usr/bin/env node
// The meshbee command line: the compiled CLI in dist/ (built by `npm run build`, and by npm
// itself when it packs the package or installs it from a git URL).
try {
  await import('../dist/cli/main.js')
} catch (err) {
  if (err?.code !== 'ERR_MODULE_NOT_FOUND' || !String(err.message).includes('dist/cli/main.js')) throw err
  process.stderr.write('meshbee: MESHBEE_NOT_BUILT: dist/ is missing: run "npm run build" in the meshbee package\n')
  process.exitCode = 1
}
