/** `create-cached-deploy fleet`: the generate pipeline over many repositories. */
export {
  DEFAULT_CONCURRENCY,
  DEFAULT_WORK_DIR,
  type FleetFile,
  type FleetRepo,
  loadFleetFile,
  parseFleetFile,
} from './fleet-file.js';
export { createProgress, type Progress, type ProgressStream } from './progress.js';
export {
  type FileSummary,
  type FleetMode,
  type FleetOptions,
  type FleetResult,
  parseShard,
  type RepoResult,
  type RepoStatus,
  resultsFileName,
  runFleet,
  shardOf,
} from './run-fleet.js';
export { formatSummaryJson, formatSummaryMarkdown, formatSummaryTable } from './summary.js';
