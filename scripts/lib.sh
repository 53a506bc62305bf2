# Shared set-up for scripts/run and scripts/test. Idempotent: each step checks before it acts.
# Sourced, not run. Needs root (apt-get, libvirtd, the service user).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
export VDI_DATA_DIR="${VDI_DATA_DIR:-/var/lib/vdi-portal}"
export VDI_SECRETS_DIR="${VDI_SECRETS_DIR:-$VDI_DATA_DIR/secrets}"
export PATH="$VENV/bin:$PATH"
export VDI_SERVICE_USER="${VDI_SERVICE_USER:-vdi-portal}"
SERVICE_USER="$VDI_SERVICE_USER"
LIBVIRT_GROUP=libvirt
SYSTEM_PYTHON=/usr/bin/python3
CONF_DIR=/etc/vdi-portal

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

APT_PACKAGES=(qemu-system-x86 qemu-utils libvirt-daemon-system libvirt-clients libvirt-dev
  pkg-config redis-server busybox-static e2fsprogs python3 python3-venv python3-dev gcc nodejs
  npm ca-certificates acl mmdebstrap uidmap dosfstools mtools ovmf swtpm swtpm-tools iputils-ping
  libguestfs-tools xorriso isolinux syslinux-common extlinux libldap2-dev libsasl2-dev)

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
  refuse_slapd_start
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${todo[@]}" ||
    { allow_service_starts; return 1; }
  allow_service_starts
}

# Debian's slapd package starts a system directory listening on every address as it installs.
# The tests start their own slapd on 127.0.0.1; the system's must never run. While apt
# installs, a policy-rc.d refuses slapd's start (a machine with a policy-rc.d of its own, such
# as a container refusing every start, keeps it); then disable_system_slapd stops and disables
# it, whichever way it was installed.
POLICY_RC=/usr/sbin/policy-rc.d
POLICY_RC_MARK="# vdi-portal: refuses slapd while apt installs"

refuse_slapd_start() {
  [ -e "$POLICY_RC" ] && return 0
  printf '#!/bin/sh\n%s\nfor arg; do case "$arg" in -*) ;; slapd) exit 101 ;; *) exit 0 ;; esac; done\nexit 0\n' \
    "$POLICY_RC_MARK" >"$POLICY_RC"
  chmod 755 "$POLICY_RC"
}

allow_service_starts() {
  if [ -f "$POLICY_RC" ] && grep -qF "$POLICY_RC_MARK" "$POLICY_RC"; then rm -f "$POLICY_RC"; fi
}

disable_system_slapd() {
  [ -x /usr/sbin/slapd ] || return 0
  local pidfile=/run/slapd/slapd.pid
  if [ -d /run/systemd/system ]; then
    if systemctl is-active --quiet slapd; then
      say "Stopping the system's slapd (the tests start their own, on 127.0.0.1)"
    fi
    systemctl mask --now slapd >/dev/null 2>&1 || true
  elif [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    say "Stopping the system's slapd (the tests start their own, on 127.0.0.1)"
    kill "$(cat "$pidfile")"
  fi
  update-rc.d slapd disable >/dev/null 2>&1 || true
}

prepare_swtpm() {
  # libvirt runs swtpm (the TPM of Windows-ready desktops) as user tss; a certificate
  # authority made earlier by root would stop it.
  if id tss >/dev/null 2>&1 && [ -d /var/lib/swtpm-localca ]; then
    chown -R tss:root /var/lib/swtpm-localca
  fi
}

prepare_kvm_device() {
  # libvirt checks /dev/kvm as the qemu user; without access it re-probes QEMU's capabilities
  # on every call (30 s each). udev normally sets these modes; there is no udev here.
  if [ -c /dev/kvm ]; then chgrp kvm /dev/kvm 2>/dev/null || true; chmod 660 /dev/kvm || true; fi
}

prepare_service_user() {
  # daphne, the worker and beat run as this unprivileged user; it reaches libvirtd through
  # the socket group of the project's libvirtd configuration.
  if ! id "$SERVICE_USER" >/dev/null 2>&1; then
    say "Creating the service user $SERVICE_USER"
    useradd --system --user-group --home-dir "$VDI_DATA_DIR/run" --no-create-home \
      --shell /usr/sbin/nologin "$SERVICE_USER"
  fi
  getent group "$LIBVIRT_GROUP" >/dev/null || groupadd --system "$LIBVIRT_GROUP"
  # Subordinate ids: the worker builds desktop images unprivileged, in a user namespace.
  grep -q "^$SERVICE_USER:" /etc/subuid 2>/dev/null ||
    usermod --add-subuids 200000-265535 --add-subgids 200000-265535 "$SERVICE_USER"
  # libvirt's group socket; and QEMU's group: while a guest runs, libvirt gives its disks to
  # libvirt-qemu:libvirt-qemu (mode kept, 0660), which the worker still reads and writes
  # (live snapshots' qemu-img -U, backups), as a member of that group.
  local group
  for group in "$LIBVIRT_GROUP" libvirt-qemu; do
    getent group "$group" >/dev/null || continue
    id -nG "$SERVICE_USER" | tr ' ' '\n' | grep -qx "$group" || usermod -a -G "$group" "$SERVICE_USER"
  done
  # The service user must reach the code and the virtualenv: let it traverse (not list) the
  # folders above the checkout that would stop it (a checkout under /root, say).
  local dir="$ROOT"
  while [ "$dir" != / ]; do
    if ! setpriv --reuid="$SERVICE_USER" --regid="$SERVICE_USER" --init-groups test -x "$dir" 2>/dev/null; then
      say "Letting $SERVICE_USER traverse $dir (ACL u:$SERVICE_USER:x)"
      setfacl -m "u:$SERVICE_USER:x" "$dir"
    fi
    dir=$(dirname "$dir")
  done
  # and read the checkout itself: Python lists a folder to import from it (a checkout in a
  # private folder, such as mktemp -d's, otherwise hides the project's packages from it).
  if ! setpriv --reuid="$SERVICE_USER" --regid="$SERVICE_USER" --init-groups test -r "$ROOT" 2>/dev/null; then
    say "Letting $SERVICE_USER read $ROOT (ACL u:$SERVICE_USER:rx)"
    setfacl -m "u:$SERVICE_USER:rx" "$ROOT"
  fi
}

move_legacy_secret() {
  # Earlier versions kept secrets at the top of the data folder.
  local name=$1
  if [ -e "$VDI_DATA_DIR/$name" ] && [ ! -e "$VDI_SECRETS_DIR/$name" ]; then
    say "Moving $VDI_DATA_DIR/$name into $VDI_SECRETS_DIR"
    mv "$VDI_DATA_DIR/$name" "$VDI_SECRETS_DIR/$name"
  fi
}

prepare_data_dir() {
  # Every folder a feature needs, with its owner and mode, from the one table in
  # vdi/folders.py (QEMU, as libvirt-qemu, traverses the shared ones; the private ones are
  # the service user's alone; secrets 0700, their files 0600).
  PYTHONPATH="$ROOT" "$SYSTEM_PYTHON" -m vdi.folders --user "$SERVICE_USER" >/dev/null
  # QEMU traverses every image folder (folders made before they were always 0755 too).
  find "$VDI_DATA_DIR/images" -type d ! -perm -0755 -exec chmod 755 {} +
  for name in secret_key portal.sqlite3 portal.sqlite3-wal portal.sqlite3-shm demo-credentials.txt; do
    move_legacy_secret "$name"
  done
  if [ ! -s "$VDI_SECRETS_DIR/secret_key" ] && [ -z "${VDI_SECRET_KEY:-}" ]; then
    say "Creating $VDI_SECRETS_DIR/secret_key"
    (umask 077; python3 -c 'import secrets; print(secrets.token_urlsafe(50))' > "$VDI_SECRETS_DIR/secret_key")
  fi
  # Every secret belongs to the service user and nobody else may read it.
  find "$VDI_SECRETS_DIR" -mindepth 1 -maxdepth 1 -type f -exec chown "$SERVICE_USER:$SERVICE_USER" {} + \
    -exec chmod 600 {} +
}

unpack_kernel() {
  # The tiny image boots a Debian kernel; unpacking its .deb avoids installing it on the host.
  local dir="${VDI_KERNEL_DIR:-$VDI_DATA_DIR/kernel}"
  if compgen -G "$dir/boot/vmlinuz-*" >/dev/null; then return 0; fi
  local pkg
  pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  if [ -z "$pkg" ]; then apt-get update -qq; pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'); fi
  say "Unpacking $pkg into $dir"
  mkdir -p "$dir"
  local tmp; tmp=$(mktemp -d); chmod 755 "$tmp"
  (cd "$tmp" && apt-get download -q "$pkg" 2>&1 | grep -v "^W: Download is performed unsandboxed" || true)
  dpkg-deb -x "$tmp"/*.deb "$dir"
  rm -rf "$tmp"
}

prepare_guestfs() {
  # Publishing an install desktop cleans its disk with virt-sysprep, which boots libguestfs'
  # appliance. It is made once (fixed) from the host's kernel, or from the unpacked one
  # when the host has none; supermin then also wants a /lib/modules, given in a private
  # mount namespace only. The service user runs it without root. (Made under software
  # emulation: the appliance hangs under the KVM of some machines; it is made once.)
  local dir="$VDI_DATA_DIR/guestfs-appliance"
  [ -s "$dir/root" ] && [ -s "$dir/kernel" ] && return 0
  say "Making libguestfs' appliance in $dir (once)"
  local kdir="${VDI_KERNEL_DIR:-$VDI_DATA_DIR/kernel}" kver
  kver=$(ls "$kdir/lib/modules" | head -n1)
  rm -rf "$dir.partial"
  if compgen -G "/boot/vmlinuz-*" >/dev/null && [ -d /lib/modules ]; then
    LIBGUESTFS_BACKEND=direct LIBGUESTFS_BACKEND_SETTINGS=force_tcg libguestfs-make-fixed-appliance "$dir.partial"
  else
    depmod -b "$kdir" "$kver"
    local overlay; overlay=$(mktemp -d); mkdir -p "$overlay/upper/modules" "$overlay/work"
    SUPERMIN_KERNEL="$kdir/boot/vmlinuz-$kver" SUPERMIN_MODULES="$kdir/lib/modules/$kver" \
    SUPERMIN_KERNEL_VERSION="$kver" LIBGUESTFS_BACKEND=direct LIBGUESTFS_BACKEND_SETTINGS=force_tcg \
      unshare -m --propagation private sh -c '
        [ -e /lib/modules ] || mount -t overlay overlay \
          -o "lowerdir=/usr/lib,upperdir=$0/upper,workdir=$0/work" /usr/lib
        exec libguestfs-make-fixed-appliance "$1"' "$overlay" "$dir.partial"
    rm -rf "$overlay"
  fi
  chmod -R a+rX "$dir.partial"
  mv "$dir.partial" "$dir"
}

install_python() {
  # Debian's own Python: the service user can run it (a Python under /root could not).
  local stamp="$VENV/.installed" want
  want=$(cat "$ROOT/pyproject.toml" "$ROOT/requirements.lock" | sha256sum | cut -d' ' -f1)
  if [ -x "$VENV/bin/python" ] && [ "$("$VENV/bin/python" -c 'import sys; print(sys.base_prefix)')" != /usr ]; then
    say "Recreating $VENV on Debian's Python ($SYSTEM_PYTHON)"
    rm -rf "$VENV"
  fi
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
  say "Installing the project into $VENV (from requirements.lock, hashes checked)"
  [ -x "$VENV/bin/python" ] || "$SYSTEM_PYTHON" -m venv "$VENV"
  { "$VENV/bin/pip" install -q --upgrade pip \
      && "$VENV/bin/pip" install -q --require-hashes --no-deps -r "$ROOT/requirements.lock" \
      && "$VENV/bin/pip" install -q --no-deps --no-build-isolation -e "$ROOT"; } \
    >"$VENV/pip.log" 2>&1 || { cat "$VENV/pip.log"; echo "pip install failed" >&2; exit 1; }
  echo "$want" > "$stamp"
}

install_frontend() {
  local stamp="$ROOT/frontend/node_modules/.installed" want
  want=$(sha256sum "$ROOT/frontend/package-lock.json" | cut -d' ' -f1)
  if ! [ -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    say "Installing noVNC and esbuild from the npm registry (npm ci)"
    (cd "$ROOT/frontend" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" > "$stamp"
  fi
  # The console's bundle (noVNC and the page in one minified file): a build takes well
  # under a second, so it is made every time and never stale.
  (cd "$ROOT/frontend" && npm run --silent build -- --log-level=warning)
}

write_libvirtd_conf() {
  # The project's own libvirtd configuration: the read-write socket belongs to a group the
  # service user is in, and needs no polkit (Debian's default asks polkitd over D-Bus).
  mkdir -p "$CONF_DIR"
  cat > "$CONF_DIR/libvirtd.conf.new" <<EOF
# Written by the VDI portal's set-up (scripts/lib.sh); libvirtd runs with -f this file.
unix_sock_group = "$LIBVIRT_GROUP"
unix_sock_ro_perms = "0770"
unix_sock_rw_perms = "0770"
auth_unix_ro = "none"
auth_unix_rw = "none"
EOF
  mv "$CONF_DIR/libvirtd.conf.new" "$CONF_DIR/libvirtd.conf"
}

libvirtd_is_ours() {
  local sock=/run/libvirt/libvirt-sock pid
  [ -S "$sock" ] && [ "$(stat -c %G:%a "$sock")" = "$LIBVIRT_GROUP:770" ] || return 1
  pid=$(cat /run/libvirtd.pid 2>/dev/null) || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- "-f $CONF_DIR/libvirtd.conf"
}

start_libvirtd() {
  write_libvirtd_conf
  if pgrep -x libvirtd >/dev/null && ! libvirtd_is_ours; then
    say "Restarting libvirtd with the project's configuration ($CONF_DIR/libvirtd.conf); guests keep running"
    local pid; pid=$(cat /run/libvirtd.pid 2>/dev/null || pgrep -xo libvirtd)
    kill -TERM "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  if ! pgrep -x libvirtd >/dev/null; then say "Starting libvirtd"; libvirtd -d -f "$CONF_DIR/libvirtd.conf"; fi
  for _ in $(seq 100); do virsh -c qemu:///system version >/dev/null 2>&1 && break; sleep 0.2; done
}

redis_listening() { (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; }

start_redis() {
  # Redis (one per machine, like libvirtd) with a password generated here, kept root-only in
  # $CONF_DIR and handed to every process through REDIS_URL; it listens on 127.0.0.1 only.
  local secret="$CONF_DIR/redis_password" conf="$CONF_DIR/redis.conf"
  mkdir -p "$CONF_DIR"; chmod 755 "$CONF_DIR"
  [ -s "$secret" ] || (umask 077; python3 -c 'import secrets; print(secrets.token_hex(24))' > "$secret")
  local password; password=$(cat "$secret")
  (umask 077; printf 'bind 127.0.0.1\nport 6379\nrequirepass %s\nsave ""\nappendonly no\ndir /tmp\n' \
    "$password" > "$conf")
  chmod 600 "$secret" "$conf"
  local open_ping; open_ping=$(redis-cli -h 127.0.0.1 -p 6379 ping 2>&1 || true)
  if [[ "$open_ping" == NOAUTH* ]] && REDISCLI_AUTH="$password" redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then
    :  # ours, with our password
  else
    if redis_listening; then
      say "Restarting Redis with the project's password"
      pkill -f '^redis-server 127\.0\.0\.1:6379' || pkill -x redis-server || true
      for _ in $(seq 50); do redis_listening || break; sleep 0.1; done
    fi
    say "Starting Redis"
    redis-server "$conf" --daemonize yes >/dev/null
    for _ in $(seq 50); do REDISCLI_AUTH="$password" redis-cli ping >/dev/null 2>&1 && break; sleep 0.1; done
  fi
  export REDIS_URL="${REDIS_URL:-redis://:$password@127.0.0.1:6379/0}"
}

start_services() {
  if ! pgrep -x virtlogd >/dev/null; then say "Starting virtlogd"; virtlogd -d; fi
  start_libvirtd
  start_redis
}

as_service() {
  # Run a command as the service user (scripts/service: its groups, umask 077, its home, this
  # environment), as the tests start the portal's processes too.
  # In a subshell (a background job, a `( ... )`) the command replaces that shell: the pid the
  # caller holds ($! of `as_service ... &`) is the service's own, and a signal sent to it
  # reaches the service. Called from the script's own shell, it runs in a subshell of its own.
  if [ "$BASHPID" = "$$" ]; then (as_service "$@"); return; fi
  exec "$ROOT/scripts/service" "$@"
}

prepare_database() {
  (cd "$ROOT" && as_service python manage.py migrate --noinput -v 0)
  (cd "$ROOT" && python manage.py collectstatic --noinput -v 0)
  (cd "$ROOT" && as_service python manage.py build_tiny_image --if-missing)
}

# Each stage of the set-up is timed; scripts/run prints the times (a fresh machine's are in
# the README). A caller may define after_packages, run once Debian's packages, the service
# user and the data folders are there (scripts/run starts the desktop image's build then).
STAGE_TIMES=()
since() {  # seconds (one decimal) since the $EPOCHREALTIME given
  local ms=$(( (${EPOCHREALTIME/./} - ${1/./}) / 1000 ))
  echo "$((ms / 1000)).$(( (ms % 1000) / 100 ))"
}
stage() {  # stage NAME COMMAND...: (names of its own: a step's loop variables are global)
  local stage_name=$1 stage_started=$EPOCHREALTIME; shift
  "$@"
  STAGE_TIMES+=("$stage_name $(since "$stage_started") s")
}

# Steps that need neither the virtualenv nor each other run beside its install, each in a
# process group of its own (pids: scripts/run's stop reaches them), timed as stages.
BESIDE=()
beside() {  # beside NAME COMMAND...: "stage NAME COMMAND..." in the background
  local times; times=$(mktemp)
  set -m  # job control: the job leads a group of its own, and does not ignore Ctrl-C
  ( stage "$@"; printf '%s (beside)\n' "${STAGE_TIMES[-1]}" > "$times" ) &
  set +m
  BESIDE+=("$!:$times"); pids+=("$!")
}
join_beside() {  # wait for the steps started beside; one that failed stops the set-up
  local job failed=0
  for job in "${BESIDE[@]}"; do  # a step's time is written once it has succeeded
    wait "${job%%:*}" 2>/dev/null || true
    if [ -s "${job#*:}" ]; then STAGE_TIMES+=("$(cat "${job#*:}")"); else failed=1; fi
    rm -f "${job#*:}"
  done
  BESIDE=()
  if [ "$failed" = 1 ]; then echo "A set-up step failed (its output is above)." >&2; exit 1; fi
}
kernel_and_appliance() { unpack_kernel; prepare_guestfs; }  # the appliance may need the kernel

common_setup() {
  need_root
  stage packages install_apt "${APT_PACKAGES[@]}" "$@"
  disable_system_slapd
  prepare_kvm_device
  prepare_swtpm
  stage "service user" prepare_service_user
  stage folders prepare_data_dir
  if [ "$(type -t after_packages)" = function ]; then after_packages; fi
  # Beside the virtualenv (a minute on a bare machine, compiling libvirt's and LDAP's bindings)
  beside "kernel and libguestfs appliance" kernel_and_appliance
  beside "noVNC bundle" install_frontend
  stage "libvirtd and Redis" start_services  # here: it exports REDIS_URL
  stage virtualenv install_python
  join_beside
}
