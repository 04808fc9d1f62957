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
 * The parts of GitHub's REST answers the fleet uses, read defensively (see net/answers.ts): a pull
 * request, its reviews, the combined commit status, check runs and a file's contents.
 */

/** Bodies are stored up to 65,536 characters; an answer with more is not GitHub's. */
const BODY_MAX = 65_536;

export function parsePull(value: unknown, where = 'pull request'): PullRequest {
  const pull = record(value, where);
  const head = record(pull.head, `${where}.head`);
  const base = record(pull.base, `${where}.base`);
  const state = field(pull, 'state', oneOfText(['open', 'closed'] as const), where);
  const merged = pull.merged_at !== null && pull.merged_at !== undefined;
  return {
    number: field(pull, 'number', positiveInteger, where),
    url: field(pull, 'html_url', webUrl, where),
    state: state === 'open' ? 'open' : merged || pull.merged === true ? 'merged' : 'closed',
    title: field(pull, 'title', text(1024), where),
    body: field(pull, 'body', optionalText(BODY_MAX), where),
    draft: field(pull, 'draft', bool, where),
    headBranch: field(head, 'ref', text(1024), `${where}.head`),
    headSha: field(head, 'sha', commitSha, `${where}.head`),
    baseBranch: field(base, 'ref', text(1024), `${where}.base`),
    labels: (pull.labels === undefined
      ? []
      : array(record, 100)(pull.labels, `${where}.labels`)
    ).map((label, index) => field(label, 'name', text(200), `${where}.labels[${index}]`)),
    assignees: (pull.assignees === undefined || pull.assignees === null
      ? []
      : array(record, 100)(pull.assignees, `${where}.assignees`)
    ).map((user, index) => field(user, 'login', text(100), `${where}.assignees[${index}]`)),
  };
}

export function parsePulls(value: unknown): PullRequest[] {
  return array(parsePull, 100)(value, 'pulls');
}

const REVIEW_STATES = [
  'APPROVED',
  'CHANGES_REQUESTED',
  'COMMENTED',
  'DISMISSED',
  'PENDING',
] as const;

/**
 * Each reviewer's latest approving, blocking or dismissed review decides (a comment after an
 * approval does not withdraw it): any "changes requested" wins, then any approval, else pending.
 */
export function reviewStatus(reviews: unknown[]): ReviewStatus {
  const latest = new Map<string, string>();
  reviews.forEach((value, index) => {
    const where = `reviews[${index}]`;
    const review = record(value, where);
    const state = field(review, 'state', oneOfText(REVIEW_STATES), where);
    const user =
      review.user === null || review.user === undefined
        ? undefined
        : record(review.user, `${where}.user`);
    const login = user ? field(user, 'login', text(100), `${where}.user`) : `#${index}`;
    if (state === 'APPROVED' || state === 'CHANGES_REQUESTED' || state === 'DISMISSED') {
      latest.set(login, state);
    }
  });
  const states = [...latest.values()];
  if (states.includes('CHANGES_REQUESTED')) return 'changes-requested';
  if (states.includes('APPROVED')) return 'approved';
  return 'pending';
}

/** The combined status of a commit's statuses; `none` when it has none (GitHub says pending then). */
export function combinedStatus(value: unknown): CheckStatus {
  const combined = record(value, 'combined status');
  const total = field(combined, 'total_count', positiveInteger, 'combined status');
  if (total === 0) return 'none';
  const state = field(
    combined,
    'state',
    oneOfText(['success', 'pending', 'failure', 'error'] as const),
    'combined status',
  );
  return state === 'error' ? 'failure' : state;
}

const FAILED_CONCLUSIONS = new Set([
  'failure',
  'cancelled',
  'timed_out',
  'action_required',
  'startup_failure',
  'stale',
]);

/** Check runs: any failed conclusion fails, any unfinished run is pending. */
export function checkRunsStatus(value: unknown): CheckStatus {
  const answer = record(value, 'check runs');
  const runs = array(record, 100)(answer.check_runs, 'check runs.check_runs');
  if (runs.length === 0) return 'none';
  let pending = false;
  for (const [index, run] of runs.entries()) {
    const where = `check runs.check_runs[${index}]`;
    const status = field(run, 'status', text(40), where);
    if (status !== 'completed') {
      pending = true;
      continue;
    }
    const conclusion = run.conclusion === null ? 'none' : field(run, 'conclusion', text(40), where);
    if (FAILED_CONCLUSIONS.has(conclusion)) return 'failure';
  }
  return pending ? 'pending' : 'success';
}

/** Statuses and check runs together: a failure anywhere fails, then pending, then success. */
export function combineChecks(...parts: CheckStatus[]): CheckStatus {
  for (const status of ['failure', 'pending', 'success'] as const) {
    if (parts.includes(status)) return status;
  }
  return 'none';
}

/** GET /repos/{owner}/{repo}/contents/{path}: a file's text (base64 in the answer). */
export function fileContent(value: unknown, maxBytes: number): string {
  const file = record(value, 'contents');
  const type = field(file, 'type', text(20), 'contents');
  if (type !== 'file')
    throw new AnswerError('contents.type', `is ${JSON.stringify(type)}, not "file"`);
  const encoding = field(file, 'encoding', text(20), 'contents');
  const content = field(file, 'content', text(Math.ceil((maxBytes * 4) / 3) + 4096), 'contents');
  if (encoding !== 'base64') {
    throw new AnswerError('contents.encoding', `is ${JSON.stringify(encoding)}, not "base64"`);
  }
  const bytes = Buffer.from(content.replace(/\s+/g, ''), 'base64');
  if (bytes.byteLength > maxBytes)
    throw new AnswerError('contents', `is larger than ${maxBytes} bytes`);
  return bytes.toString('utf8');
}
