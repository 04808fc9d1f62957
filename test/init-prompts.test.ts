import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { init } from '../src/api/init.js';
import type { Prompter } from '../src/cli/prompts.js';
import { createTempRepo, git } from './support/temp-repo.js';

/**
 * A person at the prompts, scripted: answers by question, and a record of what was asked with
 * which default, so the test can check that init asks only what it cannot detect.
 */
function scriptedPrompter(answers: Record<string, string>) {
  const asked: { message: string; default: string | undefined; choices?: string[] }[] = [];
  const answer = (message: string) => {
    const key = Object.keys(answers).find((fragment) => message.includes(fragment));
    if (key === undefined) throw new Error(`unexpected question: ${message}`);
    return answers[key] as string;
  };
  const prompter: Prompter = {
    async input(question) {
      asked.push({ message: question.message, default: question.default });
      const value = answer(question.message);
      // The prompt library re-asks until validate says yes: a scripted answer must pass it.
      const verdict = question.validate?.(value) ?? true;
      if (verdict !== true) throw new Error(`rejected ${JSON.stringify(value)}: ${verdict}`);
      return value;
    },
    async select(question) {
      asked.push({
        message: question.message,
        default: question.default,
        choices: question.choices.map((choice) => choice.value),
      });
      return answer(question.message);
    },
  };
  return { prompter, asked };
}

describe('init with a person at the prompts', () => {
  it('asks only what it cannot detect, and writes the answers', async () => {
    const repo = createTempRepo({ name: 'orders' });
    const { prompter, asked } = scriptedPrompter({
      'account id': '210987654321',
      'Deploy command': './deploy.sh',
    });
    await init(repo, { prompter, env: { AWS_REGION: 'eu-central-1' } });

    // The region (AWS_REGION), the GitHub repository (origin) and the stages (both Dockerfiles
    // have a stage named runtime) were detected; the account id and the deploy command cannot be.
    expect(asked.map((question) => question.message)).toEqual([
      'AWS account id of the ECR registry',
      'Deploy command run on the main branch after the push (empty for none)',
    ]);
    const config = parse(readFileSync(join(repo, 'cached-deploy.yml'), 'utf8'));
    expect(config.aws).toEqual({ accountId: '210987654321', region: 'eu-central-1' });
    expect(config.github.repository).toBe('acme/orders');
    expect(config.images.map((image: { target: string }) => image.target)).toEqual([
      'runtime',
      'runtime',
    ]);
    expect(config.workflow.deploy.command).toBe('./deploy.sh');
  });

  it('asks for the region, the repository and the stage when they cannot be detected', async () => {
    const repo = createTempRepo({ name: 'orders' });
    git(repo, ['remote', 'remove', 'origin']);
    // No conventionally named stage: which one to deploy is a question.
    writeFileSync(
      join(repo, 'Dockerfile'),
      'FROM node:20 AS base\nFROM base AS build\nRUN true\nFROM base AS server\n',
    );
    rmSync(join(repo, 'worker'), { recursive: true });
    const { prompter, asked } = scriptedPrompter({
      'account id': '210987654321',
      region: 'ap-southeast-2',
      'GitHub repository': 'acme/orders',
      'Stage of Dockerfile': 'build',
      'Deploy command': '',
    });
    await init(repo, { prompter, env: {} });
    const stage = asked.find((q) => q.message === 'Stage of Dockerfile to deploy');
    expect(stage?.choices).toEqual(['base', 'build', 'server']);
    expect(stage?.default).toBe('server');
    const config = parse(readFileSync(join(repo, 'cached-deploy.yml'), 'utf8'));
    expect(config.aws.region).toBe('ap-southeast-2');
    expect(config.github.repository).toBe('acme/orders');
    expect(config.images[0].target).toBe('build');
    expect(config.workflow).toBeUndefined();
  });

  it('--yes asks nothing, even with a person at the prompts', async () => {
    const repo = createTempRepo({ name: 'orders' });
    const { prompter, asked } = scriptedPrompter({});
    await init(repo, { prompter, yes: true, accountId: '123456789012', region: 'eu-west-1' });
    expect(asked).toEqual([]);
  });

  it('an answer the prompt would refuse is refused (validation runs on prompted values)', async () => {
    const repo = createTempRepo({ name: 'orders' });
    const { prompter } = scriptedPrompter({ 'account id': '12' });
    await expect(init(repo, { prompter, env: {} })).rejects.toThrow(
      /not a 12-digit AWS account id/,
    );
  });
});
