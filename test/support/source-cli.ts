/**
 * The CLI straight from src/ (run with `node --import tsx`): for tests that must run it in a child
 * process (so a hang or a runaway read is bounded by a timeout) without building lib/ first.
 */
import { main } from '../../src/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
