/** The admin account, time zone and locale; per-device secrets and ids removed for first boot. */
import { UserError } from '../../lib/errors.ts';
import { type Step, paths, runTool, verifyTools } from '../context.ts';

/** Accounts Debian's base packages make: an admin by one of these names would take over a system account. */
const systemAccounts = new Set([
  'root', 'daemon', 'bin', 'sys', 'sync', 'games', 'man', 'lp', 'mail', 'news', 'uucp', 'proxy', 'www-data', 'backup',
  'list', 'irc', 'gnats', 'nobody', '_apt', 'messagebus', 'sshd', 'systemd-network', 'systemd-resolve', 'systemd-timesync',
]);

export function checkAdminName(name: string): void {
  if (systemAccounts.has(name)) throw new UserError(`admin.name "${name}" is a system account of Debian's; choose another name, like pi or admin (field "admin.name")`);
}

export const configure: Step = {
  title: 'Configure the system',
  async verify(ctx) {
    checkAdminName(ctx.def.admin.name);
    await verifyTools('configure-rootfs.mjs');
  },
  async run(ctx) {
    await runTool(ctx, 'configure-rootfs.mjs', [
      {
        root: paths.rootfs,
        adminUser: ctx.def.admin.name,
        authorizedKeys: ctx.def.admin.authorized_keys,
        timezone: ctx.def.timezone,
        locale: ctx.def.locale,
        sourceDateEpoch: ctx.options.sourceDateEpoch,
      },
    ]);
  },
};
