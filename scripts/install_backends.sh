#!/usr/bin/env bash
# Obtains the real backend programs for tests and users (run it as `scripts/backends install`):
#
#   otelcol                         built with the OpenTelemetry Collector Builder from
#                                   collector/builder-config.yaml
#   prometheus, promtool,           Debian unstable (sid) packages, fetched with a private
#   alertmanager, amtool            apt configuration (the system's apt setup is not touched)
#   victoria-logs, jaeger           built from source with Go, from the tool modules in
#                                   tools/backends/victorialogs and tools/backends/jaeger
#                                   (Apache-2.0; nothing AGPL is fetched or compiled: the
#                                   install fails if a tool module's build list names
#                                   grafana/loki, grafana/tempo or grafana/grafana)
#   k8s-check                       strict decoding of deploy/k8s/*.yaml into the official
#                                   Kubernetes API types (Go module deploy/k8s/check)
#   grammars                        Grafana's LogQL and TraceQL parsers from npm
#                                   (tools/grammars: package.json + package-lock.json),
#                                   for the query checks of tests/stack
#
# Usage: scripts/install_backends.sh [--refresh] [NAME...]
#   NAME: otelcol prometheus (also gives promtool) alertmanager (also amtool) victoria-logs jaeger
#         k8s-check grammars;
#         default all. --refresh re-fetches the Debian packages (newest in sid).
#
# Everything heavy is cached OUTSIDE the checkout, so a fresh clone (CI) reuses it:
#   $OTEL_DISTRO_CACHE (default ~/.cache/otel-distro)
#     go/mod  go/build  go/path      GOMODCACHE, GOCACHE, GOPATH
#     go/tools/builder-<ver>/        the collector builder
#     apt/                           private apt sources list, lists, archives, debs
#     bin/<name>-<version>-<hash>    built binaries, stamped by version + recipe hash
#     npm/grammars-<hash>/           node_modules of tools/grammars, stamped by its lock file
#     logs/<step>.log                one log per step
# The checkout's .backends/bin/<name> are hard links to (or copies of) the stamped files;
# .backends/grammars is a symbolic link to the installed node_modules' folder.
# A binary is rebuilt only when its inputs change (builder-config.yaml, the tool module's
# go.mod/go.sum, the Go version, the build flags in this file).
# shellcheck disable=SC2317  # (functions are reached through main and "install_$name")
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${OTEL_DISTRO_CACHE:-$HOME/.cache/otel-distro}"
BIN_DIR="$REPO/.backends/bin"
STAMP_DIR="$CACHE/bin"
LOG_DIR="$CACHE/logs"
ALL=(prometheus alertmanager otelcol victoria-logs jaeger k8s-check grammars)
# Bump when a build recipe below changes: every stamp hash changes with it.
RECIPE=4

# Go: everything in the cache; no toolchain downloads; static binaries. Go's checksum
# database stays on (the environment's GOSUMDB): it answers for every module we build,
# and the tool modules' go.sum files are committed besides.
export GOMODCACHE="$CACHE/go/mod" GOCACHE="$CACHE/go/build" GOPATH="$CACHE/go/path"
export GOTOOLCHAIN=local CGO_ENABLED=0
GO_LDFLAGS="-s -w"
# The one exception, for the collector build only: module versions that the checksum
# database reachable here does not answer for (404 on lookup). Their hashes come from
# the module proxy alone; every other module is still checked.
COLLECTOR_NOSUMDB="github.com/open-telemetry/opentelemetry-collector-contrib/connector/servicegraphconnector"

START=$SECONDS
STEP=""
STEP_LOG=""
STEP_START=0

# ---------------------------------------------------------------------------------------
# progress and failure reporting
# ---------------------------------------------------------------------------------------
say() { printf '[%4ds] %s\n' "$((SECONDS - START))" "$*"; }

step() { # step NAME DESCRIPTION: starts a step with its own log file
    STEP="$1"
    STEP_LOG="$LOG_DIR/$1.log"
    STEP_START=$SECONDS
    : >"$STEP_LOG"
    say "$1: $2 (log: $STEP_LOG)"
}

done_step() { say "$STEP: ${1:-done} in $((SECONDS - STEP_START))s"; }

fail() { # fail REASON: names the step, shows the end of its log, exits non-zero
    say "FAILED: step '$STEP' after $((SECONDS - STEP_START))s: $*" >&2
    if [[ -s "$STEP_LOG" ]]; then
        echo "---- last lines of $STEP_LOG ----" >&2
        tail -n 25 "$STEP_LOG" >&2
        echo "----" >&2
    fi
    exit 1
}

run() { # run DESCRIPTION CMD...: runs CMD with output to the step log, heartbeat each minute
    local what="$1"
    shift
    echo "\$ $*" >>"$STEP_LOG"
    "$@" >>"$STEP_LOG" 2>&1 &
    local pid=$! t0=$SECONDS next=60 rc=0
    while kill -0 "$pid" 2>/dev/null; do
        sleep 1
        if ((SECONDS - t0 >= next)); then
            say "$STEP: ... still $what ($((SECONDS - t0))s)"
            next=$((next + 60))
        fi
    done
    wait "$pid" || rc=$?
    ((rc == 0)) || fail "$what exited with status $rc"
}

# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------
hash_of() { # hash_of ARGS...: short hash of the given files and strings
    local x
    for x in "$@"; do
        if [[ -f "$x" ]]; then cat "$x"; else printf '%s\n' "$x"; fi
    done | sha256sum | cut -c1-12
}

size_of() { du -h "$1" | cut -f1; }

link_bin() { # link_bin STAMPED_FILE NAME: .backends/bin/NAME -> cached file
    mkdir -p "$BIN_DIR"
    rm -f "$BIN_DIR/$2"
    ln "$1" "$BIN_DIR/$2" 2>/dev/null || cp "$1" "$BIN_DIR/$2"
    chmod +x "$BIN_DIR/$2"
}

prune() { # prune NAME KEEP_FILE: keep the two newest stamped builds of NAME
    local f n=0
    while IFS= read -r f; do
        [[ "$f" == "$2" || "$f" == *.tmp ]] && continue
        n=$((n + 1))
        ((n < 2)) || rm -f "$f"
    done < <(ls -1t "$STAMP_DIR/$1"-* 2>/dev/null)
}

go_version() { go env GOVERSION; }

# ---------------------------------------------------------------------------------------
# otelcol: OpenTelemetry Collector Builder
# ---------------------------------------------------------------------------------------
install_otelcol() {
    local manifest="$REPO/collector/builder-config.yaml"
    [[ -f "$manifest" ]] || fail "missing $manifest"
    # The builder's version must equal the core components' version.
    local ver
    ver="$(sed -n 's#.*gomod: *go.opentelemetry.io/collector/receiver/otlpreceiver  *\(v[0-9.]*\).*#\1#p' "$manifest" | head -1)"
    [[ -n "$ver" ]] || fail "cannot read the otlpreceiver version from $manifest"
    local hash stamped
    hash="$(hash_of "$manifest" "$(go_version)" "recipe=$RECIPE")"
    stamped="$STAMP_DIR/otelcol-$ver-$hash"
    step otelcol "collector $ver from collector/builder-config.yaml"
    if [[ -x "$stamped" ]]; then
        link_bin "$stamped" otelcol
        done_step "cached $(basename "$stamped")"
        return
    fi

    local builder_dir="$CACHE/go/tools/builder-$ver"
    if [[ ! -x "$builder_dir/builder" ]]; then
        say "$STEP: installing go.opentelemetry.io/collector/cmd/builder@$ver"
        GOBIN="$builder_dir" run "installing the builder" \
            go install "go.opentelemetry.io/collector/cmd/builder@$ver"
    fi

    # The builder writes generated sources to dist.output_path: point it into the cache.
    local work="$CACHE/work/otelcol-$ver-$hash"
    rm -rf "$work"
    mkdir -p "$work"
    sed "s#^\(\s*output_path:\).*#\1 $work/src#" "$manifest" >"$work/builder-config.yaml"
    grep -q "output_path: $work/src" "$work/builder-config.yaml" ||
        fail "collector/builder-config.yaml needs a dist.output_path line"
    say "$STEP: generating and compiling (minutes on a fresh cache)"
    (cd "$work" && GONOSUMDB="$COLLECTOR_NOSUMDB" run "building the collector" \
        "$builder_dir/builder" --config="$work/builder-config.yaml")
    [[ -x "$work/src/otelcol" ]] || fail "the builder produced no $work/src/otelcol"
    "$work/src/otelcol" --version >>"$STEP_LOG" 2>&1 || fail "the new otelcol does not run"
    mkdir -p "$STAMP_DIR"
    mv "$work/src/otelcol" "$stamped.tmp" && mv "$stamped.tmp" "$stamped"
    rm -rf "$work"
    prune otelcol "$stamped"
    link_bin "$stamped" otelcol
    done_step "built $(basename "$stamped") ($(size_of "$stamped"))"
}

# ---------------------------------------------------------------------------------------
# victoria-logs, jaeger: `go build` of the tool dependency of our own small modules
# ---------------------------------------------------------------------------------------
# Licence policy: AGPL modules are never fetched or compiled by this script.
AGPL_MODULES='^github\.com/grafana/(loki|tempo|grafana)(/|$)'

check_no_agpl() { # check_no_agpl MODULE_DIR: fail when the build list names an AGPL module
    local list bad
    list="$(cd "$1" && go list -m -f '{{.Path}}' all 2>>"$STEP_LOG")" || fail "go list -m all failed in $1"
    bad="$(grep -E "$AGPL_MODULES" <<<"$list" || true)"
    [[ -z "$bad" ]] || fail "AGPL modules in the build list of ${1#"$REPO"/}: $(echo $bad)"
    echo "licence check: no grafana/loki, grafana/tempo or grafana/grafana in ${1#"$REPO"/}" >>"$STEP_LOG"
}

go_tool_build() { # go_tool_build NAME MODULE_DIR PACKAGE VERSION LDFLAGS VERSION_FLAG
    local name="$1" dir="$2" pkg="$3" ver="$4" ldflags="$5" version_flag="$6"
    local hash stamped
    hash="$(hash_of "$dir/go.mod" "$dir/go.sum" "$(go_version)" "$ldflags" "recipe=$RECIPE")"
    stamped="$STAMP_DIR/$name-$ver-$hash"
    step "$name" "$name $ver from ${dir#"$REPO"/}"
    check_no_agpl "$dir"
    if [[ -x "$stamped" ]]; then
        link_bin "$stamped" "$name"
        done_step "cached $(basename "$stamped")"
        return
    fi
    mkdir -p "$STAMP_DIR"
    say "$STEP: downloading modules"
    (cd "$dir" && run "downloading modules" go mod download)
    say "$STEP: compiling (minutes on 2 cores; one build at a time)"
    (cd "$dir" && run "compiling $name" \
        go build -trimpath -ldflags="$ldflags" -o "$stamped.tmp" "$pkg")
    "$stamped.tmp" "$version_flag" >>"$STEP_LOG" 2>&1 || fail "the new $name does not run"
    mv "$stamped.tmp" "$stamped"
    prune "$name" "$stamped"
    link_bin "$stamped" "$name"
    done_step "built $(basename "$stamped") ($(size_of "$stamped"))"
}

module_version() { # module_version GO_MOD MODULE: the required version of MODULE
    awk -v m="$2" '$1 == m && $2 ~ /^v/ { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' "$1"
}

install_victoria-logs() {
    local dir="$REPO/tools/backends/victorialogs" ver
    ver="$(module_version "$dir/go.mod" github.com/VictoriaMetrics/VictoriaLogs)"
    [[ -n "$ver" ]] || { step victoria-logs "victoria-logs"; fail "no VictoriaLogs requirement in $dir/go.mod"; }
    go_tool_build victoria-logs "$dir" github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs "$ver" \
        "$GO_LDFLAGS -X github.com/VictoriaMetrics/VictoriaMetrics/lib/buildinfo.Version=victoria-logs-$ver" \
        -version
}

install_jaeger() {
    local dir="$REPO/tools/backends/jaeger" ver
    ver="$(module_version "$dir/go.mod" github.com/jaegertracing/jaeger)"
    [[ -n "$ver" ]] || { step jaeger "jaeger"; fail "no jaegertracing/jaeger requirement in $dir/go.mod"; }
    # Jaeger v2 releases are tagged v2.x but published as Go module v1.x (v1.76.0 = v2.13.0).
    local release="v2.$(( $(cut -d. -f2 <<<"$ver") - 63 )).0"
    go_tool_build jaeger "$dir" github.com/jaegertracing/jaeger/cmd/jaeger "$ver" \
        "$GO_LDFLAGS -X github.com/jaegertracing/jaeger/internal/version.latestVersion=$release -X github.com/jaegertracing/jaeger/internal/version.commitSHA=$ver" \
        version
}

install_k8s-check() {
    local dir="$REPO/deploy/k8s/check" ver
    ver="$(module_version "$dir/go.mod" k8s.io/api)"
    [[ -n "$ver" ]] || { step k8s-check "k8s-check"; fail "no k8s.io/api requirement in $dir/go.mod"; }
    go_tool_build k8s-check "$dir" . "$ver" "$GO_LDFLAGS" -version
}

# ---------------------------------------------------------------------------------------
# grammars: Grafana's query parsers (npm), for checking the LogQL and TraceQL we ship
# ---------------------------------------------------------------------------------------
install_grammars() {
    local src="$REPO/tools/grammars" hash dir
    hash="$(hash_of "$src/package.json" "$src/package-lock.json" "recipe=$RECIPE")"
    dir="$CACHE/npm/grammars-$hash"
    step grammars "LogQL and TraceQL parsers from tools/grammars"
    command -v npm >/dev/null || fail "npm is not installed (Node.js is needed for the query checks)"
    if [[ ! -f "$dir/.installed" ]]; then
        rm -rf "$dir" && mkdir -p "$dir"
        cp "$src/package.json" "$src/package-lock.json" "$dir/"
        (cd "$dir" && run "installing the npm packages" \
            npm ci --ignore-scripts --no-audit --no-fund --loglevel=error --cache "$CACHE/npm/cache")
        touch "$dir/.installed"
    fi
    mkdir -p "$REPO/.backends"
    ln -sfn "$dir/node_modules" "$REPO/.backends/grammars"
    done_step "node_modules in $dir"
}

# ---------------------------------------------------------------------------------------
# prometheus, promtool, alertmanager, amtool: Debian sid packages, private apt setup
# ---------------------------------------------------------------------------------------
DEB_PACKAGES=(prometheus promtool prometheus-alertmanager)
DEB_KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
APT_DIR="$CACHE/apt"

debian_mirror() { # the machine's own Debian mirror URI (never written into the repository)
    local uri="" f
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f "$f" ]] || continue
        # deb822: the URIs of the first stanza that is not a security archive
        uri="$(awk 'BEGIN { RS = ""; FS = "\n" }
            /(^|\n)Types:[^\n]*deb/ && !/-security/ {
                for (i = 1; i <= NF; i++) if ($i ~ /^URIs:/) { split($i, a, /[ \t]+/); print a[2]; exit }
            }' "$f")"
        [[ -n "$uri" ]] && break
    done
    if [[ -z "$uri" ]]; then
        for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
            [[ -f "$f" ]] || continue
            uri="$(awk '$1 == "deb" && !/security/ {
                for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/ && $i ~ /:\/\//) { print $i; exit }
            }' "$f" | head -1)"
            [[ -n "$uri" ]] && break
        done
    fi
    printf '%s' "$uri"
}

apt_private() { # apt-get with a private sources list, lists, caches; the system's apt untouched
    apt-get \
        -o Dir::Etc::SourceList="$APT_DIR/sources.list" \
        -o Dir::Etc::SourceParts=/dev/null \
        -o Dir::Etc::Preferences=/dev/null \
        -o Dir::Etc::PreferencesParts=/dev/null \
        -o Dir::State::Lists="$APT_DIR/lists" \
        -o Dir::State::extended_states="$APT_DIR/extended_states" \
        -o Dir::Cache="$APT_DIR/cache" \
        -o Dir::Cache::Archives="$APT_DIR/archives" \
        -o APT::Architecture="$(dpkg --print-architecture)" \
        -o APT::Get::List-Cleanup=0 \
        -o Debug::NoLocking=1 \
        "$@"
}

install_debian() { # install_debian: fetch and unpack the three packages (skipped when cached)
    local marker="$STAMP_DIR/debian-sid.env"
    [[ -z "${DEBIAN_DONE:-}" ]] || return 0
    DEBIAN_DONE=1
    step debian "prometheus, promtool, alertmanager from Debian sid packages"
    if [[ -f "$marker" && -z "${REFRESH:-}" ]]; then
        # shellcheck disable=SC1090
        source "$marker"
        if [[ -x "$PROMETHEUS_BIN" && -x "$PROMTOOL_BIN" && -x "$ALERTMANAGER_BIN" && -d "${ALERTMANAGER_SHARE:-/nonexistent}" ]]; then
            done_step "cached: prometheus $PROMETHEUS_VERSION, alertmanager $ALERTMANAGER_VERSION"
            return
        fi
    fi
    local mirror
    mirror="$(debian_mirror)"
    [[ -n "$mirror" ]] || fail "no Debian mirror URI in /etc/apt/sources.list(.d)"
    [[ -f "$DEB_KEYRING" ]] || fail "missing $DEB_KEYRING (package debian-archive-keyring)"
    mkdir -p "$APT_DIR"/{lists/partial,cache,archives/partial,debs}
    # The machine's mirror, suite changed to sid.
    echo "deb [signed-by=$DEB_KEYRING] $mirror sid main" >"$APT_DIR/sources.list"
    run "updating the sid package lists" apt_private update
    rm -f "$APT_DIR"/debs/*.deb
    (cd "$APT_DIR/debs" && run "downloading ${DEB_PACKAGES[*]}" apt_private download "${DEB_PACKAGES[@]}")

    local deb pkg ver root
    declare -A V
    for deb in "$APT_DIR"/debs/*.deb; do
        pkg="$(dpkg-deb -f "$deb" Package)"
        V[$pkg]="$(dpkg-deb -f "$deb" Version)"
        echo "$pkg ${V[$pkg]} $(basename "$deb") $(size_of "$deb")" >>"$STEP_LOG"
    done
    for pkg in "${DEB_PACKAGES[@]}"; do
        [[ -n "${V[$pkg]:-}" ]] || fail "package $pkg was not downloaded"
    done
    root="$APT_DIR/root"
    rm -rf "$root"
    mkdir -p "$root" "$STAMP_DIR"
    for deb in "$APT_DIR"/debs/*.deb; do
        dpkg-deb -x "$deb" "$root" >>"$STEP_LOG" 2>&1 || fail "cannot unpack $deb"
    done

    # Debian's file names: /usr/bin/prometheus, /usr/bin/promtool,
    # /usr/bin/prometheus-alertmanager, /usr/bin/amtool.
    local pv="${V[prometheus]}" tv="${V[promtool]}" av="${V[prometheus-alertmanager]}"
    local pb="$STAMP_DIR/prometheus-$pv" tb="$STAMP_DIR/promtool-$tv" ab="$STAMP_DIR/alertmanager-$av" mb=""
    install -m 0755 "$root/usr/bin/prometheus" "$pb" || fail "no usr/bin/prometheus in the package"
    install -m 0755 "$root/usr/bin/promtool" "$tb" || fail "no usr/bin/promtool in the package"
    install -m 0755 "$root/usr/bin/prometheus-alertmanager" "$ab" || fail "no usr/bin/prometheus-alertmanager in the package"
    if [[ -f "$root/usr/bin/amtool" ]]; then
        mb="$STAMP_DIR/amtool-$av"
        install -m 0755 "$root/usr/bin/amtool" "$mb"
    fi
    # Debian's Alertmanager reads its notification templates from this fixed path.
    local share="$STAMP_DIR/alertmanager-share-$av"
    rm -rf "$share" && mkdir -p "$share"
    cp "$root"/usr/share/prometheus/alertmanager/*.tmpl "$share/" || fail "no alertmanager templates in the package"
    local b
    for b in "$pb" "$tb" "$ab" $mb; do
        "$b" --version >>"$STEP_LOG" 2>&1 || fail "$(basename "$b") does not run on this machine (--version failed)"
    done
    rm -rf "$root" "$APT_DIR"/debs/*.deb
    cat >"$marker" <<EOF
PROMETHEUS_VERSION='$pv'
PROMETHEUS_BIN='$pb'
PROMTOOL_VERSION='$tv'
PROMTOOL_BIN='$tb'
ALERTMANAGER_VERSION='$av'
ALERTMANAGER_BIN='$ab'
AMTOOL_BIN='$mb'
ALERTMANAGER_SHARE='$share'
EOF
    done_step "fetched prometheus $pv, promtool $tv, alertmanager $av"
}

install_prometheus() {
    install_debian
    # shellcheck disable=SC1091
    source "$STAMP_DIR/debian-sid.env"
    link_bin "$PROMETHEUS_BIN" prometheus
    link_bin "$PROMTOOL_BIN" promtool
}

install_alertmanager() {
    install_debian
    # shellcheck disable=SC1091
    source "$STAMP_DIR/debian-sid.env"
    link_bin "$ALERTMANAGER_BIN" alertmanager
    if [[ -n "${AMTOOL_BIN:-}" ]]; then link_bin "$AMTOOL_BIN" amtool; fi
    # Debian builds Alertmanager to load default.tmpl/email.tmpl from
    # /usr/share/prometheus/alertmanager (no flag changes that): put the package's two
    # template files there, the only thing this installer writes outside its cache.
    local system_share=/usr/share/prometheus/alertmanager
    if [[ ! -f "$system_share/default.tmpl" ]]; then
        if mkdir -p "$system_share" 2>/dev/null && cp "$ALERTMANAGER_SHARE"/*.tmpl "$system_share/"; then
            echo "  alertmanager: installed its templates into $system_share"
        else
            echo "  warning: alertmanager needs $system_share/default.tmpl (copy it from $ALERTMANAGER_SHARE as root)" >&2
        fi
    fi
}

# ---------------------------------------------------------------------------------------
# verification: every installed binary answers --version
# ---------------------------------------------------------------------------------------
verify() { # verify NAME...
    step verify "checking the installed binaries"
    local name flag out
    for name in "$@"; do
        case "$name" in
            victoria-logs | k8s-check) flag=-version ;;
            jaeger) flag=version ;;
            *) flag=--version ;;
        esac
        [[ -x "$BIN_DIR/$name" ]] || fail "$BIN_DIR/$name is missing"
        out="$("$BIN_DIR/$name" "$flag" 2>&1)" || { echo "$out" >>"$STEP_LOG"; fail "$name $flag failed"; }
        echo "$out" >>"$STEP_LOG"
        printf '         %-13s %s\n' "$name" "$(echo "$out" | grep -m1 -i version || echo "$out" | head -1)"
    done
    done_step "all answer --version"
}

# ---------------------------------------------------------------------------------------
main() {
    local names=() arg
    for arg in "$@"; do
        case "$arg" in
            --refresh) REFRESH=1 ;;
            -h | --help)
                sed -n '2,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
                return 0
                ;;
            otelcol | prometheus | alertmanager | victoria-logs | jaeger | k8s-check | grammars) names+=("$arg") ;;
            promtool) names+=(prometheus) ;;
            amtool) names+=(alertmanager) ;;
            *)
                echo "install_backends: unknown backend '$arg' (known: ${ALL[*]}, promtool, amtool)" >&2
                return 2
                ;;
        esac
    done
    ((${#names[@]})) || names=("${ALL[@]}")

    command -v go >/dev/null || { echo "install_backends: go is not installed" >&2; return 1; }
    mkdir -p "$CACHE" "$LOG_DIR" "$STAMP_DIR" "$BIN_DIR"
    # One install at a time per cache (CI and a developer may share it).
    exec 9>"$CACHE/install.lock"
    if ! flock -n 9; then
        say "waiting for another install using $CACHE"
        flock 9
    fi
    say "cache: $CACHE  ($(go_version), GOSUMDB=$(go env GOSUMDB))"

    local done_names=" " check=()
    for arg in "${names[@]}"; do
        [[ "$done_names" == *" $arg "* ]] && continue
        done_names+="$arg "
        "install_$arg"
        case "$arg" in
            prometheus) check+=(prometheus promtool) ;;
            alertmanager)
                check+=(alertmanager)
                [[ -x "$BIN_DIR/amtool" ]] && check+=(amtool)
                ;;
            grammars) ;;
            *) check+=("$arg") ;;
        esac
    done
    verify "${check[@]}"
    say "installed into ${BIN_DIR#"$REPO"/}: ${check[*]}"
}

# One compound command: bash reads it whole before running it, so editing this file
# while an install runs cannot feed it stray lines afterwards.
{
    main "$@"
    exit
}
