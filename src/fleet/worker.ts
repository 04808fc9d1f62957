import { parentPort } from 'node:worker_threads';
import { type LocalTask, localOutcome } from './local.js';

/**
 * A worker thread of a fleet run: evaluates repositories the main thread sends it, one message per
 * repository, and answers with the outcome (plain data). Its modules (yaml, Handlebars templates)
 * load once per worker, then stay warm for every repository it gets.
 */
parentPort?.on('message', (message: { id: number; task: LocalTask }) => {
  parentPort?.postMessage({ id: message.id, outcome: localOutcome(message.task) });
});
