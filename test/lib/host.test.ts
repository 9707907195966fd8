import { afterEach, describe, expect, it } from 'vitest';
import { ensureLocalDockerEngine } from '../../scripts/lib/host.ts';
import { UserError } from '../../scripts/lib/errors.ts';

const saved = process.env['DOCKER_HOST'];
afterEach(() => {
  if (saved === undefined) delete process.env['DOCKER_HOST'];
  else process.env['DOCKER_HOST'] = saved;
});

describe('ensureLocalDockerEngine', () => {
  it('refuses an engine elsewhere for what needs this machine\'s files and network, before connecting', async () => {
    // Nothing listens there: a refusal that tried to connect first would be another error.
    process.env['DOCKER_HOST'] = 'tcp://192.0.2.1:2375';
    const err = await ensureLocalDockerEngine(() => {}, 'A test boot').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toMatch(/^A test boot needs the Docker engine of this machine, and DOCKER_HOST=tcp:\/\/192\.0\.2\.1:2375 is not on a local socket/);
    expect((err as Error).message).toContain('Builds work with any engine.');
  });
});
