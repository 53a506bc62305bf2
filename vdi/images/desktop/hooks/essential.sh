#!/bin/sh
# mmdebstrap --essential-hook (runs before the kernel and initramfs-tools are installed, so
# the initrd is made once, already small). $1: the root being built.
set -eu
R="$1"
# Direct kernel boot of virtio disks (and a SATA CD-ROM) needs only these in the initrd;
# Debian's MODULES=most makes a 36 MB initrd that costs about 4 s of boot under TCG.
mkdir -p "$R/etc/initramfs-tools/conf.d" "$R/usr/share/initramfs-tools/modules.d"
echo 'MODULES=list' > "$R/etc/initramfs-tools/conf.d/vdi.conf"
printf "%s\n" virtio_pci virtio_blk virtio_scsi ext4 ahci sr_mod > \
    "$R/usr/share/initramfs-tools/modules.d/vdi-virtio"
# A persistent desktop's data disk (vdb, ext4 labelled vdi-data, made by the worker) on /data,
# mounted when that device shows up (x-systemd.wanted-by on its by-label device unit), not by
# a boot-time wait: under TCG udev may see vdb seconds after systemd starts, past any short
# device timeout (measured: a 5 s wait timed out and /data stayed unmounted). noauto: no boot
# job for it at all, so a desktop without the disk (non-persistent) boots as fast; nofail:
# local-fs.target is never ordered after it; the device timeout bounds a `systemctl start
# data.mount` without the disk. vdi-data-owner.service then gives it to the desktop's user.
mkdir -p "$R/data"
cat > "$R/etc/fstab" <<'EOT'
LABEL=vdiroot / ext4 errors=remount-ro,discard 0 1
LABEL=vdi-data /data ext4 noauto,nofail,x-systemd.device-timeout=5s,x-systemd.wanted-by=dev-disk-by\x2dlabel-vdi\x2ddata.device 0 2
EOT
