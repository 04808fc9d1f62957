/**
 * RepoFiles, the one place that reads, writes and deletes repository files: each refusal on real
 * files in a temporary directory, with an outside/ directory next to the repository.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { RepoFiles, repoPathProblem, UnsafePathError } from '../src/repo-files.js';
import { createTempDir } from './support/temp-repo.js';

function world() {
  const root = createTempDir();
  const repo = join(root, 'repo');
  const outside = join(root, 'outside');
  mkdirSync(join(repo, 'dir'), { recursive: true });
  mkdirSync(join(repo, '.git'));
  mkdirSync(outside);
  writeFileSync(join(repo, 'dir', 'file.txt'), 'inside\n');
  writeFileSync(join(repo, '.git', 'config'), 'git\n');
  writeFileSync(join(outside, 'secret.txt'), 'secret\n');
  return { repo, outside, files: new RepoFiles(repo) };
}

const refusal = (run: () => unknown): string => {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(UnsafePathError);
    return (error as Error).message;
  }
  throw new Error('not refused');
};

describe('paths', () => {
  test.each([
    ['../x', 'points outside the repository'],
    ['/etc/passwd', 'points outside the repository'],
    ['C:/x', 'points outside the repository'],
    ['a\\b', 'points outside the repository'],
    ['a//b', 'is not a normalized path'],
    ['./a', 'is not a normalized path'],
    ['.git/config', 'is inside .git'],
    ['x/.GIT/config', 'is inside .git'],
    ['x/.git. /config', 'is inside .git'],
    ['', 'is not a path'],
    ['a\0b', 'is not a path'],
  ])('%j %s', (path, problem) => {
    expect(repoPathProblem(path)).toBe(problem);
    const { files } = world();
    expect(refusal(() => files.read(path))).toContain(problem);
  });
});

describe('reading', () => {
  test('a regular file, a missing one, a missing parent', () => {
    const { files } = world();
    expect(files.read('dir/file.txt')).toBe('inside\n');
    expect(files.read('dir/missing.txt')).toBeUndefined();
    expect(files.read('missing/file.txt')).toBeUndefined();
  });

  test('symlinks: at the file, at a parent, pointing inside or outside', () => {
    const { repo, outside, files } = world();
    symlinkSync(join(outside, 'secret.txt'), join(repo, 'out.txt'));
    symlinkSync('dir/file.txt', join(repo, 'in.txt'));
    symlinkSync(outside, join(repo, 'outdir'));
    symlinkSync('dir', join(repo, 'indir'));
    expect(refusal(() => files.read('out.txt'))).toMatch(/^out\.txt: is a symbolic link/);
    expect(refusal(() => files.read('in.txt'))).toMatch(/^in\.txt: is a symbolic link/);
    expect(refusal(() => files.read('outdir/secret.txt'))).toMatch(
      /^outdir\/secret\.txt: goes through a symbolic link \(outdir\)/,
    );
    expect(refusal(() => files.read('indir/file.txt'))).toMatch(/goes through a symbolic link/);
  });

  test('special files and directories', () => {
    const { repo, files } = world();
    execFileSync('mkfifo', [join(repo, 'fifo')]);
    expect(refusal(() => files.read('fifo'))).toBe(
      'fifo: is not a regular file (a FIFO); create-cached-deploy reads and writes only regular files (remove it)',
    );
    expect(refusal(() => files.read('dir'))).toMatch(/^dir: is not a regular file \(a directory\)/);
    writeFileSync(join(repo, 'plain'), 'x');
    expect(refusal(() => files.read('plain/below'))).toMatch(
      /^plain\/below: goes through plain, which is not a directory/,
    );
  });

  test('a size cap: at most the cap is read', () => {
    const { repo, files } = world();
    writeFileSync(join(repo, 'big'), 'x'.repeat(2048));
    expect(files.read('big', 2048)).toHaveLength(2048);
    expect(refusal(() => files.read('big', 2047))).toMatch(/^big: is larger than/);
  });

  test('inputs (Dockerfiles) may be symlinks that stay inside, never outside or into .git', () => {
    const { repo, outside, files } = world();
    symlinkSync('dir/file.txt', join(repo, 'Dockerfile'));
    symlinkSync(join(outside, 'secret.txt'), join(repo, 'Outside.Dockerfile'));
    symlinkSync('.git/config', join(repo, 'Git.Dockerfile'));
    expect(files.readInput('Dockerfile')).toBe('inside\n');
    expect(refusal(() => files.readInput('Outside.Dockerfile'))).toMatch(/leads outside/);
    expect(refusal(() => files.readInput('Git.Dockerfile'))).toMatch(/leads into \.git/);
    expect(files.readInput('Missing.Dockerfile')).toBeUndefined();
  });

  test('a listing shows a real directory, its links as links, and never follows one', () => {
    const { repo, outside, files } = world();
    symlinkSync(outside, join(repo, 'away'));
    expect(files.list('.')).toEqual([
      { name: '.git', kind: 'directory' },
      { name: 'away', kind: 'other' },
      { name: 'dir', kind: 'directory' },
    ]);
    expect(files.list('dir')).toEqual([{ name: 'file.txt', kind: 'file' }]);
    expect(files.list('missing')).toBeUndefined();
    expect(refusal(() => files.list('away'))).toMatch(/is a symbolic link/);
    expect(refusal(() => files.list('.git'))).toMatch(/inside \.git/);
  });

  test('inputs (build contexts) are told apart by kind under the same rule', () => {
    const { repo, outside, files } = world();
    symlinkSync('dir', join(repo, 'alias'));
    symlinkSync('.', join(repo, 'self'));
    symlinkSync(outside, join(repo, 'away'));
    symlinkSync('.git', join(repo, 'hidden'));
    expect(files.inputKind('.')).toBe('directory');
    expect(files.inputKind('alias')).toBe('directory');
    expect(files.inputKind('self')).toBe('directory');
    expect(files.inputKind('alias/file.txt')).toBe('file');
    expect(files.inputKind('missing')).toBeUndefined();
    expect(refusal(() => files.inputKind('away'))).toMatch(/leads outside/);
    expect(() => files.inputKind('away')).toThrow(expect.objectContaining({ outside: true }));
    expect(refusal(() => files.inputKind('hidden'))).toMatch(/leads into \.git/);
    expect(refusal(() => files.inputKind('../outside'))).toMatch(/points outside/);
  });
});

describe('writing and deleting', () => {
  test('parents are created one level at a time, never through a symlink', () => {
    const { repo, outside, files } = world();
    files.makeParents('a/b/c.txt');
    files.writeNew('a/b/c.txt', 'new\n');
    expect(readFileSync(join(repo, 'a', 'b', 'c.txt'), 'utf8')).toBe('new\n');
    symlinkSync(outside, join(repo, 'link'));
    expect(refusal(() => files.makeParents('link/x/y.txt'))).toMatch(/symbolic link/);
    expect(existsSync(join(outside, 'x'))).toBe(false);
  });

  test('a new file never replaces an existing path (a symlink included)', () => {
    const { repo, outside, files } = world();
    symlinkSync(join(outside, 'secret.txt'), join(repo, 'trap'));
    expect(() => files.writeNew('trap', 'x')).toThrow(/EEXIST/);
    expect(readFileSync(join(outside, 'secret.txt'), 'utf8')).toBe('secret\n');
  });

  test('remove and replace refuse a symlink and leave its target alone', () => {
    const { repo, outside, files } = world();
    symlinkSync(join(outside, 'secret.txt'), join(repo, 'trap'));
    expect(refusal(() => files.remove('trap'))).toMatch(/symbolic link/);
    files.writeNew('temp', 'x');
    expect(refusal(() => files.replace('temp', 'trap'))).toMatch(/symbolic link/);
    expect(readFileSync(join(outside, 'secret.txt'), 'utf8')).toBe('secret\n');
    files.remove('dir/file.txt');
    expect(existsSync(join(repo, 'dir', 'file.txt'))).toBe(false);
    files.remove('dir/file.txt');
  });
});
