#!/usr/bin/env node
// The meshbee command line: runs scripts/cli.ts through tsx, so no build step is needed.
import { fileURLToPath } from 'node:url'
import { register } from 'tsx/esm/api'

register({ tsconfig: fileURLToPath(new URL('../tsconfig.json', import.meta.url)) })
await import(new URL('../scripts/cli.ts', import.meta.url).href)
