/**
 * The healing unit's generated files: its bundle, its configuration from the definition, and the
 * network stack's row for a new DHCP lease. The units themselves are static, in rootfs/.
 *
 * Why two units: pibond-heal.service reacts to every failover and holds only CAP_NET_ADMIN (flush
 * neighbours) in a strict sandbox, as a throw-away user. Getting a lease means running the stack's
 * own DHCP client, which rewrites /etc/resolv.conf, its lease files and addresses with the stack's
 * full privileges: that is pibond-dhcp-renew.service, started by a .path unit when the healer
 * writes /run/pibond-heal/dhcp-renew. A new stack (networkd, NetworkManager, netplan) adds one row
 * to `renewRows`; the healer and the units stay as they are.
 */
import { bundleDeviceProgram } from '../../scripts/lib/bundle.ts';
import type { Definition } from '../../scripts/lib/definition.ts';
import type { OverlayFile, OverlayLink } from '../../scripts/lib/overlay.ts';
import { bondOptions } from '../10-bond-networkmanager/render.ts';
import { configPath, healConfigFile, preleaseDirectory, runtimeDirectory } from './config-file.ts';

export { configPath, healConfigFile, preleaseDirectory, runtimeDirectory } from './config-file.ts';

export const bundlePath = 'usr/lib/pibond/bond-heal.js';
export const renewPath = 'usr/lib/pibond/dhcp-renew';

type Stack = Definition['network']['stack'];

const networkdBody = `    echo "asking systemd-networkd for a new lease on $bond"
    networkctl reconfigure "$bond"
`;

/**
 * Each stack's way to drop the old lease and get one from the router now behind the bond: the body
 * of renew() in the script pibond-dhcp-renew.service runs (renewScript), with $bond set.
 */
const renewRows: Record<Stack, { says: string; body: string | ((def: Definition) => string) }> = {
  // ifup's dhclient is replaced by one that starts from scratch, with ifup's own pid and lease
  // files, so `ifdown` still finds and releases it. Restarting it with the old lease (INIT-REBOOT)
  // would cost a NAK from an authoritative server and 10 s of silence (dhclient's reboot timeout)
  // from one that is not: the old lease is the other router's subnet, so it goes, and dhclient
  // starts with a DISCOVER. The lease file's default-duid stays: it is the Pi's DHCP identity, and
  // without it dhclient makes a new one, which a router holding a lease for the old one (a one-address
  // pool on the test bed) does not answer: the way back never healed.
  // -nw: dhclient returns at once and goes on as a daemon.
  ifupdown: {
    says: 'drop the old lease and start dhclient afresh with ifup\'s own files',
    body: `    pidfile=/run/dhclient.$bond.pid
    leases=/var/lib/dhcp/dhclient.$bond.leases
    # SIGTERM ends dhclient without a release (the old router is not there to hear one). A new
    # dhclient refuses to start while the pid in the pid file lives: wait for it with the shell's
    # own kill -0 (a sleep between tries cost a second per switch under QEMU), then take the file
    # away regardless.
    if [ -s "$pidfile" ] && pid=$(cat "$pidfile") && kill "$pid" 2>/dev/null; then
        i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 5000 ]; do i=$((i + 1)); done
        rm -f "$pidfile"
    fi
    # Keep only the client's DUID: routers hand the same address back to the same DUID.
    if [ -f "$leases" ]; then
        grep '^default-duid ' "$leases" > "$leases.new" || true
        mv -f "$leases.new" "$leases"
    fi
    # The old subnet's address and default route are gone: pibond-heal took them off (and may have
    # put this router's remembered lease on, which the new lease confirms: dhclient-exit-hooks.d).
    echo "asking for a new lease on $bond"
    /sbin/dhclient -4 -nw -v -i -pf "$pidfile" -lf "$leases" -I -df "/var/lib/dhcp/dhclient6.$bond.leases" "$bond"
`,
  },
  // networkd's own way: it drops the bond's addresses and routes and configures it afresh with a
  // new DHCP client, which starts with a DISCOVER; the slaves are other links and stay.
  networkd: { says: 'networkd configures the bond afresh, its DHCP client included', body: networkdBody },
  netplan: { says: 'netplan renders to networkd, which configures the bond afresh, its DHCP client included', body: networkdBody },
  networkmanager: {
    says: 'a change to the bond\'s applied DHCP timeout restarts its DHCP client, without the old lease',
    body: networkManagerBody,
  },
};

/**
 * NetworkManager keeps a bond's lease across a failover: the bond's carrier never dropped, and NM
 * ignores a bond's carrier anyway. A change to the device's applied IPv4 settings (not the
 * profile) restarts its DHCP client on the bond alone: the slaves stay enslaved, and the old
 * address stays until the new lease replaces it. (Turning IPv4 off and on instead failed the whole
 * bond on the test bed: with IPv4 off and no IPv6 router, NM found no IP configuration at all,
 * failed the device and took the bond down with its slaves.) The change is to the DHCP timeout,
 * alternately 44 and 46 s, so that each renewal differs from the last. The new client would first
 * ask for the old address (INIT-REBOOT: 2 s of silence from a router that is not authoritative)
 * unless the old lease file is gone: then it starts with a DISCOVER (NM 1.42.4, nm-dhcp-nettools.c).
 * Every change applied to a bond also writes its bond options, the primary among them: the options
 * go with the primary the kernel has now, or pibond-uplink's choice would be undone.
 */
function networkManagerBody(def: Definition): string {
  const { bond } = def;
  const options = bondOptions(bond, '$primary', ' ');
  return `    primary=$(cat "\${SYSFS_ROOT:-/sys}/class/net/$bond/bonding/primary" 2>/dev/null || true)
    primary=\${primary:-${bond.primary}}
    count="\${RUNTIME_DIRECTORY:-/run/pibond-dhcp-renew}/renewals"
    renewals=$(( $(cat "$count" 2>/dev/null || echo 0) + 1 ))
    echo "$renewals" > "$count"
    rm -f "\${NM_STATE_DIR:-/var/lib/NetworkManager}"/internal-*-"$bond".lease
    echo "asking NetworkManager for a new lease on $bond"
    nmcli --wait 5 device modify "$bond" ipv4.dhcp-timeout $((44 + renewals % 2 * 2)) bond.options "${options.join(',')}"
`;
}

/**
 * The script: the stack's row as renew(), run again while pibond-heal asked anew during a run.
 * systemd does not start a unit its .path triggers while that unit still runs, so a request made
 * meanwhile (the next switch, when the bond flaps) would be lost: nmcli alone takes seconds under
 * QEMU, and on the test bed 5 of 11 failbacks never healed before this loop.
 */
export function renewScript(def: Definition): string {
  const row = renewRows[def.network.stack];
  const body = typeof row.body === 'string' ? row.body : row.body(def);
  return `#!/bin/sh
# pibond-dhcp-renew.service runs this when pibond-heal found that the router behind the bond's new
# active slave does not answer at the old gateway (it serves another subnet). The ${def.network.stack} row:
# ${row.says}.
set -eu
bond=\${BOND:?BOND is not set: /etc/default/pibond-heal is missing}
# pibond-heal writes a new line there for every request.
request=\${REQUEST:-${runtimeDirectory}/dhcp-renew}

renew() {
${body}}

while :; do
    seen=$(cat "$request" 2>/dev/null || true)
    renew
    [ "$(cat "$request" 2>/dev/null || true)" != "$seen" ] || break
    echo "another switch asked for a new lease meanwhile: again"
done
`;
}

export const exitHookPath = 'etc/dhcp/dhclient-exit-hooks.d/pibond-heal';

/**
 * ifupdown's half of a reused lease (healer.ts: reuseLeases), sourced by dhclient-script after each
 * lease. pibond-heal may have put the router's remembered lease on the bond before dhclient asked
 * for it: dhclient-script's `ip addr add` then fails on the address that is there already, which
 * keeps pibond-heal's shorter lifetime, so the lease's own is set here. An address or default
 * route the new lease does not name (a remembered lease the router did not confirm) goes.
 */
export function exitHook(def: Definition): string {
  return `# Written by pibond (overlays/15-bond-heal): the lease dhclient got on ${def.bond.name} replaces
# whatever pibond-heal put on ahead of it. Sourced by dhclient-script: no exit here.
if [ "$interface" = "${def.bond.name}" ] && { [ "$reason" = BOUND ] || [ "$reason" = REBOOT ]; }; then
    ip -4 addr replace "$new_ip_address\${new_subnet_mask:+/$new_subnet_mask}" \\
        \${new_broadcast_address:+broadcast $new_broadcast_address} \\
        \${new_dhcp_lease_time:+valid_lft $new_dhcp_lease_time preferred_lft $new_dhcp_lease_time} \\
        dev "$interface" label "$interface"
    for pibond_other in $(ip -4 -o addr show dev "$interface" scope global | sed -n 's|.* inet \\([0-9.]*/[0-9]*\\) .*|\\1|p'); do
        [ "\${pibond_other%/*}" = "$new_ip_address" ] || ip -4 addr del "$pibond_other" dev "$interface"
    done
    # With classless static routes the default route need not be through new_routers: left alone.
    if [ -z "$new_rfc3442_classless_static_routes" ]; then
        for pibond_via in $(ip -4 route show default dev "$interface" | sed -n 's/^default via \\([0-9.]*\\).*/\\1/p'); do
            case " $new_routers " in
                *" $pibond_via "*) ;;
                *) ip -4 route del default via "$pibond_via" dev "$interface" ;;
            esac
        done
    fi
fi
`;
}

export const preleasePath = 'usr/lib/pibond/dhcp-prelease';
/** How long the prelease waits for each backup router's lease, in tenths of a second. */
const preleaseWaitTenths = 300;
export const preleaseUnitPath = 'usr/lib/systemd/system/pibond-dhcp-prelease.service';

/**
 * ifupdown's lease from each backup router, taken at boot through the backup slave alone, so that
 * even the first switch to that router puts a lease on at once (healer.ts: preleaseDirectory)
 * instead of waiting for a DHCP exchange (2.5-6 s under emulation). The bonding driver drops what
 * a backup slave receives, but not for a packet socket bound to that slave, which is what dhclient
 * uses; the slave carries the bond's MAC, and dhclient is given the bond's DUID, so its client
 * identifier (RFC 4361: the MAC's last four bytes and the DUID) is the one the bond's dhclient
 * presents later: the router keeps one lease for the Pi, not two. Its script is /bin/true: nothing
 * is configured on the slave. Once the lease is written dhclient is stopped (SIGTERM: no release).
 */
export function preleaseScript(): string {
  return `#!/bin/sh
# pibond-dhcp-prelease.service runs this once, when the network is up: see overlays/15-bond-heal/render.ts.
set -eu
# A card's settings may have made the addressing static (overlays/05-card rewrites the healer's file).
if ! grep -q '"dhcp": true' "\${HEAL_CONFIG:-/${configPath}}"; then
    echo "static addressing: no lease to take"
    exit 0
fi
bond=\${BOND:?BOND is not set: /etc/default/pibond-heal is missing}
dir=\${RUNTIME_DIRECTORY:-${preleaseDirectory}}
net=\${SYSFS_ROOT:-/sys}/class/net
state=\${DHCP_STATE:-/var/lib/dhcp}
active=$(cat "$net/$bond/bonding/active_slave" 2>/dev/null || true)
mac=$(cat "$net/$bond/address")
for slave in $(cat "$net/$bond/bonding/slaves"); do
    [ "$slave" != "$active" ] || continue
    # With fail_over_mac a slave keeps a MAC of its own: a lease for it would be another client's.
    if [ "$(cat "$net/$slave/address")" != "$mac" ]; then
        echo "$slave: its MAC is not the bond's, no lease asked"
        continue
    fi
    leases=$dir/$slave.leases
    grep '^default-duid ' "$state/dhclient.$bond.leases" > "$leases" 2>/dev/null || : > "$leases"
    echo "asking the router behind $slave for a lease, through $slave alone"
    dhclient -4 -d -1 -i -I -sf /bin/true -pf "$dir/$slave.pid" -lf "$leases" -df "$state/dhclient6.$bond.leases" "$slave" 2>/dev/null &
    client=$!
    i=0
    while ! grep -q '^  fixed-address ' "$leases" && kill -0 "$client" 2>/dev/null && [ $i -lt ${preleaseWaitTenths} ]; do
        sleep 0.1
        i=$((i + 1))
    done
    kill "$client" 2>/dev/null || true
    wait "$client" 2>/dev/null || true
    chmod 0644 "$leases"
    if grep -q '^  fixed-address ' "$leases"; then
        echo "$slave: $(grep -m1 '^  fixed-address ' "$leases" | tr -d ' ;'), $(grep -m1 '^  option routers ' "$leases" | tr -d ';' | sed 's/^ *option //')"
    else
        echo "$slave: no lease within ${preleaseWaitTenths / 10} s"
    fi
done
`;
}

const preleaseUnit = `# pibond: a lease from each backup router, taken at boot (ifupdown). The script says why.
[Unit]
Description=pibond: a DHCP lease from each backup router, for the first switch to it
Documentation=file:///${preleasePath}
Wants=network-online.target
After=network-online.target networking.service

[Service]
# Not oneshot: a backup router that does not answer must not hold the boot for the wait.
Type=simple
EnvironmentFile=/etc/default/pibond-heal
ExecStart=/${preleasePath}
# pibond-heal (another, unprivileged user) reads the lease files.
RuntimeDirectory=pibond-dhcp-prelease
RuntimeDirectoryMode=0755
RuntimeDirectoryPreserve=yes
# dhclient is stopped by the script; nothing of it outlives the run.
KillMode=control-group
# Confinement: dhclient needs a packet socket (CAP_NET_RAW), port 68 and the slave's flags; it
# writes only the runtime directory, and reads the bond's DUID.
CapabilityBoundingSet=CAP_NET_RAW CAP_NET_BIND_SERVICE CAP_NET_ADMIN
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictAddressFamilies=AF_PACKET AF_INET AF_INET6 AF_UNIX AF_NETLINK

[Install]
WantedBy=multi-user.target
`;

export async function render(def: Definition): Promise<(OverlayFile | OverlayLink)[]> {
  const ifupdown: (OverlayFile | OverlayLink)[] =
    def.network.stack === 'ifupdown'
      ? [
          { path: exitHookPath, content: exitHook(def), mode: 0o644 },
          { path: preleasePath, content: preleaseScript(), mode: 0o755 },
          { path: preleaseUnitPath, content: preleaseUnit, mode: 0o644 },
          { path: 'etc/systemd/system/multi-user.target.wants/pibond-dhcp-prelease.service', target: `/${preleaseUnitPath}` },
        ]
      : [];
  return [
    ...ifupdown,
    { path: bundlePath, content: await bundle(), mode: 0o644 },
    healConfigFile(def),
    { path: 'etc/default/pibond-heal', content: `# Written by pibond: the bond that pibond-dhcp-renew.service renews the lease of.\nBOND=${def.bond.name}\n`, mode: 0o644 },
    { path: renewPath, content: renewScript(def), mode: 0o755 },
  ];
}

/** The program, bundled for the device (scripts/lib/bundle.ts). */
export function bundle(): Promise<Buffer> {
  return bundleDeviceProgram(import.meta.dirname, 'bond-heal');
}
