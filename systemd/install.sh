#!/usr/bin/env bash
# Installs or removes fleet-telemetry as a systemd service.
#
#   systemd/install.sh install BINARY     # a release binary, e.g. .build/release/fleet-telemetry
#   systemd/install.sh uninstall          # keeps /var/lib/fleet-telemetry (the database)
#   systemd/install.sh uninstall --purge  # also removes the database and the config
#
# Build the binary first, on a machine with Swift, so that it runs without a Swift toolchain:
#   swift build -c release --static-swift-stdlib --product fleet-telemetry
# DESTDIR=/some/root installs into that tree instead (no user, no systemctl): for packaging.
set -euo pipefail

root="${DESTDIR:-}"
here="$(cd "$(dirname "$0")/.." && pwd)"
live() { [ -z "$root" ]; }

install_files() {
  local binary="$1"
  [ -f "$binary" ] && [ -x "$binary" ] || { echo "install.sh: $binary is not an executable file" >&2; exit 64; }
  # The new binary is checked and stripped beside the old one and then renamed over it: a bad
  # file (a script, another architecture) leaves the installed binary in place.
  "$binary" --version 2>/dev/null | grep -q '^fleet-telemetry ' || {
    echo "install.sh: $binary does not run here (\`$binary --version\` failed): not a fleet-telemetry binary for this machine" >&2
    exit 64
  }
  install -d -m 755 "$root/usr/local/bin" "$root/etc/systemd/system" "$root/usr/share/doc/fleet-telemetry"
  local staged="$root/usr/local/bin/.fleet-telemetry.new"
  install -m 755 "$binary" "$staged"
  strip "$staged" 2>/dev/null || echo "install.sh: strip is not available or failed; installing the binary unstripped"
  mv -f "$staged" "$root/usr/local/bin/fleet-telemetry"
  install -m 644 "$here/systemd/fleet-telemetry.service" "$root/etc/systemd/system/fleet-telemetry.service"
  install -m 644 "$here/README.md" "$here/docs/schema.md" "$here/docs/events.md" "$here/docs/units.md" "$here/docs/emulator.md" \
    "$root/usr/share/doc/fleet-telemetry/"
  install -d -m 755 "$root/etc/fleet-telemetry"
  if [ ! -e "$root/etc/fleet-telemetry/config.yaml" ]; then
    install -m 644 "$here/config/fleet-telemetry.yaml" "$root/etc/fleet-telemetry/config.yaml"
  else
    echo "install.sh: keeping the existing /etc/fleet-telemetry/config.yaml"
  fi
  if live; then
    if ! id fleet-telemetry >/dev/null 2>&1; then
      useradd --system --home-dir /var/lib/fleet-telemetry --shell /usr/sbin/nologin fleet-telemetry
    fi
    systemctl daemon-reload 2>/dev/null || echo "install.sh: systemd is not running here; run systemctl daemon-reload on the host"
  fi
  echo "installed $("$root/usr/local/bin/fleet-telemetry" --version) into ${root:-/} ($(du -h "$root/usr/local/bin/fleet-telemetry" | cut -f1) binary)"
  if live; then
    echo "next:"
    echo "  \$EDITOR /etc/fleet-telemetry/config.yaml            # api.base_url, api.client_id, vehicles, metrics.listen"
    echo "  install -m 600 /dev/stdin /etc/fleet-telemetry/hm-client-secret   # paste the secret, Ctrl-D"
    echo "  fleet-telemetry check-config /etc/fleet-telemetry/config.yaml"
    echo "  systemctl enable --now fleet-telemetry && systemctl status fleet-telemetry"
  fi
}

remove_files() {
  local purge="${1:-}"
  if live; then
    systemctl disable --now fleet-telemetry 2>/dev/null || true
  fi
  rm -f "$root/usr/local/bin/fleet-telemetry" "$root/etc/systemd/system/fleet-telemetry.service"
  rm -rf "$root/usr/share/doc/fleet-telemetry"
  if [ "$purge" = "--purge" ]; then
    rm -rf "$root/var/lib/fleet-telemetry" "$root/etc/fleet-telemetry"
    if live; then
      if id fleet-telemetry >/dev/null 2>&1; then userdel fleet-telemetry; fi
      echo "removed fleet-telemetry, its config, its database and its user"
    else
      echo "removed fleet-telemetry, its config and its database from $root"
    fi
  else
    echo "removed fleet-telemetry; kept /etc/fleet-telemetry, /var/lib/fleet-telemetry (the database) and the user"
    echo "  (systemd/install.sh uninstall --purge removes them too)"
  fi
  if live; then systemctl daemon-reload 2>/dev/null || true; fi
}

case "${1:-}" in
  install) [ $# -eq 2 ] || { echo "usage: install.sh install BINARY" >&2; exit 64; }; install_files "$2" ;;
  uninstall)
    if [ $# -gt 2 ] || { [ $# -eq 2 ] && [ "$2" != "--purge" ]; }; then
      echo "usage: install.sh uninstall [--purge]" >&2
      exit 64
    fi
    remove_files "${2:-}" ;;
  *) echo "usage: install.sh install BINARY | uninstall [--purge]" >&2; exit 64 ;;
esac
