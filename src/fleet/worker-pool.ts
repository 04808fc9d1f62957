import { Worker } from 'node:worker_threads';
import type { LocalTask, Outcome } from './local.js';

/**
 * A few worker threads that run `localOutcome` (evaluate, render, plan; write with `--write`), so
 * a large fleet uses every core. Each task goes to the worker with the fewest tasks in flight;
 * workers start on first use. A worker that dies fails only its own in-flight tasks (each becomes
 * that repository's error) and is replaced by the next task that needs one.
 */
export class WorkerPool {
  private readonly workers: {
    worker: Worker;
    inFlight: Map<number, { resolve: (o: Outcome) => void; reject: (e: Error) => void }>;
  }[] = [];
  private nextId = 0;

  constructor(readonly size: number) {}

  run(task: LocalTask): Promise<Outcome> {
    const slot = this.pick();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      slot.inFlight.set(id, { resolve, reject });
      slot.worker.postMessage({ id, task });
    });
  }

  async close(): Promise<void> {
    const workers = this.workers.splice(0);
    await Promise.all(workers.map((slot) => slot.worker.terminate()));
  }

  private pick() {
    if (this.workers.length < this.size) {
      const idle = this.workers.find((slot) => slot.inFlight.size === 0);
      if (idle) return idle;
      return this.spawn();
    }
    return this.workers.reduce((best, slot) =>
      slot.inFlight.size < best.inFlight.size ? slot : best,
    );
  }

  private spawn() {
    const slot = { worker: startWorker(), inFlight: new Map() } as (typeof this.workers)[number];
    const fail = (error: Error) => {
      const index = this.workers.indexOf(slot);
      if (index >= 0) this.workers.splice(index, 1);
      for (const { reject } of slot.inFlight.values()) reject(error);
      slot.inFlight.clear();
    };
    slot.worker.on('message', (message: { id: number; outcome: Outcome }) => {
      const pending = slot.inFlight.get(message.id);
      slot.inFlight.delete(message.id);
      pending?.resolve(message.outcome);
    });
    slot.worker.on('error', fail);
    slot.worker.on('exit', (code) => fail(new Error(`a fleet worker exited with code ${code}`)));
    this.workers.push(slot);
    return slot;
  }
}

function startWorker(): Worker {
  // A larger young generation: each repository allocates a few MB of short-lived objects
  // (YAML documents, rendered text), and fewer scavenges are measurably faster.
  const options = { resourceLimits: { maxYoungGenerationSizeMb: 64 } };
  if (import.meta.url.endsWith('.ts')) {
    // Running from the TypeScript sources (the tests): load the worker through tsx.
    const entry = new URL('./worker.ts', import.meta.url).href;
    return new Worker(
      `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(entry)}); });`,
      { ...options, eval: true },
    );
  }
  return new Worker(new URL('./worker.js', import.meta.url), options);
}
