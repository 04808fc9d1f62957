/**
 * Triggers a reseed: a `workflow_dispatch` of the deploy workflow with `reseed=true`, which runs
 * its seed job (a cold build exporting seed.<image>) on the main branch. GitHub REST API
 * "Create a workflow dispatch event". Sent through net/bounded-fetch.ts like every other HTTP call:
 * capped, with deadlines, no redirects (a POST carrying a token goes where it was sent or nowhere).
 */
import { CachedDeployError } from '../errors.js';
import { bodyJson, createHttpClient, type HttpClient, KiB } from '../net/bounded-fetch.js';
import { printable, quoteForMessage } from '../text.js';

export interface ReseedDispatch {
  /** `https://api.github.com`, or a GitHub Enterprise Server's `https://HOST/api/v3`. */
  apiUrl: string;
  /** `owner/name` */
  repository: string;
  /** The workflow's file name, e.g. `deploy.yml`. */
  workflowFile: string;
  /** The branch to run on: the main branch. */
  ref: string;
  token: string;
  /** The transport under the bounded client. Default: the global fetch. */
  fetch?: typeof fetch;
  /** The bounded HTTP client (its deadlines); a default one otherwise. */
  http?: HttpClient;
}

/** The endpoint the dispatch is POSTed to. */
export function dispatchUrl(dispatch: Omit<ReseedDispatch, 'token' | 'ref'>): string {
  const base = dispatch.apiUrl.replace(/\/+$/, '');
  const [owner = '', name = ''] = dispatch.repository.split('/');
  return `${base}/repos/${encodeURIComponent(owner)}/${encodeURIComponent(name)}/actions/workflows/${encodeURIComponent(dispatch.workflowFile)}/dispatches`;
}

const HINTS: Record<number, string> = {
  401: 'the token is invalid or expired',
  403: 'the token needs the "actions: write" permission (or the "workflow" scope) on the repository',
  404: 'no such repository or workflow on the default branch, or the token cannot see it',
  422: 'the workflow does not accept the "reseed" input on that ref: regenerate and push the workflow first',
};

export async function dispatchReseed(dispatch: ReseedDispatch): Promise<{ url: string }> {
  const url = dispatchUrl(dispatch);
  const http = dispatch.http ?? createHttpClient({ fetch: dispatch.fetch });
  const response = await http
    .request(url, {
      method: 'POST',
      headers: {
        accept: 'application/vnd.github+json',
        authorization: `Bearer ${dispatch.token}`,
        'content-type': 'application/json',
        'user-agent': 'create-cached-deploy',
        'x-github-api-version': '2022-11-28',
      },
      body: JSON.stringify({ ref: dispatch.ref, inputs: { reseed: 'true' } }),
      // The answer is 204 No Content; anything larger is not GitHub's.
      maxBytes: 64 * KiB,
    })
    .catch((error: unknown) => {
      if (error instanceof CachedDeployError) {
        throw new CachedDeployError('IO', `reseed: ${error.message}`);
      }
      throw error;
    });
  if (response.ok) return { url };
  const body = bodyJson(response) as { message?: unknown } | undefined;
  const message = typeof body?.message === 'string' ? body.message : '';
  const hint = HINTS[response.status];
  throw new CachedDeployError(
    'IO',
    `reseed: GitHub refused the dispatch of ${dispatch.workflowFile} in ${dispatch.repository}: HTTP ${response.status}${message ? ` ${printable(quoteForMessage(message, 200))}` : ''}${hint ? ` (${hint})` : ''}`,
  );
}
