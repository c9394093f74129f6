#!/usr/bin/env bash
# Builds, without any container registry, the images the pixpress compose stack needs
# from the outside world, out of Debian bookworm's own packages:
#
#   pixpress/base:bookworm         minbase + ca-certificates: stands in for
#                                  debian:bookworm-slim (RUNTIME_IMAGE of docker/Dockerfile)
#   pixpress/local-postgres:15     PostgreSQL 15 (postgresql-15), entrypoint compatible
#                                  with the official image's POSTGRES_* settings
#   pixpress/local-prometheus:2    Prometheus (Debian's prometheus 2.x) + wget
#   pixpress/local-fixture:bookworm busybox httpd serving /srv: test images by URL
#
# How: `debootstrap --variant=minbase bookworm` once (the tarball is cached under
# ~/.cache/pixpress-ci), then per image: unpack, `chroot apt-get install`, trim,
# `docker import` (one layer), then a small Dockerfile in docker/local/<name>/ adds the
# entrypoint, user and ports (the classic builder is enough: no network, no BuildKit).
# An image that exists already is kept (REBUILD=1 rebuilds them all).
# Needs root (debootstrap, chroot) and a Docker engine. 3-6 min cold, ~1 s warm.
# Usage: bash docker/local/build-base-images.sh
set -euo pipefail
cd "$(dirname "$0")"
LOCAL_DIR=$PWD

CACHE=${PIXPRESS_CI_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/pixpress-ci}
MINBASE_TAR=$CACHE/debootstrap-bookworm-minbase.tar
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
REBUILD=${REBUILD:-0}

log() { printf '   base-images: %s\n' "$*"; }

have_image() { [[ $REBUILD != 1 ]] && docker image inspect "$1" >/dev/null 2>&1; }

work=
cleanup() {
    if [[ -n $work && -d $work ]]; then
        # a chroot step may have left /proc mounted
        umount -l "$work/rootfs/proc" 2>/dev/null || true
        rm -rf "$work"
    fi
}
trap cleanup EXIT
work=$(mktemp -d /tmp/pixpress-rootfs.XXXXXX)

minbase() {
    [[ -s $MINBASE_TAR ]] && return 0
    command -v debootstrap >/dev/null || {
        log "installing debootstrap (apt)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    }
    log "debootstrap --variant=minbase bookworm (once; cached in $MINBASE_TAR)"
    mkdir -p "$CACHE"
    local dir=$work/minbase
    debootstrap --variant=minbase bookworm "$dir" "$MIRROR" >"$work/debootstrap.log" 2>&1 || {
        tail -20 "$work/debootstrap.log" >&2
        return 1
    }
    # Security and point-release updates too, as the official images have them.
    cat >"$dir/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb ${MIRROR%/debian}/debian-security bookworm-security main
EOF
    # Services must not start inside the chroot while packages are installed.
    printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
    chmod 0755 "$dir/usr/sbin/policy-rc.d"
    tar -C "$dir" -cf "$MINBASE_TAR.tmp" . && mv "$MINBASE_TAR.tmp" "$MINBASE_TAR"
    rm -rf "$dir"
}

# rootfs_image TAG PACKAGE...: minbase + the packages (and updates), imported as TAG.
rootfs_image() {
    local tag=$1
    shift
    local dir=$work/rootfs
    rm -rf "$dir"
    mkdir -p "$dir"
    tar -C "$dir" -xf "$MINBASE_TAR"
    cp /etc/resolv.conf "$dir/etc/resolv.conf"
    # No docs, man pages or translations, as in debian:*-slim (path-exclude for what
    # apt installs, rm below for what debootstrap put there); Prometheus's web UI
    # time-zone data (~220 MB, libjs-moment-timezone) is not needed for its API either.
    cat >"$dir/etc/dpkg/dpkg.cfg.d/pixpress-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
path-exclude /usr/share/javascript/moment-timezone/*
EOF
    mount -t proc proc "$dir/proc"
    # PostgreSQL: the entrypoint creates the cluster in the volume, not the package.
    mkdir -p "$dir/etc/postgresql-common/createcluster.d"
    echo "create_main_cluster = false" >"$dir/etc/postgresql-common/createcluster.d/pixpress.conf"
    chroot "$dir" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
        /bin/sh -c 'apt-get update -qq && apt-get upgrade -y -qq && apt-get install -y -qq --no-install-recommends "$@" \
                    && apt-get clean' sh "$@" >"$work/apt.log" 2>&1 || {
        tail -20 "$work/apt.log" >&2
        umount -l "$dir/proc"
        return 1
    }
    umount -l "$dir/proc"
    rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/cache/debconf/*-old \
           "$dir"/var/log/* "$dir"/usr/sbin/policy-rc.d "$dir"/tmp/* "$dir"/root/.[!.]* \
           "$dir"/usr/share/man/* "$dir"/usr/share/info/* 2>/dev/null || true
    find "$dir/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    find "$dir/usr/share/doc" -mindepth 1 -type d -empty -delete
    find "$dir/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
    : >"$dir/etc/resolv.conf"
    tar -C "$dir" -c . | docker import --change 'CMD ["bash"]' - "$tag" >/dev/null
    rm -rf "$dir"
}

# image TAG ROOTFS_TAG PACKAGES FOLDER: the rootfs image, then docker/local/FOLDER/Dockerfile.
image() {
    local tag=$1 rootfs=$2 packages=$3 folder=$4
    if have_image "$tag"; then
        log "$tag: exists, kept"
        return 0
    fi
    local started=$SECONDS
    minbase
    if ! have_image "$rootfs"; then
        # shellcheck disable=SC2086 # a list of package names
        rootfs_image "$rootfs" $packages
    fi
    if [[ -n $folder ]]; then
        DOCKER_BUILDKIT=0 docker build --build-arg "ROOTFS=$rootfs" -t "$tag" "$LOCAL_DIR/$folder" \
            >"$work/build.log" 2>&1 || {
            tail -20 "$work/build.log" >&2
            return 1
        }
    fi
    log "$tag: built in $((SECONDS - started)) s ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
}

image pixpress/base:bookworm pixpress/base:bookworm "ca-certificates" ""
image pixpress/local-postgres:15 pixpress/rootfs-postgres:bookworm "postgresql-15" postgres
image pixpress/local-prometheus:2 pixpress/rootfs-prometheus:bookworm "prometheus wget" prometheus
image pixpress/local-fixture:bookworm pixpress/rootfs-fixture:bookworm "busybox" fixture
