#!/usr/bin/env bash
# The one command that verifies berth: formatting, lints, the benches' build and every
# test. CI runs it through .ci/run (with CI=true); `make verify` runs it locally.
#
# Environment:
#   BERTH_SKIP_CLIPPY=1   skip the clippy step (it type-checks everything a second time)
#   CI=true               use the nextest `ci` profile (.config/nextest.toml) and build
#                         without incremental state (a one-off build gains nothing
#                         from it, and it would double the target directory's size)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }
run() {
    printf '+ %s\n' "$*"
    "$@"
}
have() { command -v "$1" >/dev/null 2>&1; }

# --- Tools the tests need -------------------------------------------------------------
# Installed here rather than assumed, because CI may run on a fresh machine that has
# only the Rust toolchain:
#   etcdctl  the etcd compatibility tests drive berth with the real etcd client
#   protoc   the etcd-client crate's build script compiles etcd's .proto files with it
#   runc     the OCI runtime tests (crun refuses hosts with hybrid cgroups)
#   docker-registry  the image tests push to and pull from a registry on loopback
#   skopeo, umoci    read the test images back, as the tools of record, in the test
#            kit's own tests
#   busybox-static   the test image's only binary: it must be static to run in a
#            rootfs that holds nothing else (Debian's plain busybox is dynamic; this
#            package replaces it)
#   containernetworking-plugins  the CNI plugins (bridge, host-local, loopback,
#            portmap) in /usr/lib/cni that pod networking invokes
#   iptables, iproute2  service and port-mapping rules; network namespaces and
#            veths for pods and for agents that stand in for separate hosts
#   conntrack  the service proxy deletes UDP flows to endpoints that went away
#   curl     the authentication tests call the API server and an agent without kubectl
#            (kubectl with no user asks for a password)
#   openssl  a test pod calls the API over TLS with it (busybox's own TLS cannot
#            take the API's ECDSA certificate), with the libraries it links
#   kubectl  the kubectl suite runs the real client against berth (Debian's package is
#            old; the suite skips, saying so, below kubectl 1.30)
#   the official Kubernetes Python client (below), in a virtual environment, which on
#            Debian needs python3-venv
# runc and iptables live in /usr/sbin, which is not on every user's PATH.
have_sbin() { have "$1" || [[ -x /usr/sbin/$1 || -x /sbin/$1 ]]; }
# Whether Debian's package is installed (false without dpkg: apt-get is missing too,
# and the warning below names the package).
have_package() {
    have dpkg-query && [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}
missing_packages=()
have etcdctl || missing_packages+=(etcd-client)
have protoc || missing_packages+=(protobuf-compiler)
# protoc alone lacks google/protobuf/*.proto, which etcd's protos import.
[[ -f /usr/include/google/protobuf/descriptor.proto ]] || missing_packages+=(libprotobuf-dev)
have_sbin runc || missing_packages+=(runc)
have docker-registry || missing_packages+=(docker-registry)
have skopeo || missing_packages+=(skopeo)
have umoci || missing_packages+=(umoci)
have_package busybox-static || missing_packages+=(busybox-static)
[[ -x /usr/lib/cni/bridge ]] || missing_packages+=(containernetworking-plugins)
have_sbin iptables || missing_packages+=(iptables)
have_sbin ip || missing_packages+=(iproute2)
have_sbin conntrack || missing_packages+=(conntrack)
have curl || missing_packages+=(curl)
have openssl || missing_packages+=(openssl)
have kubectl || missing_packages+=(kubernetes-client)
# A virtual environment needs ensurepip, which Debian ships apart from python3.
if have python3 && ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
    missing_packages+=(python3-venv)
fi

if ((${#missing_packages[@]} > 0)); then
    step "installing ${missing_packages[*]}"
    sudo=()
    if [[ $(id -u) -ne 0 ]] && have sudo; then
        sudo=(sudo)
    fi
    if ! have apt-get; then
        echo "warning: apt-get is not available; install these Debian packages (or their" >&2
        echo "         equivalents) by hand: ${missing_packages[*]}" >&2
        echo "         Tests that need them will fail." >&2
    elif [[ $(id -u) -ne 0 ]] && ((${#sudo[@]} == 0)); then
        echo "warning: not root and no sudo; as root run: apt-get install ${missing_packages[*]}" >&2
    else
        # A failed install is reported, not fatal: protoc has a fallback below, and the
        # rest of the suite is still worth running.
        if ! run "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
            ! run "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
                apt-get install -y -qq --no-install-recommends "${missing_packages[@]}"; then
            echo "warning: apt-get could not install ${missing_packages[*]}" >&2
        fi
    fi
fi

# Without a system protoc, use the one the protoc-bin-vendored crate ships (the proto
# crate builds with it already; etcd-client's build script only looks at PROTOC and PATH).
if ! have protoc && [[ -z ${PROTOC:-} ]]; then
    case "$(uname -m)" in
        x86_64) protoc_arch=x86_64 ;;
        aarch64 | arm64) protoc_arch=aarch_64 ;;
        i?86) protoc_arch=x86_32 ;;
        ppc64le) protoc_arch=ppcle_64 ;;
        s390x) protoc_arch=s390_64 ;;
        *) protoc_arch=unknown ;;
    esac
    registry="${CARGO_HOME:-$HOME/.cargo}/registry/src"
    find_vendored_protoc() {
        compgen -G "$registry/*/protoc-bin-vendored-linux-$protoc_arch-*/bin/protoc" |
            sort -V | tail -n 1
    }
    vendored_protoc="$(find_vendored_protoc || true)"
    if [[ -z $vendored_protoc ]]; then
        # A fresh machine has not downloaded the crate yet.
        step "fetching crates to find the vendored protoc"
        run cargo fetch
        vendored_protoc="$(find_vendored_protoc || true)"
    fi
    if [[ -n $vendored_protoc ]]; then
        export PROTOC="$vendored_protoc"
    else
        echo "warning: no protoc found; build scripts that need it will fail" >&2
    fi
fi

# The official Kubernetes Python client, for orchestrator/berth/tests/python_client.rs,
# which finds it at this path (the test's CARGO_TARGET_TMPDIR). A virtual environment,
# because Debian's python3 refuses pip installs outside one; made once and kept. Offline
# the install fails quickly and the test skips.
python_client="${CARGO_TARGET_DIR:-target}/tmp/python-client"
if have python3 && ! "$python_client/bin/python" -c 'import kubernetes' >/dev/null 2>&1; then
    step "installing the Kubernetes Python client"
    if ! { run python3 -m venv --clear "$python_client" &&
        run "$python_client/bin/pip" install --quiet --disable-pip-version-check \
            --retries 1 --timeout 20 kubernetes; }; then
        echo "warning: could not install the kubernetes Python package; the Python client test will skip" >&2
        rm -rf "$python_client"
    fi
fi

step "tools"
tool_path() {
    command -v "$1" 2>/dev/null || { [[ -x /usr/sbin/$1 ]] && echo "/usr/sbin/$1"; } || echo "not found"
}
for tool in etcdctl runc docker-registry skopeo umoci iptables kubectl cargo-nextest; do
    printf '  %-16s %s\n' "$tool" "$(tool_path "$tool")"
done
printf '  %-16s %s\n' "busybox" "$(have_package busybox-static && echo "busybox-static" || echo "not the static one")"
printf '  %-16s %s\n' "CNI plugins" "$([[ -x /usr/lib/cni/bridge ]] && echo /usr/lib/cni || echo "not found")"
printf '  %-16s %s\n' protoc "${PROTOC:-$(tool_path protoc)}"
python_client_version="$("$python_client/bin/python" -c 'import kubernetes; print(kubernetes.__version__)' 2>/dev/null ||
    echo "not installed")"
printf '  %-16s %s\n' "python client" "$python_client_version"
run cargo --version
if [[ ${CI:-} == true ]]; then
    export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
fi
echo "CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-unset}; free disk: $(df -h --output=avail . | tail -1 | tr -d ' ')"

# --- Checks -------------------------------------------------------------------------
step "formatting"
run cargo fmt --all -- --check

if [[ ${BERTH_SKIP_CLIPPY:-0} == 1 ]]; then
    step "clippy skipped (BERTH_SKIP_CLIPPY=1)"
else
    step "clippy"
    run cargo clippy --workspace --all-targets -- -D warnings
fi

step "building the benches"
run cargo build -p berth-benches

# --- Tests --------------------------------------------------------------------------
step "tests"
echo "target directory: $(du -sh "${CARGO_TARGET_DIR:-target}" 2>/dev/null | cut -f1); free disk: $(df -h --output=avail . | tail -1 | tr -d ' ')"
if cargo nextest --version >/dev/null 2>&1; then
    profile=default
    if [[ ${CI:-} == true ]]; then
        profile=ci
    fi
    run cargo nextest run --workspace --no-fail-fast --profile "$profile"
    # nextest does not run doctests.
    run cargo test --workspace --doc
else
    echo "cargo-nextest not found; using cargo test"
    run cargo test --workspace --no-fail-fast
fi

step "all checks passed"
