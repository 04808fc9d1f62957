import { CachedDeployError } from '../../errors.js';
import { defaultPolicy, HostConnection, type HostPolicy } from '../../net/host-connection.js';
import type { HostKind } from '../fleet-file.js';
import type { CodeHost } from './host.js';
import type { HostTarget } from './target.js';

/**
 * The code hosts of one run: one client and one connection (rate-limit state, write queue) per API
 * URL and token, created on first use. The clients (`@octokit/rest`, `@gitbeaker/rest`) are
 * imported here, on demand: only `--open-pr` and `--status` ever load them.
 */
export interface CodeHostsOptions {
  /** Where tokens are read (default: this process's environment). */
  env?: NodeJS.ProcessEnv;
  /** Overrides of the transport policy (tests: a clock; the fleet file: `writeIntervalMs`). */
  policy?: Partial<HostPolicy>;
}

export class CodeHosts {
  private readonly hosts = new Map<string, Promise<CodeHost>>();
  private readonly env: NodeJS.ProcessEnv;

  constructor(private readonly options: CodeHostsOptions = {}) {
    this.env = options.env ?? process.env;
  }

  tokenFor(target: Pick<HostTarget, 'tokenEnv'>): string | undefined {
    const token = this.env[target.tokenEnv]?.trim();
    return token ? token : undefined;
  }

  /** The environment variables that `targets` need and that are not set. */
  missingTokens(targets: Iterable<HostTarget>): { name: string; hosts: Set<string> }[] {
    const missing = new Map<string, Set<string>>();
    for (const target of targets) {
      if (this.tokenFor(target)) continue;
      const hosts = missing.get(target.tokenEnv) ?? new Set<string>();
      hosts.add(target.label);
      missing.set(target.tokenEnv, hosts);
    }
    return [...missing].map(([name, hosts]) => ({ name, hosts }));
  }

  get(target: HostTarget): Promise<CodeHost> {
    const token = this.tokenFor(target);
    if (!token) {
      return Promise.reject(
        new CachedDeployError(
          'USAGE',
          `${target.tokenEnv} is not set (a token for ${target.label})`,
        ),
      );
    }
    const key = `${target.kind} ${target.apiUrl} ${target.tokenEnv}`;
    let host = this.hosts.get(key);
    if (!host) {
      host = this.create(target.kind, target, token);
      this.hosts.set(key, host);
    }
    return host;
  }

  /** Every token this run could send: no message, report or file may show one. */
  private secrets(): string[] {
    return Object.entries(this.env)
      .filter(
        ([name, value]) => /TOKEN/i.test(name) && typeof value === 'string' && value.length >= 4,
      )
      .map(([, value]) => value as string);
  }

  private async create(kind: HostKind, target: HostTarget, token: string): Promise<CodeHost> {
    const connection = new HostConnection(
      kind,
      target.label,
      defaultPolicy(kind, this.options.policy),
      [token, ...this.secrets()],
    );
    const options = { apiUrl: target.apiUrl, label: target.label, token, connection };
    if (kind === 'github') {
      const { createGitHubHost } = await import('./github.js');
      return createGitHubHost(options);
    }
    const { createGitLabHost } = await import('./gitlab.js');
    return createGitLabHost(options);
  }
}
