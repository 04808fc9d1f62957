import {
  closeSync,
  constants,
  type Dirent,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readSync,
  realpathSync,
  renameSync,
  type Stats,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { CachedDeployError } from './errors.js';
import { printable, quoteForMessage } from './text.js';

/**
 * The trust boundary between the tool and a repository it does not control: the one place that
 * turns a repository-relative path into file-system access, the way Go's `os.Root` or Linux's
 * `openat2(RESOLVE_BENEATH)` contain a walk. Every read, write and delete of a repository file goes
 * through a `RepoFiles`, which
 *
 * - takes only clean relative paths (no `..`, no absolute path, no `.git` component);
 * - `lstat`s every component below the root: each parent must be a real directory, never a
 *   symbolic link (which could lead out of the repository, into `.git`, or onto a device);
 * - reads only regular files, never a symlink, FIFO, socket, device or directory, opened with
 *   O_NOFOLLOW and O_NONBLOCK, checked again on the open descriptor, and at most `MAX_FILE_BYTES`;
 * - writes and deletes only where the same checks pass, creating missing directories one level at
 *   a time.
 *
 * A refusal is a one-line UNSAFE_PATH error naming the path. The checks and the use are separate
 * system calls, so a process racing the tool on the same machine could still swap a directory in
 * between; what a repository's content can do (a symlink or special file committed, cloned or
 * unpacked) is contained.
 */

/** Generated files are a few KB and cached-deploy.yml a few hundred bytes: 1 MiB is plenty. */
export const MAX_FILE_BYTES = 1 << 20;

/** `.git` as any filesystem might spell it (case-insensitive ones, trailing dots or spaces). */
const GIT_DIR_NAME = /^\.git[. ]*$/i;

// O_NOFOLLOW and O_NONBLOCK are POSIX; where they do not exist (Windows) the lstat checks remain.
const READ_FLAGS = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0);

export class RepoFiles {
  /** The repository root as given (resolved, not followed: the caller chose it). */
  readonly root: string;
  /** Relative directories already found to be real directories. */
  private readonly directories = new Set<string>();

  constructor(dir: string) {
    this.root = resolve(dir);
  }

  /**
   * What is at `path`: undefined when it (or a parent) does not exist, else the lstat of a regular
   * file. Anything else throws.
   */
  check(path: string): Stats | undefined {
    checkSyntax(path);
    if (!this.checkParents(path)) return undefined;
    const stats = lstat(this.full(path), path);
    if (stats === undefined) return undefined;
    if (stats.isSymbolicLink()) {
      throw unsafe(
        path,
        'is a symbolic link; create-cached-deploy reads and writes only regular files inside the repository (replace the link with a regular file, or remove it)',
      );
    }
    if (!stats.isFile()) {
      throw unsafe(
        path,
        `is not a regular file (${kindOf(stats)}); create-cached-deploy reads and writes only regular files (remove it)`,
      );
    }
    return stats;
  }

  /** Throws unless every existing component of the directory `path` is a real directory. */
  checkDirectory(path: string): void {
    if (path === '.') return;
    checkSyntax(path);
    if (!this.checkParents(path)) return;
    const stats = lstat(this.full(path), path);
    if (stats === undefined) return;
    if (stats.isSymbolicLink()) {
      throw unsafe(
        path,
        'is a symbolic link; create-cached-deploy writes only into real directories inside the repository',
      );
    }
    if (!stats.isDirectory()) throw unsafe(path, `is not a directory (${kindOf(stats)})`);
    this.directories.add(path);
  }

  /** The text of the regular file at `path`; undefined when there is none. */
  read(path: string, maxBytes = MAX_FILE_BYTES): string | undefined {
    const stats = this.check(path);
    if (stats === undefined) return undefined;
    return readRegularFile(this.full(path), path, stats, maxBytes, READ_FLAGS);
  }

  /**
   * An input the configuration names (a Dockerfile): symbolic links are followed as long as the
   * file they lead to is inside the repository (and not in `.git`); it must still be a regular
   * file of at most `maxBytes`. Its text never reaches any output (only its stage names do).
   */
  readInput(path: string, maxBytes = MAX_FILE_BYTES): string | undefined {
    const input = this.resolveInput(path);
    if (input === undefined) return undefined;
    if (!input.stats.isFile()) throw unsafe(path, `is not a regular file (${kindOf(input.stats)})`);
    return readRegularFile(input.real, path, input.stats, maxBytes, READ_FLAGS);
  }

  /**
   * What is at an input the configuration names (a Dockerfile, a build context), followed through
   * symbolic links under the same rule as `readInput`; undefined when nothing is there. `.` is the
   * repository itself.
   */
  inputKind(path: string): 'file' | 'directory' | 'other' | undefined {
    const stats = this.resolveInput(path)?.stats;
    if (stats === undefined) return undefined;
    return stats.isFile() ? 'file' : stats.isDirectory() ? 'directory' : 'other';
  }

  /** Where an input really is, when it exists: inside the repository and out of `.git`. */
  private resolveInput(path: string): { real: string; stats: Stats } | undefined {
    if (path !== '.') checkSyntax(path);
    let real: string;
    let root: string;
    try {
      root = realpathSync(this.root);
      real = realpathSync(path === '.' ? this.root : this.full(path));
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw ioError(path, error);
    }
    // '' is the repository itself; an absolute answer, another drive (Windows).
    const inside = relative(root, real);
    if (inside === '..' || inside.startsWith(`..${sep}`) || isAbsolute(inside)) {
      throw new UnsafePathError(path, 'leads outside the repository', { outside: true });
    }
    if (inside.split(sep).some((part) => GIT_DIR_NAME.test(part))) {
      throw unsafe(path, 'leads into .git');
    }
    const stats = lstat(real, path);
    return stats === undefined ? undefined : { real, stats };
  }

  /**
   * The entries of the real directory `path` (`.`: the repository), sorted by name; undefined
   * when it does not exist. Symbolic links are listed as `other`, never followed.
   */
  list(path: string): { name: string; kind: 'file' | 'directory' | 'other' }[] | undefined {
    this.checkDirectory(path);
    let entries: Dirent[];
    try {
      entries = readdirSync(path === '.' ? this.root : this.full(path), { withFileTypes: true });
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw ioError(path, error);
    }
    return entries
      .map((entry) => ({
        name: entry.name,
        kind: entry.isFile()
          ? ('file' as const)
          : entry.isDirectory()
            ? ('directory' as const)
            : ('other' as const),
      }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  // --- writing: only src/write/write-files.ts calls these ---

  /** Creates the missing parent directories of `path`, one level at a time, each checked. */
  makeParents(path: string): void {
    checkSyntax(path);
    for (let slash = path.indexOf('/'); slash >= 0; slash = path.indexOf('/', slash + 1)) {
      const dir = path.slice(0, slash);
      if (this.directories.has(dir)) continue;
      const full = this.full(dir);
      if (lstat(full, path) === undefined) {
        try {
          mkdirSync(full);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError(path, error);
        }
      }
      this.checkDirectory(dir);
    }
  }

  /** Writes a new file at `path` (never an existing one: O_EXCL, so never through a symlink). */
  writeNew(path: string, content: string): void {
    checkSyntax(path);
    writeFileSync(this.full(path), content, { encoding: 'utf8', flag: 'wx' });
  }

  /** Renames `from` over `to`; `to` must be a regular file or missing (rename never follows it). */
  replace(from: string, to: string): void {
    this.check(to);
    checkSyntax(from);
    renameSync(this.full(from), this.full(to));
  }

  /** Deletes the regular file at `path` (nothing when it is already gone). */
  remove(path: string): void {
    if (this.check(path) === undefined) return;
    try {
      unlinkSync(this.full(path));
    } catch (error) {
      if (!isMissing(error)) throw ioError(path, error);
    }
  }

  /**
   * Throws unless every existing parent directory of `path` is a real directory; false when one
   * does not exist yet.
   */
  checkParentDirectories(path: string): boolean {
    checkSyntax(path);
    return this.checkParents(path);
  }

  /** The absolute path of a checked repository path (no "..", "." or empty part to normalize). */
  private full(path: string): string {
    return `${this.root}${sep}${sep === '/' ? path : path.replaceAll('/', sep)}`;
  }

  private checkParents(path: string): boolean {
    for (let slash = path.indexOf('/'); slash >= 0; slash = path.indexOf('/', slash + 1)) {
      const dir = path.slice(0, slash);
      if (this.directories.has(dir)) continue;
      const stats = lstat(this.full(dir), path);
      if (stats === undefined) return false;
      if (stats.isSymbolicLink()) {
        throw unsafe(
          path,
          `goes through a symbolic link (${dir}); create-cached-deploy follows only real directories inside the repository`,
        );
      }
      if (!stats.isDirectory()) {
        throw unsafe(path, `goes through ${dir}, which is not a directory`);
      }
      this.directories.add(dir);
    }
    return true;
  }
}

/**
 * Why `path` is not a clean repository-relative path (undefined when it is one): absolute, with
 * `..`, `.` or empty components, backslashes, NUL, or a `.git` component.
 */
export function repoPathProblem(path: string): string | undefined {
  if (path === '' || path.includes('\0')) return 'is not a path';
  if (path.startsWith('/') || /^[A-Za-z]:/.test(path) || path.includes('\\')) {
    return 'points outside the repository';
  }
  const parts = path.split('/');
  if (parts.includes('..')) return 'points outside the repository';
  if (parts.some((part) => part === '' || part === '.')) return 'is not a normalized path';
  if (parts.some((part) => GIT_DIR_NAME.test(part))) return 'is inside .git';
  return undefined;
}

function checkSyntax(path: string): void {
  const problem = repoPathProblem(path);
  if (problem) throw unsafe(path, problem);
}

function lstat(full: string, path: string): Stats | undefined {
  try {
    return lstatSync(full);
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw ioError(path, error);
  }
}

/**
 * Reads at most `maxBytes` from the regular file `full`, which lstat found as `expected`: the open
 * descriptor must be the same file (not one swapped in since), and reading stops one byte past the
 * cap, so a file that grows or never ends costs no more than that.
 */
function readRegularFile(
  full: string,
  path: string,
  expected: Stats,
  maxBytes: number,
  flags: number,
): string {
  if (expected.size > maxBytes) throw tooLarge(path, maxBytes);
  let fd: number;
  try {
    fd = openSync(full, flags);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ELOOP') {
      throw unsafe(path, 'is a symbolic link');
    }
    throw ioError(path, error);
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile() || stats.ino !== expected.ino || stats.dev !== expected.dev) {
      throw unsafe(path, 'changed while it was being read');
    }
    let buffer = Buffer.allocUnsafe(Math.min(stats.size, maxBytes) + 1);
    let length = 0;
    for (;;) {
      if (length === buffer.length) {
        if (length > maxBytes) throw tooLarge(path, maxBytes);
        const grown = Buffer.allocUnsafe(Math.min(buffer.length * 2, maxBytes + 1));
        buffer.copy(grown, 0, 0, length);
        buffer = grown;
      }
      const read = readSync(fd, buffer, length, buffer.length - length, null);
      if (read === 0) break;
      length += read;
    }
    if (length > maxBytes) throw tooLarge(path, maxBytes);
    return buffer.toString('utf8', 0, length);
  } finally {
    closeSync(fd);
  }
}

function kindOf(stats: Stats): string {
  if (stats.isFile()) return 'a regular file';
  if (stats.isDirectory()) return 'a directory';
  if (stats.isFIFO()) return 'a FIFO';
  if (stats.isSocket()) return 'a socket';
  if (stats.isCharacterDevice() || stats.isBlockDevice()) return 'a device';
  return 'not a file';
}

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** `path` as a message shows it: as it is when it is plain, else quoted and cut short. */
function shown(path: string): string {
  return /^[\w./@+ -]{1,200}$/.test(path) ? path : quoteForMessage(path);
}

/** A path the tool refuses to read, write or delete; `why` is the message without the path. */
export class UnsafePathError extends CachedDeployError {
  readonly why: string;
  /** Whether it leads outside the repository (through a symbolic link). */
  readonly outside: boolean;
  constructor(path: string, why: string, options: { outside?: boolean } = {}) {
    super('UNSAFE_PATH', `${shown(path)}: ${why}`);
    this.why = why;
    this.outside = options.outside ?? false;
  }
}

function unsafe(path: string, why: string): UnsafePathError {
  return new UnsafePathError(path, why);
}

function tooLarge(path: string, maxBytes: number): CachedDeployError {
  return unsafe(
    path,
    `is larger than ${maxBytes >> 20} MiB; create-cached-deploy reads no file that large from a repository`,
  );
}

function ioError(path: string, error: unknown): CachedDeployError {
  const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
  return new CachedDeployError('IO', `${shown(path)}: ${printable(reason)}`);
}
