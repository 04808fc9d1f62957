#!/usr/bin/env node
// The bin only imports: all behaviour lives in lib/cli/main.js, which tests call directly.
import { main } from '../lib/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
