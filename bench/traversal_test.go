package bench

import (
	"bufio"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/labrun"
	"github.com/weftmesh/weft/internal/netlab"
)

// traversalScenario places two devices; roam is the router that gets a new address.
type traversalScenario struct {
	name  string
	build func(lab *netlab.Lab) (a, b *netlab.Host, roam *netlab.Router)
}

func behindRouter(lab *netlab.Lab, name string, kind netlab.NATKind) (*netlab.Host, *netlab.Router) {
	r, lan := lab.AddRouter("r"+name, lab.Internet(), kind)
	return lab.AddHost(name, lan), r
}

var traversalScenarios = []traversalScenario{
	{"home", func(lab *netlab.Lab) (*netlab.Host, *netlab.Host, *netlab.Router) {
		a, ra := behindRouter(lab, "deva", netlab.NATHome)
		b, _ := behindRouter(lab, "devb", netlab.NATHome)
		return a, b, ra
	}},
	{"noinput", func(lab *netlab.Lab) (*netlab.Host, *netlab.Host, *netlab.Router) {
		a, ra := behindRouter(lab, "deva", netlab.NATNoInputFilter)
		b, _ := behindRouter(lab, "devb", netlab.NATNoInputFilter)
		return a, b, ra
	}},
	{"symmetric", func(lab *netlab.Lab) (*netlab.Host, *netlab.Host, *netlab.Router) {
		a, ra := behindRouter(lab, "deva", netlab.NATSymmetric)
		b, _ := behindRouter(lab, "devb", netlab.NATHome)
		return a, b, ra
	}},
	{"bothsym", func(lab *netlab.Lab) (*netlab.Host, *netlab.Host, *netlab.Router) {
		a, ra := behindRouter(lab, "deva", netlab.NATSymmetric)
		b, _ := behindRouter(lab, "devb", netlab.NATSymmetric)
		return a, b, ra
	}},
	{"udpblocked", func(lab *netlab.Lab) (*netlab.Host, *netlab.Host, *netlab.Router) {
		a, ra := behindRouter(lab, "deva", netlab.NATHome)
		ra.BlockUDP()
		b, _ := behindRouter(lab, "devb", netlab.NATHome)
		return a, b, ra
	}},
}

// pingGap runs `ping -D -i interval` from d to addr for dur and returns the longest time
// between two consecutive replies (or from the start to the first one).
func pingGap(ctx context.Context, d *labrun.Device, addr string, dur time.Duration, during func()) (time.Duration, error) {
	cmd := d.Host.Command(ctx, "ping", "-n", "-D", "-i", "0.05", "-w", strconv.Itoa(int(dur.Seconds())), addr)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	start := float64(time.Now().UnixNano()) / 1e9
	time.Sleep(time.Second)
	during()
	var last, worst float64
	last = start
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "[") || !strings.Contains(line, "bytes from") {
			continue
		}
		ts, err := strconv.ParseFloat(strings.Trim(strings.Fields(line)[0], "[]"), 64)
		if err != nil {
			continue
		}
		worst = max(worst, ts-last)
		last = ts
	}
	cmd.Wait()
	return time.Duration(worst * float64(time.Second)), nil
}

// BenchmarkTraversal measures per NAT scenario: the time from both devices' `weft up` to
// the first ping reply (relay first), to a direct path (where the NATs permit one), the
// longest gap in replies while one device roams, and TCP throughput on the path chosen.
func BenchmarkTraversal(b *testing.B) {
	for _, sc := range traversalScenarios {
		b.Run(sc.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				lab := netlab.New(b, "trv"+sc.name[:min(len(sc.name), 9)])
				bins := labrun.Build(b)
				broker := labrun.StartBroker(b, bins, lab.AddHost("broker", lab.Internet()))
				// The default per-client rate (100 MB/s, 0.8 Gbit/s) would be what a
				// relayed tunnel measures here: lift it to measure the data path.
				labrun.StartRelay(b, bins, lab.AddHost("relay", lab.Internet()), broker, "lab", "--rate", "1G")
				key := broker.NewAccount("bench")
				ha, hb, roam := sc.build(lab)
				a := labrun.StartDevice(b, bins, ha, "deva")
				c := labrun.StartDevice(b, bins, hb, "devb")
				c.Up(broker, key)
				selfB := c.Self()
				start := time.Now()
				a.Up(broker, key)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err := a.Host.Run(ctx, "ping", "-n", "-c1", "-i", "0.01", "-w", "25", selfB.Address.String())
				cancel()
				if err != nil {
					b.Fatalf("no first reply: %v", err)
				}
				first := time.Since(start)
				var direct time.Duration
				if err := labrun.Poll(20*time.Second, func() error {
					p, err := a.Peer("devb")
					if err != nil || !strings.HasPrefix(p.Path, "direct") {
						return fmt.Errorf("path %q", p.Path)
					}
					return nil
				}); err == nil {
					direct = time.Since(start)
				}
				p, _ := a.Peer("devb")
				c.Host.Start("iperf3", "-s")
				time.Sleep(200 * time.Millisecond)
				tput := iperf(b, a.Host, selfB.Address.String())
				gctx, gcancel := context.WithTimeout(context.Background(), 60*time.Second)
				gap, err := pingGap(gctx, a, selfB.Address.String(), 12*time.Second, func() { roam.Renumber() })
				gcancel()
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(first.Milliseconds()), "first-reply-ms")
				if direct > 0 {
					b.ReportMetric(float64((direct - first).Milliseconds()), "direct-after-first-ms")
				}
				b.ReportMetric(tput/1e9, "Gbit/s")
				b.ReportMetric(float64(gap.Milliseconds()), "roam-gap-ms")
				b.Logf("%s: path %q (%s), first reply %s, direct at %s, %.2f Gbit/s, roaming gap %s",
					sc.name, p.Path, p.PathReason, first, direct, tput/1e9, gap)
			}
		})
	}
}
