import { CachedDeployError } from '../errors.js';
import { printable } from '../text.js';

/**
 * Reading an API's JSON answer without trusting it: each reader takes the value and where it was
 * found, and returns the typed value or throws one line naming the field (`pulls[0].number`). The
 * per-host schemas (github-schema.ts, gitlab-schema.ts) are built from these.
 */

export class AnswerError extends CachedDeployError {
  constructor(where: string, problem: string) {
    super('IO', `unexpected answer: ${where} ${problem}`);
  }
}

export type Reader<T> = (value: unknown, where: string) => T;

export function record(value: unknown, where: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new AnswerError(where, 'is not an object');
  }
  return value as Record<string, unknown>;
}

export function field<T>(
  object: Record<string, unknown>,
  key: string,
  read: Reader<T>,
  where: string,
) {
  return read(object[key], `${where}.${key}`);
}

/** A string of at most `max` characters (longer ones are refused, not cut: they are not ours). */
export function text(max = 1000): Reader<string> {
  return (value, where) => {
    if (typeof value !== 'string') throw new AnswerError(where, 'is not a string');
    if (value.length > max) throw new AnswerError(where, `is longer than ${max} characters`);
    return value;
  };
}

/** A string or null/absent, as '' (a pull request without a body). */
export function optionalText(max = 1000): Reader<string> {
  const read = text(max);
  return (value, where) => (value === null || value === undefined ? '' : read(value, where));
}

export function positiveInteger(value: unknown, where: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new AnswerError(where, 'is not a non-negative integer');
  }
  return value;
}

export function bool(value: unknown, where: string): boolean {
  if (value === undefined || value === null) return false;
  if (typeof value !== 'boolean') throw new AnswerError(where, 'is not true or false');
  return value;
}

export function oneOfText<const T extends readonly string[]>(allowed: T): Reader<T[number]> {
  return (value, where) => {
    if (typeof value !== 'string' || !allowed.includes(value)) {
      throw new AnswerError(
        where,
        `is ${typeof value === 'string' ? JSON.stringify(printable(value.slice(0, 40))) : typeof value}, not one of ${allowed.join(', ')}`,
      );
    }
    return value as T[number];
  };
}

/** An https (or, for a test or an internal instance, http) URL. */
export function webUrl(value: unknown, where: string): string {
  const url = text(2000)(value, where);
  if (!/^https?:\/\/[^\s]+$/.test(url)) throw new AnswerError(where, 'is not an http(s) URL');
  return url;
}

/** A list of at most `max` items. */
export function array<T>(read: Reader<T>, max = 1000): Reader<T[]> {
  return (value, where) => {
    if (!Array.isArray(value)) throw new AnswerError(where, 'is not a list');
    if (value.length > max) throw new AnswerError(where, `has more than ${max} items`);
    return value.map((item, index) => read(item, `${where}[${index}]`));
  };
}

/** A 40 (SHA-1) or 64 (SHA-256) hex commit id, or undefined. */
export function commitSha(value: unknown, where: string): string | undefined {
  if (value === null || value === undefined) return undefined;
  if (typeof value !== 'string' || !/^(?:[0-9a-f]{40}|[0-9a-f]{64})$/.test(value)) {
    throw new AnswerError(where, 'is not a commit id');
  }
  return value;
}
