#!/bin/sh
# mmdebstrap --customize-hook: the desktop on top of the installed packages.
# $1: the root being built; $2: the folder of static files; $3: the desktop user.
set -eu
R="$1" FILES="$2" USER_NAME="$3"
ch() { chroot "$R" "$@"; }

# static files: units, networkd, X and IceWM settings, the seed and resize helpers
tar -C "$FILES" -cf - . | tar -C "$R" --no-same-owner -xf -
chmod 755 "$R/usr/local/bin/vdi-autoresize" "$R/usr/local/bin/vdi-selections" \
    "$R/usr/local/sbin/vdi-seed"

# a generic identity: each desktop's own comes from its seed at first boot
echo vdi-desktop > "$R/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tvdi-desktop\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' \
    > "$R/etc/hosts"
echo 'LANG=C.UTF-8' > "$R/etc/default/locale"
mkdir -p "$R/etc/vdi"; echo "$USER_NAME" > "$R/etc/vdi/desktop-user"

# the desktop's user, signed in on tty1 without a password, straight into X
ch useradd -m -s /bin/bash -c "Desktop user" "$USER_NAME"
ch passwd -l "$USER_NAME" >/dev/null
mkdir -p "$R/etc/systemd/system/getty@tty1.service.d"
cat > "$R/etc/systemd/system/getty@tty1.service.d/autologin.conf" <<EOT
[Service]
ExecStart=
ExecStart=-/sbin/agetty -o '-p -f -- \\\\u' --noclear --autologin $USER_NAME %I \$TERM
EOT
H="$R/home/$USER_NAME"
cat > "$H/.bash_profile" <<'EOT'
[ -f ~/.profile ] && . ~/.profile
# tty1 signs in by itself and starts the graphical session; when X ends, getty does it again.
if [ -z "${DISPLAY:-}" ] && [ "$(tty)" = /dev/tty1 ]; then
    exec startx /usr/local/bin/vdi-session -- vt1 -keeptty >"$HOME/.xsession-errors" 2>&1
fi
EOT
printf 'XTerm*faceName: DejaVu Sans Mono\nXTerm*faceSize: 11\nXTerm*background: white\nXTerm*foreground: black\n' \
    > "$H/.Xresources"
mkdir -p "$H/Desktop"
for app in debian-xterm pcmanfm; do
    [ -f "$R/usr/share/applications/$app.desktop" ] && \
        install -m 755 "$R/usr/share/applications/$app.desktop" "$H/Desktop/"
done
# libfm asks "Execute File" for every desktop entry double-clicked on the desktop unless
# quick_exec is on (tried on PCManFM 1.3.2: the user's libfm.conf, Debian's settings kept)
mkdir -p "$H/.config/libfm"
sed 's/^\[config\]$/[config]\nquick_exec=1/' "$R/etc/xdg/libfm/libfm.conf" > "$H/.config/libfm/libfm.conf"
grep -qx 'quick_exec=1' "$H/.config/libfm/libfm.conf"
# the data disk (/data, persistent desktops) as a folder of the home and of the desktop
ln -s /data "$H/Data"
ln -s /data "$H/Desktop/Data"
ch chown -R "$USER_NAME:$USER_NAME" "/home/$USER_NAME"

cat > "$R/usr/local/bin/vdi-session" <<'EOT'
#!/bin/sh
# The desktop's X session (IceWM, PCManFM's desktop, the VNC clipboard agent and the selections
# kept in step with it, resize hook).
# Every fork is slow under software emulation: nothing here waits.
export XENVIRONMENT="$HOME/.Xresources"
xset s off -dpms &            # never blank a virtual machine's screen
/usr/local/bin/vdi-autoresize &
(while :; do spice-vdagent -x; sleep 2; done) &  # again if it ends (its daemon was not up)
NO_AT_BRIDGE=1 /usr/local/bin/vdi-selections &  # PRIMARY (xterm's paste) and CLIPBOARD in step
pcmanfm --desktop &
exec icewm-session
EOT
chmod 755 "$R/usr/local/bin/vdi-session"

# services: DHCP on a virtio NIC, the seed, the data disk's owner; nothing that waits for a
# network or runs on timers
ch systemctl enable systemd-networkd.service vdi-seed.service vdi-data-owner.service
ch systemctl enable systemd-resolved.service 2>/dev/null || true
ch systemctl mask systemd-networkd-wait-online.service
ch systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
    e2scrub_reap.service 2>/dev/null || true

# clone hygiene: a machine id made at each clone's first boot, no logs, no caches
: > "$R/etc/machine-id"
rm -f "$R/var/lib/dbus/machine-id"
ch apt-get clean
rm -rf "$R"/var/lib/apt/lists/* "$R"/var/cache/apt/*.bin "$R"/var/log/*.log "$R"/var/log/apt/*

# what the portal records of the build: every package and its version
ch dpkg-query -W -f='${Package} ${Version}\n' > "$R/.vdi-packages"
