// Package bench measures weft against plain wireguard-go in the network lab, as root, with
// ratios taken in the same run: go test -bench . -benchtime 1x ./bench
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/labrun"
	"github.com/weftmesh/weft/internal/netlab"
	"github.com/weftmesh/weft/wire"
)

const iperfSeconds = "5"

// iperf runs an iperf3 TCP test from client to the server address and returns bits/s.
func iperf(b *testing.B, client *netlab.Host, server string) float64 {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := client.Run(ctx, "iperf3", "-c", server, "-t", iperfSeconds, "-J")
	if err != nil {
		b.Fatalf("iperf3: %v", err)
	}
	var res struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		b.Fatalf("iperf3 output: %v", err)
	}
	return res.End.SumReceived.BitsPerSecond
}

// peakRSS reads a process's high-water resident set size in bytes.
func peakRSS(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// plainWireGuard builds wireguard-go's own command from the same module weft links, with
// its default (unbounded) pools: the baseline.
func plainWireGuard(b *testing.B) string {
	b.Helper()
	dir := b.TempDir()
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "wireguard-go"), "golang.zx2c4.com/wireguard")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build wireguard-go: %v: %s", err, out)
	}
	return filepath.Join(dir, "wireguard-go")
}

// wgUp runs plain wireguard-go on h as interface ifname with the same key, address and peer
// as weft used, configured with wg(8) over its UAPI socket. The UAPI socket directory is
// shared by all namespaces, so ifname must be unique on the machine.
func wgUp(b *testing.B, h *netlab.Host, bin, ifname, stateDir string, self wire.Device, peer wire.Device, peerEndpoint string) *netlab.Proc {
	b.Helper()
	p := h.Start(bin, "-f", ifname)
	keyFile := filepath.Join(stateDir, "private.key")
	run := func(args ...string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := h.Run(ctx, args...); err != nil {
			b.Fatal(err)
		}
	}
	if err := labrun.Poll(10*time.Second, func() error {
		_, err := os.Stat("/var/run/wireguard/" + ifname + ".sock")
		return err
	}); err != nil {
		b.Fatalf("wireguard-go did not start: %v", err)
	}
	run("wg", "set", ifname, "private-key", keyFile, "listen-port", "51820",
		"peer", peer.PublicKey.String(), "endpoint", peerEndpoint, "allowed-ips", peer.Address.String()+"/32",
		"persistent-keepalive", "25")
	run("ip", "addr", "add", self.Address.String()+"/10", "dev", ifname)
	run("ip", "link", "set", ifname, "mtu", "1420", "up")
	return p
}

// BenchmarkTunnel compares TCP throughput through weftd's tunnel with plain wireguard-go
// between the same two namespaces behind two home NAT routers, alternating, and records
// weftd's peak RSS.
func BenchmarkTunnel(b *testing.B) {
	lab := netlab.New(b, "tput")
	bins := labrun.Build(b)
	wg := plainWireGuard(b)
	broker := labrun.StartBroker(b, bins, lab.AddHost("broker", lab.Internet()))
	key := broker.NewAccount("bench")
	_, lanA := lab.AddRouter("routera", lab.Internet(), netlab.NATHome)
	_, lanB := lab.AddRouter("routerb", lab.Internet(), netlab.NATHome)
	a := labrun.StartDevice(b, bins, lab.AddHost("deva", lanA), "deva")
	c := labrun.StartDevice(b, bins, lab.AddHost("devb", lanB), "devb")
	a.Up(broker, key)
	c.Up(broker, key)
	selfA, selfB := a.Self(), c.Self()
	connected := func() {
		b.Helper()
		if err := labrun.Poll(30*time.Second, func() error { return a.Ping(selfB) }); err != nil {
			b.Fatalf("deva → devb: %v", err)
		}
	}
	connected()
	// Public endpoints as each side's tunnel uses them, for the plain baseline.
	endpointOf := func(d *labrun.Device, peer string) string {
		for _, p := range d.MustStatus().Peers {
			if p.Name == peer && p.Endpoint.IsValid() {
				return p.Endpoint.String()
			}
		}
		b.Fatalf("%s has no endpoint for %s", d.Name, peer)
		return ""
	}
	epB, epA := endpointOf(a, "devb"), endpointOf(c, "deva")
	c.Host.Start("iperf3", "-s")
	time.Sleep(200 * time.Millisecond) // iperf3 -s has no readiness signal; a failed connect fails the run

	var weft, plain []float64
	var rss int64
	ifA, ifB := lab.Prefix()+"a", lab.Prefix()+"b"
	for i := 0; i < b.N; i++ {
		for round := 0; round < 3; round++ {
			connected()
			weft = append(weft, iperf(b, a.Host, selfB.Address.String()))
			for _, d := range []*labrun.Device{a, c} {
				if r, err := peakRSS(d.Proc.Pid()); err == nil && r > rss {
					rss = r
				}
				d.Stop()
			}
			pa := wgUp(b, a.Host, wg, ifA, a.State, selfA, selfB, epB)
			pb := wgUp(b, c.Host, wg, ifB, c.State, selfB, selfA, epA)
			if err := labrun.Poll(30*time.Second, func() error { return a.Ping(selfB) }); err != nil {
				b.Fatalf("plain wireguard-go deva → devb: %v", err)
			}
			plain = append(plain, iperf(b, a.Host, selfB.Address.String()))
			pa.Stop()
			pb.Stop()
			a.Start()
			c.Start()
		}
	}
	b.ReportMetric(median(weft)/1e9, "weft-Gbit/s")
	b.ReportMetric(median(plain)/1e9, "plain-Gbit/s")
	b.ReportMetric(median(weft)/median(plain), "ratio")
	b.ReportMetric(float64(rss)/(1<<20), "weftd-peak-RSS-MiB")
	b.Logf("weft %v Gbit/s, plain %v Gbit/s", scale(weft), scale(plain))
}

func scale(xs []float64) []string {
	var out []string
	for _, x := range xs {
		out = append(out, fmt.Sprintf("%.2f", x/1e9))
	}
	return out
}

// BenchmarkJoin measures, on the flat network, the time from `weft up` on a fresh device to
// its first ping reply from a peer, and the time from `device remove` until the peer has
// dropped it.
func BenchmarkJoin(b *testing.B) {
	lab := netlab.New(b, "join")
	bins := labrun.Build(b)
	broker := labrun.StartBroker(b, bins, lab.AddHost("broker", lab.Internet()))
	key := broker.NewAccount("bench")
	first := labrun.StartDevice(b, bins, lab.AddHost("first", lab.Internet()), "first")
	first.Up(broker, key)
	target := first.Self()

	var joins, cuts []float64
	for i := 0; i < b.N; i++ {
		for round := 0; round < 5; round++ {
			name := fmt.Sprintf("j%d%d", i, round)
			d := labrun.StartDevice(b, bins, lab.AddHost(name, lab.Internet()), name)
			start := time.Now()
			d.Up(broker, key)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			_, err := d.Host.Run(ctx, "ping", "-n", "-c1", "-i", "0.01", "-w", "15", target.Address.String())
			cancel()
			if err != nil {
				b.Fatalf("%s never reached first: %v", name, err)
			}
			joins = append(joins, time.Since(start).Seconds())

			start = time.Now()
			broker.MustAdmin("device", "remove", "bench", name)
			if err := labrun.Poll(10*time.Second, func() error {
				for _, p := range first.MustStatus().Peers {
					if p.Name == name {
						return fmt.Errorf("still a peer")
					}
				}
				return nil
			}); err != nil {
				b.Fatalf("removal of %s: %v", name, err)
			}
			cuts = append(cuts, time.Since(start).Seconds())
			d.Stop()
		}
	}
	b.ReportMetric(median(joins)*1000, "join-median-ms")
	b.ReportMetric(maxOf(joins)*1000, "join-max-ms")
	b.ReportMetric(median(cuts)*1000, "revoke-median-ms")
	b.ReportMetric(maxOf(cuts)*1000, "revoke-max-ms")
}

func maxOf(xs []float64) float64 {
	m := xs[0]
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

// BenchmarkPolicyPropagation measures the time from `weft-broker policy set` starting to
// every device's kernel (nftables) holding the new rules, alternating between two policies.
func BenchmarkPolicyPropagation(b *testing.B) {
	lab := netlab.New(b, "policy")
	bins := labrun.Build(b)
	broker := labrun.StartBroker(b, bins, lab.AddHost("broker", lab.Internet()))
	key := broker.NewAccount("bench")
	var devs []*labrun.Device
	for _, name := range []string{"laptop", "server", "other"} {
		d := labrun.StartDevice(b, bins, lab.AddHost(name, lab.Internet()), name)
		d.Up(broker, key)
		d.Self()
		devs = append(devs, d)
	}
	dir := b.TempDir()
	policies := []struct{ file, mark string }{
		{`{"default":"deny","groups":{"s":["server"],"l":["laptop","other"]},"rules":[{"from":["group:l"],"to":["group:s"],"ports":["tcp/2201"]}]}`, "2201"},
		{`{"default":"deny","groups":{"s":["server","other"],"l":["laptop"]},"rules":[{"from":["group:l"],"to":["group:s"],"ports":["tcp/2202"]}]}`, "2202"},
	}
	// enforced reports whether d's kernel holds the rules of the policy marked mark: the
	// server (and, for 2202, other) accept that port; every device drops by default.
	enforced := func(d *labrun.Device, mark string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		out, err := d.Host.Run(ctx, "nft", "list", "table", "inet", "weft")
		if err != nil {
			return err
		}
		wantPort := d.Name == "server" || (d.Name == "other" && mark == "2202")
		if strings.Contains(string(out), "dport "+mark) != wantPort || !strings.Contains(string(out), "drop") {
			return fmt.Errorf("%s does not hold policy %s yet", d.Name, mark)
		}
		return nil
	}
	var times []float64
	for i := 0; i < b.N; i++ {
		for round := 0; round < 6; round++ {
			p := policies[round%2]
			file := filepath.Join(dir, fmt.Sprintf("p%d.json", round))
			if err := os.WriteFile(file, []byte(p.file), 0o644); err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			broker.MustAdmin("policy", "set", "bench", file)
			for _, d := range devs {
				if err := labrun.Poll(10*time.Second, func() error { return enforced(d, p.mark) }); err != nil {
					b.Fatal(err)
				}
			}
			times = append(times, time.Since(start).Seconds())
		}
	}
	b.ReportMetric(median(times)*1000, "propagation-median-ms")
	b.ReportMetric(maxOf(times)*1000, "propagation-max-ms")
}
