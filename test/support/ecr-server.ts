// The server lives in ./ecr-server/ (protocol, operations, registry model, faults); this is its
// entry point for tests.
export * from './ecr-server/index.js';
