/**
 * Following an AWS `nextToken`, bounded. The token comes from the server: a `nextToken` that comes
 * back (a stuck page) would loop forever, and one that never ends would too, so both are errors:
 * a token seen before stops at once, and more than `maxPages` pages stop there. No repository
 * comes near the bound: ECR keeps at most 100,000 images per repository by default (its quota can
 * be raised), 100 pages of 1000, and previews page by 100.
 *
 * (The shipped prune script has its own copy of this guard: it must stand alone.)
 */
export const MAX_PAGES = 10_000;

/** A listing that would not end: the message names the call and why it was stopped. */
export class PaginationError extends Error {
  override name = 'PaginationError';
}

export interface PageOptions {
  /** Default MAX_PAGES. */
  maxPages?: number;
}

/**
 * Every page of a listing: `fetchPage(undefined)` first, then with each `nextToken` until a page
 * has none. `what` names the call in errors, e.g. `DescribeImages on app-buildcache`.
 */
export async function* pages<T extends { nextToken?: string }>(
  what: string,
  fetchPage: (nextToken: string | undefined) => Promise<T>,
  options: PageOptions = {},
): AsyncGenerator<T> {
  const maxPages = options.maxPages ?? MAX_PAGES;
  const seen = new Set<string>();
  let nextToken: string | undefined;
  for (let count = 1; ; count++) {
    const page = await fetchPage(nextToken);
    yield page;
    nextToken = page.nextToken;
    if (!nextToken) return;
    if (seen.has(nextToken)) {
      throw new PaginationError(
        `${what}: ECR answered a nextToken it had already given (page ${count}); stopped instead of looping`,
      );
    }
    if (count >= maxPages) {
      throw new PaginationError(
        `${what}: more than ${maxPages} pages; stopped (a listing that does not end)`,
      );
    }
    seen.add(nextToken);
  }
}
