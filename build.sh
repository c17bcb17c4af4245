#!/usr/bin/env bash
# build.sh — build, test and demo weft.
#
#   ./build.sh [build]      cross-build every cmd/ binary into dist/<os>-<arch>/, host binaries into bin/
#   ./build.sh deps         install the tools the tests and the demo need (Debian/Ubuntu, as root)
#   ./build.sh test [ARGS]  deps, go vet, then go test (all tests, e2e included; e2e need root)
#   ./build.sh demo         deps, host binaries, then a broker and four devices in the network lab
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

# Tools such as ip and nft live in sbin, which a non-login root shell may not have on PATH;
# Go is often in /usr/local/go/bin.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin:/usr/local/go/bin"
# Never let go.mod's version line trigger a toolchain download: the installed Go must do.
export GOTOOLCHAIN=local

# Cross-build targets, os/arch.
TARGETS=(linux/amd64 linux/arm64 windows/amd64 darwin/arm64)

# command → Debian package providing it.
DEPS=(
	"ip:iproute2"
	"nft:nftables"
	"ping:iputils-ping"
	"iperf3:iperf3"
	"conntrack:conntrack"
	"dig:dnsutils"
	"wg:wireguard-tools"
	"gcc:gcc"
	"chromium:chromium"         # the browser-login page test (broker)
	"dbus-run-session:dbus"     # the headless tray test's session bus (e2e)
	"miniupnpd:miniupnpd-nftables" # lab routers offering PCP/NAT-PMP (netlab, e2e)
)

say() { printf 'build.sh: %s\n' "$*"; }
die() {
	printf 'build.sh: %s\n' "$*" >&2
	exit 1
}

is_root() { [[ "$(id -u)" == 0 ]]; }

need_go() {
	command -v go >/dev/null 2>&1 || die "Go not found: install Go 1.26 (https://go.dev/dl/) and put it on PATH"
	local v major minor
	v="$(go env GOVERSION)" # e.g. go1.26.8
	v="${v#go}"
	major="${v%%.*}"
	minor="${v#*.}"
	minor="${minor%%[.a-z]*}"
	if ((major < 1 || (major == 1 && minor < 26))); then
		die "Go $v is too old: install Go 1.26"
	fi
}

cmd_deps() {
	need_go
	local missing=() entry c
	for entry in "${DEPS[@]}"; do
		c="${entry%%:*}"
		command -v "$c" >/dev/null 2>&1 || missing+=("${entry#*:}")
	done
	if ((${#missing[@]} == 0)); then
		return 0
	fi
	if [[ -f /etc/debian_version ]] && command -v apt-get >/dev/null 2>&1 && is_root; then
		say "installing ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq </dev/null
		apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
		return 0
	fi
	if [[ -f /etc/debian_version ]]; then
		say "missing tools; run as root: apt-get install ${missing[*]}" >&2
	else
		say "missing tools; install the equivalents of these Debian packages: ${missing[*]}" >&2
	fi
	return 1
}

# cmd_dirs prints the cmd/ subdirectories that hold a main package.
cmd_dirs() {
	local d
	[[ -d cmd ]] || return 0
	for d in cmd/*/; do
		d="${d%/}"
		compgen -G "$d/*.go" >/dev/null && echo "$d"
	done
	return 0
}

build_host() {
	local dirs
	mapfile -t dirs < <(cmd_dirs)
	if ((${#dirs[@]} == 0)); then
		say "no binaries under cmd/ yet"
		return 0
	fi
	mkdir -p bin
	say "building ${dirs[*]#cmd/} into bin/"
	go build -o bin/ "${dirs[@]/#/./}"
}

cmd_build() {
	need_go
	local dirs target os arch d name out
	mapfile -t dirs < <(cmd_dirs)
	if ((${#dirs[@]} == 0)); then
		say "no binaries under cmd/ yet"
		return 0
	fi
	for target in "${TARGETS[@]}"; do
		os="${target%/*}"
		arch="${target#*/}"
		out="dist/$os-$arch"
		mkdir -p "$out"
		for d in "${dirs[@]}"; do
			name="${d#cmd/}"
			# The tray's macOS menu bar code is Cocoa through cgo: it cannot be built
			# from another OS with CGO_ENABLED=0.
			if [[ "$name" == weft-tray && "$os" == darwin ]]; then
				say "skipping $name for $target: it needs cgo, build it on a Mac"
				continue
			fi
			[[ "$os" == windows ]] && name="$name.exe"
			# A GUI-subsystem tray opens no console window when it starts at login.
			local ldflags=""
			[[ "$name" == weft-tray.exe ]] && ldflags="-H=windowsgui"
			say "building $out/$name"
			CGO_ENABLED=0 GOOS="$os" GOARCH="$arch" go build -trimpath -ldflags="$ldflags" -o "$out/$name" "./$d"
		done
	done
	build_host
}

# is_pkg_arg reports whether a go test argument names packages rather than being a flag.
is_pkg_arg() {
	case "$1" in
	. | ./* | ../* | github.com/weftmesh/weft*) return 0 ;;
	*) return 1 ;;
	esac
}

cmd_test() {
	cmd_deps
	local args=("$@") pkgs=() a
	for a in "${args[@]}"; do
		is_pkg_arg "$a" && pkgs+=("$a")
	done
	if ((${#pkgs[@]} == 0)); then
		pkgs=(./...)
		args+=(./...)
	fi
	if ! is_root; then
		say "WARNING: not root: end-to-end tests (network lab) will skip; run as root for the full suite" >&2
	fi
	# Build the binaries once for every package's end-to-end tests (see internal/labrun).
	build_host
	export WEFT_BIN_DIR="$PWD/bin"
	say "go vet ${pkgs[*]}"
	go vet "${pkgs[@]}"
	say "go test -count=1 -timeout 60m ${args[*]}"
	go test -count=1 -timeout 60m "${args[@]}"
}

cmd_demo() {
	cmd_deps
	is_root || die "the demo runs in network namespaces: run it as root"
	build_host
	go run ./internal/demo -bin bin "$@"
}

main() {
	local cmd="${1:-build}"
	[[ $# -gt 0 ]] && shift
	case "$cmd" in
	build) cmd_build "$@" ;;
	deps) cmd_deps "$@" ;;
	test) cmd_test "$@" ;;
	demo) cmd_demo "$@" ;;
	-h | --help | help) sed -n '2,8s/^# \{0,1\}//p' "$0" ;;
	*) die "unknown command \"$cmd\" (want build, deps, test or demo)" ;;
	esac
}

main "$@"
