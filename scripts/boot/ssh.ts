/**
 * Logging in to a test boot over SSH, as the admin, with the boot's access key (scripts/boot/card.ts):
 * what a user does with the `ssh` command `pibond boot` prints, done in Node so the host needs no
 * ssh client. The guest's host keys were made at its first boot, so there is nothing to check them against.
 */
// ssh2 is CommonJS: Node's ESM loader sees only its default export.
import ssh2 from 'ssh2';

export interface SshResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `command` on 127.0.0.1:`port` as `user`; rejects when the login fails or `timeoutMs` passes. */
export function sshRun(port: number, user: string, privateKey: string, command: string, timeoutMs: number): Promise<SshResult> {
  return new Promise((resolve, reject) => {
    const client = new ssh2.Client();
    const timer = setTimeout(() => {
      client.end();
      reject(new Error(`ssh ${user}@127.0.0.1 -p ${port}: no answer to "${command}" within ${timeoutMs} ms`));
    }, timeoutMs);
    const fail = (err: Error) => {
      clearTimeout(timer);
      client.end();
      reject(new Error(`ssh ${user}@127.0.0.1 -p ${port}: ${err.message}`));
    };
    client.on('error', fail);
    client.on('ready', () => {
      client.exec(command, (err, stream) => {
        if (err) return fail(err);
        let stdout = '';
        let stderr = '';
        stream.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
        stream.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
        stream.on('close', (code: number | null) => {
          clearTimeout(timer);
          client.end();
          resolve({ code, stdout, stderr });
        });
      });
    });
    client.connect({ host: '127.0.0.1', port, username: user, privateKey, readyTimeout: timeoutMs, hostVerifier: () => true });
  });
}
