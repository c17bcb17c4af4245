package mesh

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/weftmesh/weft/wire"
)

// netnsChildEnv marks a test binary re-executed inside a fresh network namespace.
const netnsChildEnv = "WEFT_MESH_TEST_NETNS"

// inFreshNetns runs the calling test again, alone, in a new network namespace (the test
// binary under "ip netns exec") and fails it unless it passes there. It returns true in
// that child, where the test body should run, and false in the parent.
func inFreshNetns(t *testing.T) bool {
	t.Helper()
	if os.Getenv(netnsChildEnv) != "" {
		return true
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	ns := "weft-mesh-" + regexp.MustCompile(`[^a-zA-Z0-9]+`).ReplaceAllString(t.Name(), "-") + "-" + strconv.Itoa(os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", ns, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
	})
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0],
		"-test.run", "^"+regexp.QuoteMeta(t.Name())+"$", "-test.count", "1", "-test.v")
	cmd.Env = append(os.Environ(), netnsChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: "+t.Name())) {
		t.Fatalf("in network namespace %s: %v\n%s", ns, err, out)
	}
	t.Logf("in network namespace %s:\n%s", ns, out)
	return false
}

const testIface = "weft-t0"

func testConfig(t *testing.T, mode string, log *slog.Logger) Config {
	t.Helper()
	k, err := wire.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return Config{TUNName: testIface, PrivateKey: k, Address: netip.MustParsePrefix("100.64.0.5/10"), Mode: mode, Logger: log}
}

// linkGone fails t if the test interface still exists.
func linkGone(t *testing.T, after string) {
	t.Helper()
	_, err := netlink.LinkByName(testIface)
	var notFound netlink.LinkNotFoundError
	if !errors.As(err, &notFound) {
		t.Errorf("after %s: interface %s still there (lookup error %v)", after, testIface, err)
	}
}

// TestOpenModes: kernel mode either gives a kernel device or the clear error and leaves
// nothing behind; auto mode picks the kernel exactly when kernel mode works, and otherwise
// falls back to userspace saying why; either way the device is up, configurable and
// removed by Close. On a machine without the wireguard module (like the lab's), auto is
// userspace.
func TestOpenModes(t *testing.T) {
	if !inFreshNetns(t) {
		return
	}
	dev, err := Open(testConfig(t, ModeKernel, nil))
	kernelWorks := err == nil
	if kernelWorks {
		if dev.Kind() != KindKernel {
			t.Errorf("kernel mode: Kind() = %q", dev.Kind())
		}
		if l, err := netlink.LinkByName(testIface); err != nil || l.Type() != "wireguard" {
			t.Errorf("kernel mode: link %v, %v; want a wireguard link", l, err)
		}
		if err := dev.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	} else {
		t.Logf("kernel mode: %v", err)
		if !strings.HasPrefix(err.Error(), "kernel WireGuard not available: ") {
			t.Errorf("kernel mode on a machine without it: error %q does not say kernel WireGuard is not available", err)
		}
	}
	linkGone(t, "kernel mode")

	var logs bytes.Buffer
	dev, err = Open(testConfig(t, ModeAuto, slog.New(slog.NewTextHandler(&logs, nil))))
	if err != nil {
		t.Fatalf("auto mode: %v", err)
	}
	want := KindUserspace
	if kernelWorks {
		want = KindKernel
	}
	if dev.Kind() != want {
		t.Errorf("auto mode: Kind() = %q, want %q (kernel mode worked: %v)", dev.Kind(), want, kernelWorks)
	}
	if !kernelWorks && !strings.Contains(logs.String(), "level=INFO msg=\"kernel WireGuard not available; using userspace wireguard-go\" reason=") {
		t.Errorf("auto mode fell back without an Info log saying why:\n%s", logs.String())
	}
	checkDevice(t, dev)
	linkGone(t, "auto mode")

	dev, err = Open(testConfig(t, ModeUserspace, nil))
	if err != nil {
		t.Fatalf("userspace mode: %v", err)
	}
	if dev.Kind() != KindUserspace {
		t.Errorf("userspace mode: Kind() = %q", dev.Kind())
	}
	checkDevice(t, dev)
	linkGone(t, "userspace mode")
}

// checkDevice checks an open device's interface, peers and stats, then closes it.
func checkDevice(t *testing.T, dev Device) {
	t.Helper()
	defer func() {
		if err := dev.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if err := dev.Close(); err != nil {
			t.Errorf("second close: %v", err)
		}
	}()
	if dev.InterfaceName() != testIface || dev.ListenPort() == 0 {
		t.Errorf("interface %q, port %d; want %s and the picked port", dev.InterfaceName(), dev.ListenPort(), testIface)
	}
	link, err := netlink.LinkByName(testIface)
	if err != nil {
		t.Fatalf("find %s: %v", testIface, err)
	}
	if link.Attrs().Flags&net.FlagUp == 0 || link.Attrs().MTU != DefaultMTU {
		t.Errorf("%s: flags %v, MTU %d; want up with MTU %d", testIface, link.Attrs().Flags, link.Attrs().MTU, DefaultMTU)
	}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
	if err != nil || len(addrs) != 1 || addrs[0].IPNet.String() != "100.64.0.5/10" {
		t.Errorf("%s addresses %v (%v); want 100.64.0.5/10", testIface, addrs, err)
	}

	p := Peer{PublicKey: key(3), AllowedIPs: []netip.Prefix{netip.MustParsePrefix("100.64.0.9/32")},
		Endpoint: netip.MustParseAddrPort("192.0.2.9:51820"), PersistentKeepalive: 0 * time.Second}
	if err := dev.SetPeers([]Peer{p}); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	st, err := dev.Stats()
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if len(st) != 1 || st[p.PublicKey].Endpoint != p.Endpoint {
		t.Errorf("stats after adding a peer: %+v", st)
	}
	if err := dev.SetPeers(nil); err != nil {
		t.Fatalf("SetPeers(nil): %v", err)
	}
	if st, err := dev.Stats(); err != nil || len(st) != 0 {
		t.Errorf("stats after removing every peer: %+v, %v", st, err)
	}
}

// TestOpenRefusesForeignInterface: an existing interface of another kind under the name
// is refused in kernel and auto mode, and left alone.
func TestOpenRefusesForeignInterface(t *testing.T) {
	if !inFreshNetns(t) {
		return
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name = testIface
	if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil {
		t.Fatalf("create bridge %s: %v", testIface, err)
	}
	for _, mode := range []string{ModeKernel, ModeAuto} {
		dev, err := Open(testConfig(t, mode, nil))
		if err == nil {
			dev.Close()
			t.Errorf("%s mode replaced a bridge interface", mode)
			continue
		}
		if !strings.Contains(err.Error(), "interface "+testIface+" already exists and is a bridge interface, not WireGuard") {
			t.Errorf("%s mode: error %q does not explain the refusal", mode, err)
		}
		if l, err := netlink.LinkByName(testIface); err != nil || l.Type() != "bridge" {
			t.Errorf("%s mode: the bridge interface is gone or changed: %v, %v", mode, l, err)
		}
	}
}
