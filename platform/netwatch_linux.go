package platform

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Linux: rtnetlink address and route events of the namespace weftd runs in. Events only
// wake the watcher; what counts is the state they leave: the host's addresses and its
// main routing table, compared before and after a burst. So a DHCP renewal or an IPv6
// router advertisement that only refreshes lifetimes calls nobody.

// resubscribeAfter: when the kernel drops events (the socket's buffer overflowed, the
// subscription ends), the watcher subscribes again after this pause and compares the
// state, since the lost events may have changed it.
const resubscribeAfter = time.Second

// nlEventBuffer is how many events wait for the watcher in each channel.
const nlEventBuffer = 64

type nlWatcher struct {
	cfg NetWatchConfig
	// subscribed, if set, is called once the first subscription is in place and the
	// state it compares against read (tests wait for it before changing anything).
	subscribed func()
}

func newNetWatcher(cfg NetWatchConfig) NetWatcher { return &nlWatcher{cfg: cfg} }

var errEventsEnded = errors.New("the kernel ended the event subscription")

func (w *nlWatcher) Watch(ctx context.Context, changed func()) error {
	var prev []string
	first := true
	for {
		err := w.watchOnce(ctx, &prev, first, changed)
		if ctx.Err() != nil {
			return nil
		}
		if !errors.Is(err, errEventsEnded) {
			return err
		}
		w.cfg.Logger.Debug("network events lost; subscribing again", "in", resubscribeAfter)
		first = false
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(resubscribeAfter):
		}
	}
}

// watchOnce runs one subscription until ctx ends or the subscription does. The state is
// read after subscribing, so that no change falls between the two; on a resubscription
// (first false) a state different from *prev is a change.
func (w *nlWatcher) watchOnce(ctx context.Context, prev *[]string, first bool, changed func()) error {
	done := make(chan struct{})
	addrs := make(chan netlink.AddrUpdate, nlEventBuffer)
	routes := make(chan netlink.RouteUpdate, nlEventBuffer)
	onErr := func(err error) {
		select {
		case <-done: // closing the subscription makes its reader fail; nothing to say
		default:
			w.cfg.Logger.Debug("network events", "err", err)
		}
	}
	if err := netlink.AddrSubscribeWithOptions(addrs, done, netlink.AddrSubscribeOptions{ErrorCallback: onErr}); err != nil {
		return fmt.Errorf("network watcher: subscribe to address changes: %w", err)
	}
	if err := netlink.RouteSubscribeWithOptions(routes, done, netlink.RouteSubscribeOptions{ErrorCallback: onErr}); err != nil {
		close(done)
		for range addrs {
		}
		return fmt.Errorf("network watcher: subscribe to route changes: %w", err)
	}
	defer func() {
		// The readers block on full channels: drain them until they close.
		close(done)
		for range addrs {
		}
		for range routes {
		}
	}()
	cur, err := w.state()
	if err != nil {
		return err
	}
	if !first && !slices.Equal(cur, *prev) {
		changed()
	}
	*prev = cur
	if first && w.subscribed != nil {
		w.subscribed()
	}

	b := burst{quiet: w.cfg.Quiet, maxDelay: w.cfg.MaxDelay}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	ignored := map[int]bool{} // by interface index, filled as events name them
	for {
		select {
		case <-ctx.Done():
			return nil
		case u, ok := <-addrs:
			if !ok {
				return errEventsEnded
			}
			if w.countsAddr(u, ignored) {
				b.add(time.Now())
			}
		case u, ok := <-routes:
			if !ok {
				return errEventsEnded
			}
			if w.countsRoute(u.Route, ignored) {
				b.add(time.Now())
			}
		case <-timer.C:
		}
		fire, wait := b.due(time.Now())
		if wait > 0 {
			timer.Reset(wait)
		}
		if !fire {
			continue
		}
		cur, err := w.state()
		if err != nil {
			w.cfg.Logger.Warn("network watcher: read the network state", "err", err)
			continue
		}
		clear(ignored) // an index may be reused by a new interface
		if !slices.Equal(cur, *prev) {
			*prev = cur
			changed()
		}
	}
}

// isIgnored reports whether interface index is the one to ignore.
func (w *nlWatcher) isIgnored(index int, cache map[int]bool) bool {
	if w.cfg.Ignore == "" || index == 0 {
		return false
	}
	ig, ok := cache[index]
	if !ok {
		// An interface that is gone cannot be told apart; its disappearance counts.
		ifc, err := net.InterfaceByIndex(index)
		ig = err == nil && ifc.Name == w.cfg.Ignore
		cache[index] = ig
	}
	return ig
}

func (w *nlWatcher) countsAddr(u netlink.AddrUpdate, ignored map[int]bool) bool {
	return usableAddr(u.LinkAddress.IP) && !w.isIgnored(u.LinkIndex, ignored)
}

func (w *nlWatcher) countsRoute(r netlink.Route, ignored map[int]bool) bool {
	return routeCounts(r) && !w.isIgnored(r.LinkIndex, ignored)
}

// usableAddr: addresses that could be endpoints; link-local ones come and go with links.
func usableAddr(ip net.IP) bool {
	return !ip.IsLoopback() && !ip.IsLinkLocalUnicast() && !ip.IsMulticast() && !ip.IsUnspecified()
}

// routeCounts: routes of the main table, where the system's own routing lives (weft's
// are in a table of its own), except link-local prefixes, which every link brings.
func routeCounts(r netlink.Route) bool {
	if r.Table != unix.RT_TABLE_MAIN {
		return false
	}
	return r.Dst == nil || !r.Dst.IP.IsLinkLocalUnicast()
}

// state is the network as far as a change matters: the usable addresses and the main
// table's routes outside the ignored interface, as sorted comparable lines.
func (w *nlWatcher) state() ([]string, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("network watcher: list interfaces: %w", err)
	}
	skip := map[int]bool{}
	for _, l := range links {
		skip[l.Attrs().Index] = w.cfg.Ignore != "" && l.Attrs().Name == w.cfg.Ignore
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("network watcher: list addresses: %w", err)
	}
	var out []string
	for _, a := range addrs {
		if usableAddr(a.IP) && !skip[a.LinkIndex] {
			out = append(out, fmt.Sprintf("addr %d %s", a.LinkIndex, a.IPNet))
		}
	}
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("network watcher: list routes: %w", err)
	}
	for _, r := range routes {
		if routeCounts(r) && !skip[r.LinkIndex] {
			out = append(out, routeLine(r))
		}
	}
	slices.Sort(out)
	return out, nil
}

// routeLine renders what identifies a route and where it leads, not its lifetimes.
func routeLine(r netlink.Route) string {
	var sb strings.Builder
	dst := "default"
	if r.Dst != nil {
		dst = r.Dst.String()
	}
	fmt.Fprintf(&sb, "route %s dev %d via %s src %s metric %d", dst, r.LinkIndex, r.Gw, r.Src, r.Priority)
	for _, nh := range r.MultiPath {
		fmt.Fprintf(&sb, " nexthop dev %d via %s", nh.LinkIndex, nh.Gw)
	}
	return sb.String()
}
