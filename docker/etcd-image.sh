#!/usr/bin/env bash
# Builds the etcd image the Docker tests use, from Debian's installed etcd-server and
# etcd-client packages, without any registry: a minimal root file system (the two binaries,
# the libraries `ldd` lists, /tmp and a data directory) is imported with `docker import`.
#
#   docker/etcd-image.sh            # builds $ELECTOR_ETCD_IMAGE (default elector-test/etcd:3.4.23)
#
# Idempotent: the image carries a label with the hash of its content and settings; when the
# tag already exists with the same hash, nothing is done.
#
# The layout matches the upstream images (quay.io/coreos/etcd, gcr.io/etcd-development/etcd):
# the binaries are /usr/local/bin/etcd and /usr/local/bin/etcdctl, so tests and compose files
# that call `etcd` and `etcdctl` by name work with either. ETCDCTL_API=3 is set.
set -euo pipefail

TAG="${ELECTOR_ETCD_IMAGE:-elector-test/etcd:3.4.23}"
ETCD_BIN="${ETCD_BIN:-/usr/bin/etcd}"
ETCDCTL_BIN="${ETCDCTL_BIN:-/usr/bin/etcdctl}"
LABEL=org.iotex.elector.content-hash

die() { echo "etcd-image: $*" >&2; exit 1; }

command -v docker >/dev/null || die "docker not found (Debian: apt-get install docker.io)"
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 ||
  die "no Docker engine answers (is dockerd running, may this user use /var/run/docker.sock?)"
for bin in "$ETCD_BIN" "$ETCDCTL_BIN"; do
  [ -x "$bin" ] || die "$bin missing (Debian: apt-get install etcd-server etcd-client)"
done
case "$TAG" in
  elector-test/*) ;;
  *) die "refusing to build $TAG: ELECTOR_ETCD_IMAGE names an upstream image; pull that one instead" ;;
esac

version="$("$ETCD_BIN" --version | sed -n 's/^etcd Version: //p')"
tag_version="${TAG##*:}"
if [ "$version" != "$tag_version" ]; then
  echo "etcd-image: warning: $ETCD_BIN is etcd $version but the tag says $tag_version" >&2
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/elector-etcd-image.XXXXXX")"
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
mkdir -p "$root/usr/local/bin" "$root/tmp" "$root/var/lib/etcd" "$root/etc"
chmod 1777 "$root/tmp"
install -m 0755 "$ETCD_BIN" "$root/usr/local/bin/etcd"
install -m 0755 "$ETCDCTL_BIN" "$root/usr/local/bin/etcdctl"
# Name-service files that Go's resolver reads; Docker bind-mounts /etc/hosts and
# /etc/resolv.conf over its own at run time.
printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
printf 'root:x:0:0:root:/root:/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\n' >"$root/etc/group"

# Every library the dynamic loader needs, copied under the path ldd names (symlinks
# resolved), so no ld.so.cache is needed.
for bin in "$ETCD_BIN" "$ETCDCTL_BIN"; do
  ldd "$bin" | awk '/=> \//{print $3} /^[[:space:]]*\//{print $1}'
done | sort -u | while read -r lib; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done

# Settings applied by `docker import --change`; part of the content hash.
changes=(
  "ENV PATH=/usr/local/bin:/usr/bin:/bin"
  "ENV ETCDCTL_API=3"
  "WORKDIR /var/lib/etcd"
  "VOLUME /var/lib/etcd"
  "EXPOSE 2379 2380"
  'CMD ["etcd"]'
)

# A reproducible archive: sorted names, fixed times and owners.
tar --sort=name --mtime='@0' --owner=0 --group=0 --numeric-owner \
  -C "$root" -cf "$work/rootfs.tar" .
hash="$( { sha256sum <"$work/rootfs.tar"; printf '%s\n' "${changes[@]}"; } | sha256sum | cut -c1-64)"

existing="$(docker image inspect --format "{{index .Config.Labels \"$LABEL\"}}" "$TAG" 2>/dev/null || true)"
if [ "$existing" = "$hash" ]; then
  echo "etcd-image: $TAG is up to date (etcd $version, content ${hash:0:12})"
  exit 0
fi

# The image this build replaces, removed afterwards so rebuilds leave no dangling images.
old_id="$(docker image inspect --format '{{.Id}}' "$TAG" 2>/dev/null || true)"
args=()
for change in "${changes[@]}"; do args+=(--change "$change"); done
args+=(--change "LABEL $LABEL=$hash")
args+=(--change "LABEL org.iotex.elector.etcd-version=$version")
docker import "${args[@]}" --message "etcd $version from Debian packages" \
  "$work/rootfs.tar" "$TAG" >/dev/null

new_id="$(docker image inspect --format '{{.Id}}' "$TAG")"
if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then
  docker image rm "$old_id" >/dev/null 2>&1 || true
fi
# A smoke test: the binaries run inside the image (libraries and loader complete).
docker run --rm --network none "$TAG" etcd --version | sed -n 1p
docker run --rm --network none "$TAG" etcdctl version | sed -n 1p
echo "etcd-image: built $TAG (etcd $version, content ${hash:0:12})"
