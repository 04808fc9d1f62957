/** `create-cached-deploy fleet`: the generate pipeline over many repositories. */
export {
  DEFAULT_CONCURRENCY,
  DEFAULT_WORK_DIR,
  type FleetFile,
  type FleetRepo,
  type HostKind,
  loadFleetFile,
  type PullRequestSettings,
  parseFleetFile,
} from './fleet-file.js';
export type { CodeHostsOptions } from './hosts/connect.js';
export type { CheckStatus, PullRequestState, ReviewStatus } from './hosts/host.js';
export type { PullRequestOutcome } from './local.js';
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
export {
  type FleetStatusResult,
  type RepoPullRequestStatus,
  runFleetStatus,
  type StatusOptions,
} from './status.js';
export { formatStatusJson, formatStatusMarkdown, formatStatusTable } from './status-format.js';
export { formatSummaryJson, formatSummaryMarkdown, formatSummaryTable } from './summary.js';
