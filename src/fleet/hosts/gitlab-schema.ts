import {
  AnswerError,
  array,
  bool,
  commitSha,
  field,
  oneOfText,
  optionalText,
  positiveInteger,
  record,
  text,
  webUrl,
} from '../../net/answers.js';
import type { CheckStatus, PullRequest, ReviewStatus } from './host.js';

/**
 * The parts of GitLab's REST answers the fleet uses, read defensively (see net/answers.ts): a merge
 * request (with its assignees' ids, which updates need), its approvals, its head pipeline, users.
 */

/** The API accepts descriptions up to 1,048,576 characters. */
const DESCRIPTION_MAX = 1_048_576;

export interface MergeRequest extends PullRequest {
  assigneeIds: number[];
  /** The head pipeline's status, when the answer had one (single merge request answers do). */
  pipelineStatus?: string | null;
  /** GitLab >= 15.6: why it cannot be merged (`requested_changes`, `not_approved`, ...). */
  detailedMergeStatus?: string;
}

const DRAFT_PREFIX = /^\s*(?:\[draft\]|\(draft\)|draft:|draft\s-\s|draft\s|wip:|\[wip\])\s*/i;

export function parseMergeRequest(value: unknown, where = 'merge request'): MergeRequest {
  const mr = record(value, where);
  const state = field(
    mr,
    'state',
    oneOfText(['opened', 'closed', 'locked', 'merged'] as const),
    where,
  );
  const draft = field(mr, 'draft', bool, where) || field(mr, 'work_in_progress', bool, where);
  const title = field(mr, 'title', text(1024), where);
  const assignees =
    mr.assignees === undefined || mr.assignees === null
      ? []
      : array(record, 100)(mr.assignees, `${where}.assignees`);
  const pipeline =
    mr.head_pipeline === undefined
      ? undefined
      : mr.head_pipeline === null
        ? null
        : field(
            record(mr.head_pipeline, `${where}.head_pipeline`),
            'status',
            text(40),
            `${where}.head_pipeline`,
          );
  const result: MergeRequest = {
    number: field(mr, 'iid', positiveInteger, where),
    url: field(mr, 'web_url', webUrl, where),
    // `locked` is the short moment while a merge is in progress.
    state: state === 'merged' ? 'merged' : state === 'closed' ? 'closed' : 'open',
    title: draft ? title.replace(DRAFT_PREFIX, '') : title,
    body: field(mr, 'description', optionalText(DESCRIPTION_MAX), where),
    draft,
    headBranch: field(mr, 'source_branch', text(1024), where),
    headSha: field(mr, 'sha', commitSha, where),
    baseBranch: field(mr, 'target_branch', text(1024), where),
    labels: mr.labels === undefined ? [] : array(text(200), 100)(mr.labels, `${where}.labels`),
    assignees: assignees.map((user, index) =>
      field(user, 'username', text(255), `${where}.assignees[${index}]`),
    ),
    assigneeIds: assignees.map((user, index) =>
      field(user, 'id', positiveInteger, `${where}.assignees[${index}]`),
    ),
  };
  if (pipeline !== undefined) result.pipelineStatus = pipeline;
  if (typeof mr.detailed_merge_status === 'string') {
    result.detailedMergeStatus = text(60)(
      mr.detailed_merge_status,
      `${where}.detailed_merge_status`,
    );
  }
  return result;
}

export function parseMergeRequests(value: unknown): MergeRequest[] {
  return array(parseMergeRequest, 100)(value, 'merge requests');
}

/** GET /users?username=NAME: the id of the one user with exactly that name. */
export function userId(value: unknown, username: string): number | undefined {
  const users = array(record, 20)(value, 'users');
  const match = users.find(
    (user, index) =>
      field(user, 'username', text(255), `users[${index}]`).toLowerCase() ===
      username.toLowerCase(),
  );
  return match ? positiveInteger(match.id, 'users[].id') : undefined;
}

/**
 * Changes requested (a reviewer's "request changes", on GitLab versions that have it, shows in
 * `detailed_merge_status`) wins; approved when someone approved and no required approval is
 * left; else pending.
 */
export function approvalStatus(
  value: unknown,
  detailedMergeStatus: string | undefined,
): ReviewStatus {
  if (detailedMergeStatus === 'requested_changes') return 'changes-requested';
  const approvals = record(value, 'approvals');
  const approvedBy =
    approvals.approved_by === undefined || approvals.approved_by === null
      ? []
      : array(record, 200)(approvals.approved_by, 'approvals.approved_by');
  const left =
    approvals.approvals_left === undefined || approvals.approvals_left === null
      ? 0
      : positiveInteger(approvals.approvals_left, 'approvals.approvals_left');
  return approvedBy.length > 0 && left === 0 ? 'approved' : 'pending';
}

const PIPELINE_FAILED = new Set(['failed', 'canceled', 'canceling']);
const PIPELINE_PASSED = new Set(['success']);
// created, waiting_for_resource, preparing, pending, running, scheduled, manual: not finished.
const PIPELINE_DONE_NEUTRAL = new Set(['skipped']);

export function pipelineChecks(status: string | null | undefined): CheckStatus {
  if (status === null || status === undefined) return 'none';
  if (PIPELINE_FAILED.has(status)) return 'failure';
  if (PIPELINE_PASSED.has(status)) return 'success';
  if (PIPELINE_DONE_NEUTRAL.has(status)) return 'none';
  return 'pending';
}

/** Raw file text (gitbeaker gives a string for text/*, a Blob otherwise). */
export async function rawFile(value: unknown, maxBytes: number): Promise<string> {
  const textValue =
    typeof value === 'string'
      ? value
      : value instanceof Blob
        ? await value.text()
        : typeof value === 'object' && value !== null
          ? JSON.stringify(value)
          : String(value);
  if (Buffer.byteLength(textValue, 'utf8') > maxBytes) {
    throw new AnswerError('file', `is larger than ${maxBytes} bytes`);
  }
  return textValue;
}
