#!/usr/bin/env bash
# Build the sample connector images, also on a machine without registry access.
#
# Usage: sample-connectors/build.sh [CONNECTOR_DIR...]
#        (default: every folder under sample-connectors/ that has a Dockerfile;
#         a folder may be given as a path or by its name, e.g. `python`)
# Env:   BASE_IMAGE   use this base image instead of the Dockerfile's default
#        PYTHON       interpreter used to fill the wheelhouse and to make the client
#                     generator's venv (default: python3)
#        OPENAPI_SPEC the spec clients are generated from (default: openapi/container-api.json)
#
# For each connector:
#  1. base image: $BASE_IMAGE, else the Dockerfile's `ARG BASE_IMAGE=` default when it
#     is present locally or can be pulled, else a local stand-in built by
#     scripts/make-base-image.sh, of the flavour the default's name asks for:
#       python:*  -> FLAVOUR=python  (cde-local/python:3-<suite>; the python sample)
#       node:*    -> FLAVOUR=node    (cde-local/node:<suite>;     the node sample)
#       busybox:* -> FLAVOUR=shell   (cde-local/busybox:<suite>;  the shell sample)
#       anything else -> FLAVOUR=python
#     (a registry or namespace in front of the name, as in docker.io/library/node:20,
#     does not count, nor does a digest instead of the tag); each stand-in is made
#     once (about a minute) and then reused;
#  2. wheelhouse: when the folder has a requirements.txt, its wheels (and pip's own)
#     are downloaded on the host into <dir>/wheelhouse (git-ignored), so that the image
#     installs them with no network; skipped while requirements.txt is unchanged;
#  3. client: when the folder has an openapi-client.yaml, a Python client for the
#     Container API is generated from openapi/container-api.json with
#     openapi-python-client (pinned in <dir>/requirements-build.txt, installed into the
#     venv <dir>/.build/venv), built into a wheel and copied into <dir>/wheelhouse;
#     skipped while the spec, the config and requirements-build.txt are unchanged;
#  4. `docker build`, tagged with the `image:` of the folder's manifest.yaml and
#     labelled cde.sample=true. Docker's layer cache makes a rebuild of an unchanged
#     folder take about a second.
# Nothing generated is committed: <dir>/wheelhouse and <dir>/.build are git-ignored.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
MAKE_BASE="$ROOT/scripts/make-base-image.sh"
PYTHON="${PYTHON:-python3}"
OPENAPI_SPEC="${OPENAPI_SPEC:-$ROOT/openapi/container-api.json}"

log() { echo "build.sh: $*" >&2; }
# shellcheck source=scripts/progress.sh
. "$ROOT/scripts/progress.sh"
die() { log "error: $*"; exit 1; }

command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "cannot reach the Docker engine (is it running, may you use it?)"

# --- which connectors -------------------------------------------------------------
dirs=()
if [ $# -eq 0 ]; then
    for f in "$HERE"/*/Dockerfile; do
        [ -f "$f" ] && dirs+=("$(dirname "$f")")
    done
    [ ${#dirs[@]} -gt 0 ] || die "no connector with a Dockerfile under $HERE"
else
    for arg in "$@"; do
        if [ -d "$arg" ]; then dirs+=("$(cd "$arg" && pwd)")
        elif [ -d "$HERE/$arg" ]; then dirs+=("$HERE/$arg")
        else die "no such connector folder: $arg"
        fi
    done
fi

# --- helpers ----------------------------------------------------------------------
# Value of a top-level `key:` in a simple YAML file, without quotes or comment.
yaml_value() {
    sed -n "s/^$2:[[:space:]]*//p" "$1" | head -n 1 |
        sed -e 's/[[:space:]]\+#.*$//' -e 's/[[:space:]]*$//' -e "s/^[\"']//" -e "s/[\"']\$//"
}

# The flavour of scripts/make-base-image.sh that stands in for the base image $1.
base_flavour() {
    case "${1##*/}" in
        node | node[:@]*) echo node ;;
        busybox | busybox[:@]*) echo shell ;;
        *) echo python ;;   # python:* and anything else, as before there were flavours
    esac
}

# Sets BASE to the base image for a Dockerfile whose default is $1 (cached per default).
declare -A base_for=()
resolve_base() {
    local default="$1"
    if [ -n "${BASE_IMAGE:-}" ]; then BASE="$BASE_IMAGE"; return; fi
    if [ -n "${base_for[$default]:-}" ]; then BASE="${base_for[$default]}"; return; fi
    if docker image inspect "$default" >/dev/null 2>&1; then
        BASE="$default"
    elif timeout 20 docker pull -q "$default" >/dev/null 2>&1; then
        log "pulled $default"
        BASE="$default"
    else
        local flavour
        flavour="$(base_flavour "$default")"
        log "$default is not available locally and cannot be pulled; using a local stand-in ($flavour flavour)"
        BASE="$(FLAVOUR="$flavour" "$MAKE_BASE" | tail -n 1)" || die "could not make a local base image"
        [ -n "$BASE" ] || die "scripts/make-base-image.sh printed no tag"
    fi
    base_for[$default]="$BASE"
}

# Fill <dir>/wheelhouse from <dir>/requirements.txt plus the pip wheel, unless the
# stamp says it already matches.
fill_wheelhouse() {
    local dir="$1" wh="$1/wheelhouse" want have=""
    want="$( (cat "$dir/requirements.txt"; echo "+pip") | sha256sum | cut -d' ' -f1)"
    [ -f "$wh/.requirements.sha256" ] && have="$(cat "$wh/.requirements.sha256")"
    if [ "$want" = "$have" ] && compgen -G "$wh/pip-*.whl" >/dev/null; then
        return 0
    fi
    rm -rf "$wh"
    mkdir -p "$wh" "$dir/.build"
    if ! run_step "build.sh: $(basename "$dir"): downloading wheels into wheelhouse/" \
            "$dir/.build/pip-download.log" \
            "$PYTHON" -m pip download --progress-bar off --disable-pip-version-check \
            --only-binary=:all: -d "$wh" -r "$dir/requirements.txt" pip; then
        rm -rf "$wh"
        die "$(basename "$dir"): pip download failed (is PyPI or a package index reachable from this host?)"
    fi
    echo "$want" >"$wh/.requirements.sha256"
}

sha() { sha256sum | cut -d' ' -f1; }

# Generate <dir>'s Container API client from $OPENAPI_SPEC with the settings of
# <dir>/openapi-client.yaml, build it into a wheel and put that into <dir>/wheelhouse.
# Each step is skipped while its inputs are unchanged (stamps under <dir>/.build).
make_client() {
    local dir="$1" name work venv tools want have="" whl base old
    name="$(basename "$dir")"
    work="$dir/.build"
    venv="$work/venv"
    tools="$dir/requirements-build.txt"
    [ -f "$OPENAPI_SPEC" ] || die "$name: no OpenAPI spec at $OPENAPI_SPEC"
    [ -f "$tools" ] || die "$name: openapi-client.yaml needs a requirements-build.txt pinning openapi-python-client"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null ||
        die "$name: generating the client needs Python >= 3.11 on the host (set PYTHON=, e.g. PYTHON=python3.12)"

    # The generator's venv, remade when requirements-build.txt or the interpreter changes.
    want="$( (cat "$tools"; "$PYTHON" --version 2>&1) | sha)"
    [ -f "$venv/.requirements.sha256" ] && have="$(cat "$venv/.requirements.sha256")"
    if [ "$want" != "$have" ] || [ ! -x "$venv/bin/python" ]; then
        rm -rf "$venv"
        mkdir -p "$work"
        run_step "build.sh: $name: making .build/venv" "$work/venv.log" "$PYTHON" -m venv "$venv" ||
            die "$name: $PYTHON -m venv failed (on Debian/Ubuntu: apt-get install python3-venv)"
        if ! run_step "build.sh: $name: installing the client generator into .build/venv" \
                "$work/venv.log" "$venv/bin/python" -m pip install --progress-bar off \
                --disable-pip-version-check -r "$tools"; then
            rm -rf "$venv"
            die "$name: pip install -r requirements-build.txt failed (is PyPI or a package index reachable from this host?)"
        fi
        echo "$want" >"$venv/.requirements.sha256"
    fi

    # The client and its wheel, remade when the spec, the config or the tools change.
    want="$( (sha <"$OPENAPI_SPEC"; sha <"$dir/openapi-client.yaml"; sha <"$tools") | sha)"
    have=""
    [ -f "$work/client.sha256" ] && have="$(cat "$work/client.sha256")"
    if [ "$want" != "$have" ] || ! compgen -G "$work/dist/*.whl" >/dev/null; then
        rm -rf "$work/client" "$work/dist" "$work/client.sha256" "$work/generate.log"
        # ruff (the generator's formatting post-hooks) is found on PATH.
        if ! PATH="$venv/bin:$PATH" run_step \
                "build.sh: $name: generating the Container API client from ${OPENAPI_SPEC#"$ROOT"/}" \
                "$work/generate.log" "$venv/bin/python" -m openapi_python_client generate \
                --meta pdm --path "$OPENAPI_SPEC" --config "$dir/openapi-client.yaml" \
                --output-path "$work/client" --fail-on-warning; then
            rm -rf "$work/client"
            die "$name: openapi-python-client failed (output above, full log in .build/generate.log)"
        fi
        # A fixed timestamp: the same spec gives the same wheel, bytes and all, so an
        # unchanged client never invalidates the image's install layer.
        if ! SOURCE_DATE_EPOCH=315532800 run_step "build.sh: $name: building the client wheel" \
                "$work/generate.log" "$venv/bin/python" -m pip wheel \
                --disable-pip-version-check --no-deps --no-build-isolation --no-index \
                -w "$work/dist" "$work/client"; then
            rm -rf "$work/dist"
            die "$name: building the client wheel failed (output above)"
        fi
        echo "$want" >"$work/client.sha256"
    fi

    # Into the wheelhouse, replacing other builds of the same project.
    mkdir -p "$dir/wheelhouse"
    for whl in "$work"/dist/*.whl; do
        base="$(basename "$whl")"
        for old in "$dir/wheelhouse/${base%%-*}"-*.whl; do
            [ -e "$old" ] && [ "$old" != "$dir/wheelhouse/$base" ] && rm -f "$old"
        done
        cmp -s "$whl" "$dir/wheelhouse/$base" || cp "$whl" "$dir/wheelhouse/$base"
    done
}

# When <dir> has a Cargo.toml (a member of this workspace): build its binary on the host
# (`cargo build --release --locked`, a static glibc executable per .cargo/config.toml) and
# copy it into <dir>/.build/<binary> for the Dockerfile to COPY. An unchanged binary is
# not copied again, so Docker's layer cache holds.
build_binary() {
    local dir="$1" name pkg bin host exe
    name="$(basename "$dir")"
    command -v cargo >/dev/null || die "$name: building its binary needs cargo (https://rustup.rs)"
    pkg="$(sed -n '/^\[package\]/,/^\[/s/^name[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' "$dir/Cargo.toml" | head -n 1)"
    bin="$(sed -n '/^\[\[bin\]\]/,/^\[/s/^name[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' "$dir/Cargo.toml" | head -n 1)"
    [ -n "$pkg" ] || die "$name: no [package] name in Cargo.toml"
    bin="${bin:-$pkg}"
    host="$(rustc -vV | sed -n 's/^host: //p')"
    mkdir -p "$dir/.build"
    : >"$dir/.build/cargo.log"
    # From the workspace root, so that its .cargo/config.toml applies.
    (cd "$ROOT" && run_step "build.sh: $name: cargo build --release -p $pkg" "$dir/.build/cargo.log" \
        cargo build --release --locked -p "$pkg" --bin "$bin") ||
        die "$name: cargo build failed (output above)"
    exe="${CARGO_TARGET_DIR:-$ROOT/target}/$host/release/$bin"
    [ -x "$exe" ] || die "$name: cargo built no $exe"
    cmp -s "$exe" "$dir/.build/$bin" || cp "$exe" "$dir/.build/$bin"
}

# --- build ------------------------------------------------------------------------
for dir in "${dirs[@]}"; do
    name="$(basename "$dir")"
    [ -f "$dir/Dockerfile" ] || die "$name: no Dockerfile in $dir"
    manifest=""
    for m in manifest.yaml manifest.yml; do
        [ -f "$dir/$m" ] && { manifest="$dir/$m"; break; }
    done
    [ -n "$manifest" ] || die "$name: no manifest.yaml in $dir"
    image="$(yaml_value "$manifest" image)"
    [ -n "$image" ] || die "$name: $manifest has no image:"

    # The host's own steps (wheels, the client) need no base image: they run while the
    # base image is found or made, which can take a minute. Their lines go to a log,
    # shown when they are done.
    mkdir -p "$dir/.build"
    # A Rust connector: its binary, built on the host for the Dockerfile to COPY.
    if [ -f "$dir/Cargo.toml" ]; then build_binary "$dir"; fi
    host_log="$dir/.build/host-steps.log"
    : >"$host_log"
    (
        [ -f "$dir/requirements.txt" ] && fill_wheelhouse "$dir"
        [ -f "$dir/openapi-client.yaml" ] && make_client "$dir"
        true
    ) 2>>"$host_log" &
    host_steps=$!

    build_args=()
    default_base="$(sed -n 's/^ARG[[:space:]]\+BASE_IMAGE=//p' "$dir/Dockerfile" | head -n 1 | tr -d "\"'")"
    if [ -n "$default_base" ] || [ -n "${BASE_IMAGE:-}" ]; then
        resolve_base "$default_base"
        base="$BASE"
        build_args+=(--build-arg "BASE_IMAGE=$base")
        # Labels are inherited: do not let the connector image pass for a base image.
        if [ -n "$(docker image inspect -f '{{index .Config.Labels "cde.base"}}' "$base" 2>/dev/null)" ]; then
            build_args+=(--label cde.base=false)
        fi
    else
        base="(from the Dockerfile)"
    fi

    if kill -0 "$host_steps" 2>/dev/null; then
        log "$name: waiting for the wheels and the client (progress in ${host_log#"$ROOT"/})"
    fi
    if ! wait "$host_steps"; then
        cat "$host_log" >&2
        die "$name: preparing the wheelhouse failed (output above)"
    fi
    grep -v 'still going' "$host_log" >&2 || true

    start=$SECONDS
    previous="$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)"
    out="$(mktemp)"
    if ! run_step "build.sh: $name: docker build -t $image" "$out" \
            docker build --force-rm "${build_args[@]}" --label cde.sample=true -t "$image" "$dir"; then
        rm -f "$out"
        die "$name: docker build failed (output above)"
    fi
    rm -f "$out"
    # A rebuild leaves the former image untagged: drop it unless something still uses it.
    if [ -n "$previous" ] && [ "$previous" != "$(docker image inspect -f '{{.Id}}' "$image")" ] &&
        [ "$(docker image inspect -f '{{len .RepoTags}}' "$previous" 2>/dev/null)" = 0 ]; then
        docker rmi "$previous" >/dev/null 2>&1 || true
    fi
    log "$name: built $image on $base in $((SECONDS - start))s"
done
