#!/bin/sh
# Builds a small root filesystem for sandbox tests and benchmarks: Debian's static busybox
# (package busybox-static) with a link per applet in /bin, plus /usr/bin and /etc.
# Usage: tools/make-rootfs.sh DIR
set -eu
dir=${1:?usage: make-rootfs.sh DIR}
busybox=${BUSYBOX:-/bin/busybox}
if ! "$busybox" --list >/dev/null 2>&1; then
  echo "make-rootfs: $busybox is not a working busybox (apt-get install busybox-static)" >&2
  exit 1
fi
mkdir -p "$dir/bin" "$dir/usr/bin" "$dir/etc"
cp "$busybox" "$dir/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$dir/bin/$applet"
done
echo "root:x:0:0:root:/root:/bin/sh" > "$dir/etc/passwd"
echo "root:x:0:" > "$dir/etc/group"
