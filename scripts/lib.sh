# Shared set-up for scripts/run and scripts/test. Idempotent: each step checks before it acts.
# Sourced, not run. Needs root (apt-get, libvirtd).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
export VDI_DATA_DIR="${VDI_DATA_DIR:-/var/lib/vdi-portal}"
export PATH="$VENV/bin:$PATH"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

APT_PACKAGES=(qemu-system-x86 qemu-utils libvirt-daemon-system libvirt-clients libvirt-dev
  pkg-config redis-server busybox-static e2fsprogs python3-venv python3-dev gcc nodejs npm
  ca-certificates)

need_root() {
  if [ "$(id -u)" != 0 ]; then echo "Run this as root (it installs packages and starts libvirtd)." >&2; exit 1; fi
}

install_apt() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  # node and npm may come from elsewhere (nodesource); accept them if they are on the PATH.
  if command -v node >/dev/null && command -v npm >/dev/null; then
    missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
  fi
  local todo=(); for pkg in "${missing[@]}"; do [ -n "$pkg" ] && todo+=("$pkg"); done
  [ ${#todo[@]} -eq 0 ] && return 0
  say "Installing Debian packages: ${todo[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${todo[@]}"
}

prepare_kvm_device() {
  # libvirt checks /dev/kvm as the qemu user; without access it re-probes QEMU's capabilities
  # on every call (30 s each). udev normally sets these modes; there is no udev here.
  if [ -c /dev/kvm ]; then chgrp kvm /dev/kvm 2>/dev/null || true; chmod 660 /dev/kvm || true; fi
}

prepare_data_dir() {
  # QEMU runs as libvirt-qemu and must traverse every folder above an image or disk.
  mkdir -p "$VDI_DATA_DIR"/{images,disks,logs,kernel}
  chmod 755 "$VDI_DATA_DIR" "$VDI_DATA_DIR"/{images,disks,logs}
  if [ ! -s "$VDI_DATA_DIR/secret_key" ] && [ -z "${VDI_SECRET_KEY:-}" ]; then
    say "Creating $VDI_DATA_DIR/secret_key"
    (umask 077; python3 -c 'import secrets; print(secrets.token_urlsafe(50))' > "$VDI_DATA_DIR/secret_key")
  fi
}

unpack_kernel() {
  # The tiny image boots a Debian kernel; unpacking its .deb avoids installing it on the host.
  local dir="$VDI_DATA_DIR/kernel"
  if compgen -G "$dir/boot/vmlinuz-*" >/dev/null; then return 0; fi
  local pkg
  pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  if [ -z "$pkg" ]; then apt-get update -qq; pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'); fi
  say "Unpacking $pkg into $dir"
  local tmp; tmp=$(mktemp -d); chmod 755 "$tmp"
  (cd "$tmp" && apt-get download -q "$pkg" 2>&1 | grep -v "^W: Download is performed unsandboxed" || true)
  dpkg-deb -x "$tmp"/*.deb "$dir"
  rm -rf "$tmp"
}

install_python() {
  local stamp="$VENV/.installed" want
  want=$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
  say "Installing the project into $VENV"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  { "$VENV/bin/pip" install -q --upgrade pip && "$VENV/bin/pip" install -q -e "$ROOT[dev]"; } \
    >"$VENV/pip.log" 2>&1 || { cat "$VENV/pip.log"; echo "pip install failed" >&2; exit 1; }
  echo "$want" > "$stamp"
}

install_frontend() {
  local stamp="$ROOT/frontend/node_modules/.installed" want
  want=$(sha256sum "$ROOT/frontend/package-lock.json" | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
  say "Installing noVNC from the npm registry (npm ci)"
  (cd "$ROOT/frontend" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" > "$stamp"
}

start_services() {
  if ! pgrep -x virtlogd >/dev/null; then say "Starting virtlogd"; virtlogd -d; fi
  if ! pgrep -x libvirtd >/dev/null; then say "Starting libvirtd"; libvirtd -d; fi
  for _ in $(seq 50); do virsh -c qemu:///system version >/dev/null 2>&1 && break; sleep 0.2; done
  if ! redis-cli -u "${REDIS_URL:-redis://127.0.0.1:6379/0}" ping >/dev/null 2>&1; then
    say "Starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
    for _ in $(seq 50); do redis-cli ping >/dev/null 2>&1 && break; sleep 0.1; done
  fi
}

prepare_database() {
  (cd "$ROOT" && python manage.py migrate --noinput -v 0)
  (cd "$ROOT" && python manage.py collectstatic --noinput -v 0)
  (cd "$ROOT" && python manage.py build_tiny_image --if-missing)
}

common_setup() {
  need_root
  install_apt "${APT_PACKAGES[@]}" "$@"
  prepare_kvm_device
  prepare_data_dir
  unpack_kernel
  install_python
  install_frontend
  start_services
}
