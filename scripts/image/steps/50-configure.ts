/** The admin account, time zone and locale; per-device secrets and ids removed for first boot. */
import { execIn } from '../../lib/docker.ts';
import { type Step, paths, requireContainer } from '../context.ts';

export const configure: Step = {
  title: 'Configure the system',
  async run(ctx) {
    const { docker, container } = requireContainer(ctx);
    await execIn(docker, container, [`${paths.tools}/configure-rootfs`, paths.rootfs], {
      sink: ctx.progress.sink,
      env: {
        ADMIN_USER: ctx.def.admin.name,
        AUTHORIZED_KEYS: ctx.def.admin.authorized_keys.map((key) => `${key}\n`).join(''),
        TIMEZONE: ctx.def.timezone,
        LOCALE: ctx.def.locale,
        // useradd and passwd date the accounts' last password change with it.
        SOURCE_DATE_EPOCH: String(ctx.options.sourceDateEpoch),
      },
    });
  },
};
