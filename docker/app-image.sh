#!/usr/bin/env bash
# Builds a FROM-scratch image around one of our release binaries:
#
#   docker/app-image.sh BINARY DOCKERFILE TAG
#   docker/app-image.sh target/release/elector docker/elector.Dockerfile iotex-elector:latest
#
# The build context holds rootfs/ with the binary at /usr/local/bin/<name>, the libraries
# `ldd` lists for it (copied under the path ldd names, symlinks resolved), /etc/passwd and
# /etc/group naming the non-root user 65532 (`nonroot`), and /tmp. The Dockerfile copies it
# and sets USER and ENTRYPOINT. The classic builder is used (DOCKER_BUILDKIT=0): BuildKit may
# be unavailable, and nothing here needs it.
#
# Idempotent: the image carries a label with the hash of its context; when the tag exists
# with the same hash, nothing is built.
set -euo pipefail

die() { echo "app-image: $*" >&2; exit 1; }
[ $# -eq 3 ] || die "usage: $0 BINARY DOCKERFILE TAG"
binary="$1" dockerfile="$2" tag="$3"
LABEL=org.iotex.elector.content-hash

[ -x "$binary" ] || die "$binary missing: build it first (cargo build --release ...)"
[ -f "$dockerfile" ] || die "$dockerfile missing"
command -v docker >/dev/null || die "docker not found (Debian: apt-get install docker.io)"
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 ||
  die "no Docker engine answers (is dockerd running, may this user use /var/run/docker.sock?)"

name="$(basename "$binary")"
work="$(mktemp -d "${TMPDIR:-/tmp}/elector-app-image.XXXXXX")"
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
mkdir -p "$root/usr/local/bin" "$root/etc" "$root/tmp"
chmod 1777 "$root/tmp"
install -m 0755 "$binary" "$root/usr/local/bin/$name"
# The non-root user; its shell does not exist, as nothing in the image is a shell.
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin\n' \
  >"$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"
printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"

# A statically linked binary makes ldd say "not a dynamic executable" and exit 1: no libraries.
libs="$(ldd "$binary" 2>/dev/null | awk '/=> \//{print $3} /^[[:space:]]*\//{print $1}' | sort -u || true)"
for lib in $libs; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
cp "$dockerfile" "$work/Dockerfile"

tar --sort=name --mtime='@0' --owner=0 --group=0 --numeric-owner -C "$work" -cf "$work/context.tar" rootfs Dockerfile
hash="$(sha256sum <"$work/context.tar" | cut -c1-64)"
existing="$(docker image inspect --format "{{index .Config.Labels \"$LABEL\"}}" "$tag" 2>/dev/null || true)"
if [ "$existing" = "$hash" ]; then
  echo "app-image: $tag is up to date (content ${hash:0:12})"
  exit 0
fi

# The classic builder prints a deprecation notice on stderr; show its output only on failure.
# The image this build replaces, removed afterwards so rebuilds leave no dangling images.
old_id="$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)"
if ! DOCKER_BUILDKIT=0 docker build --quiet --label "$LABEL=$hash" -t "$tag" - \
  <"$work/context.tar" >"$work/build.log" 2>&1; then
  cat "$work/build.log" >&2
  die "docker build of $tag failed"
fi
new_id="$(docker image inspect --format '{{.Id}}' "$tag")"
if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then
  docker image rm "$old_id" >/dev/null 2>&1 || true
fi
echo "app-image: built $tag from $binary (libraries: ${libs//$'\n'/ }; content ${hash:0:12})"
