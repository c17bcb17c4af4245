package service

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/weftmesh/weft/platform"
)

const (
	// netRetry is how soon a failed change to routes or gateway rules is first tried
	// again; the wait doubles up to netRetryMax while it keeps failing.
	netRetry    = 5 * time.Second
	netRetryMax = 2 * time.Minute
	// netRecheck is how often the bypass addresses are looked at again while routes go
	// through the tunnel: a peer's live endpoint can move without a map change.
	netRecheck = 10 * time.Second
	// resolveTimeout bounds looking up the broker's and relays' host names.
	resolveTimeout = 5 * time.Second
)

// netWant is the OS configuration this device's map and choices call for.
type netWant struct {
	iface string
	// Routes through the tunnel (chosen gateways) and the addresses kept outside it.
	routes  []netip.Prefix
	exclude []netip.Addr
	// The gateway role: nothing to serve when both are empty.
	gateway platform.GatewayConfig
}

func (w netWant) serving() bool { return len(w.gateway.Routes) > 0 || len(w.gateway.Virtual) > 0 }

// forwarding is what the firewall must let through for the gateway role.
func (w netWant) forwarding() platform.Forwarding {
	if !w.serving() {
		return platform.Forwarding{}
	}
	f := platform.Forwarding{Mesh: meshRange, Routes: w.gateway.Routes}
	for _, v := range w.gateway.Virtual {
		f.Virtual = append(f.Virtual, v.SecureIP)
	}
	return f
}

// netConfig puts a netWant into the OS for one tunnel session: routes through the tunnel
// (platform.Router), the gateway's forwarding and NAT (platform.Gateway), and the
// firewall's leave for what the gateway forwards. It creates the router and the gateway
// only when they have something to do, applies the latest want on every wake, and
// retries what failed. close removes all of it.
type netConfig struct {
	log        *slog.Logger
	newRouter  func(*slog.Logger) (platform.Router, error)
	newGateway func(*slog.Logger) (platform.Gateway, error)
	fw         platform.Firewall
	wake       chan struct{}

	mu      sync.Mutex // serialises apply and close, and guards the fields below
	router  platform.Router
	gw      platform.Gateway
	applied netWant // what is in force
	closed  bool
}

func newNetConfig(log *slog.Logger, cfg Config, fw platform.Firewall) *netConfig {
	nc := &netConfig{log: log, newRouter: cfg.NewRouter, newGateway: cfg.NewGateway, fw: fw, wake: make(chan struct{}, 1)}
	if nc.newRouter == nil {
		nc.newRouter = platform.NewRouter
	}
	if nc.newGateway == nil {
		nc.newGateway = platform.NewGateway
	}
	return nc
}

// poke asks run to look at the want again soon. It never blocks.
func (nc *netConfig) poke() {
	select {
	case nc.wake <- struct{}{}:
	default:
	}
}

// run applies want() whenever poked, until ctx is done.
func (nc *netConfig) run(ctx context.Context, want func(context.Context) netWant) {
	nc.poke()
	retry := netRetry
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-nc.wake:
		case <-t.C:
		}
		w := want(ctx)
		if ctx.Err() != nil {
			return
		}
		next := time.Hour
		if err := nc.apply(w); err != nil {
			nc.log.Error("routes or gateway rules not applied; retrying", "err", err, "in", retry)
			// Backing off keeps a lasting failure (no gateway support here) from
			// flooding the log; a map change still tries at once.
			next, retry = retry, min(2*retry, netRetryMax)
		} else {
			retry = netRetry
			if len(w.routes) > 0 {
				next = netRecheck
			}
		}
		t.Reset(next)
	}
}

// apply makes the OS hold w. The gateway's rules go in before the firewall lets its
// traffic through, and the firewall closes before they go.
func (nc *netConfig) apply(w netWant) error {
	nc.mu.Lock()
	defer nc.mu.Unlock()
	if nc.closed {
		return nil
	}
	var errs []error
	if err := nc.applyGateway(w); err != nil {
		errs = append(errs, err)
	}
	if err := nc.applyRoutes(w); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (nc *netConfig) applyGateway(w netWant) error {
	cur := nc.applied
	fwd := w.forwarding()
	if !w.serving() {
		if nc.gw == nil {
			return nil
		}
		if err := nc.setForwarding(platform.Forwarding{}); err != nil {
			return err
		}
		err := nc.gw.Close()
		nc.gw, nc.applied.gateway = nil, platform.GatewayConfig{}
		if err != nil {
			return err
		}
		nc.log.Info("gateway role ended")
		return nil
	}
	if nc.gw != nil && reflect.DeepEqual(cur.gateway, w.gateway) {
		return nil
	}
	if nc.gw == nil {
		gw, err := nc.newGateway(nc.log.With("component", "gateway"))
		if err != nil {
			return err
		}
		nc.gw = gw
	}
	if err := nc.gw.Apply(w.gateway); err != nil {
		return err
	}
	nc.applied.gateway = w.gateway
	return nc.setForwarding(fwd)
}

// setForwarding tells the firewall what the gateway forwards, if it can be told.
func (nc *netConfig) setForwarding(fwd platform.Forwarding) error {
	ff, ok := nc.fw.(platform.ForwardingFirewall)
	if !ok {
		if len(fwd.Routes) == 0 && len(fwd.Virtual) == 0 {
			return nil
		}
		return errors.New("this system's firewall cannot let gateway traffic through")
	}
	return ff.SetForwarding(fwd)
}

func (nc *netConfig) applyRoutes(w netWant) error {
	if len(w.routes) == 0 {
		if nc.router == nil {
			return nil
		}
		err := nc.router.Close()
		nc.router, nc.applied.routes, nc.applied.exclude = nil, nil, nil
		return err
	}
	if nc.router != nil && nc.applied.iface == w.iface && slices.Equal(nc.applied.routes, w.routes) && slices.Equal(nc.applied.exclude, w.exclude) {
		return nil
	}
	if nc.router == nil {
		r, err := nc.newRouter(nc.log.With("component", "routes"))
		if err != nil {
			return err
		}
		nc.router = r
	}
	if err := nc.router.SetRoutes(w.iface, w.routes, w.exclude); err != nil {
		return err
	}
	nc.applied.iface, nc.applied.routes, nc.applied.exclude = w.iface, w.routes, w.exclude
	return nil
}

// close removes every route and gateway rule, and the firewall's leave for them.
func (nc *netConfig) close() {
	nc.mu.Lock()
	defer nc.mu.Unlock()
	if nc.closed {
		return
	}
	nc.closed = true
	if nc.gw != nil {
		if err := nc.setForwarding(platform.Forwarding{}); err != nil {
			nc.log.Warn("firewall: withdraw gateway forwarding", "err", err)
		}
		if err := nc.gw.Close(); err != nil {
			nc.log.Warn("remove gateway rules", "err", err)
		}
		nc.gw = nil
	}
	if nc.router != nil {
		if err := nc.router.Close(); err != nil {
			nc.log.Warn("remove routes", "err", err)
		}
		nc.router = nil
	}
	nc.applied = netWant{}
}

// hostCache resolves the host names of the broker, its STUN servers and the relays,
// remembering the last answer for each: a lookup failing while routes go through the
// tunnel must not let the control plane's packets into it. Used by one goroutine.
type hostCache struct {
	lookup func(ctx context.Context, host string) ([]netip.Addr, error) // nil: the system's resolver
	last   map[string][]netip.Addr
}

// resolve returns the addresses of host names and HOST:PORT strings (IP literals as they
// are); a name that never resolved is skipped.
func (c *hostCache) resolve(ctx context.Context, hosts []string) []netip.Addr {
	if c.last == nil {
		c.last = map[string][]netip.Addr{}
	}
	lookup := c.lookup
	if lookup == nil {
		lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	var out []netip.Addr
	for _, h := range hosts {
		if host, _, err := net.SplitHostPort(h); err == nil {
			h = host
		}
		if h == "" {
			continue
		}
		if a, err := netip.ParseAddr(h); err == nil {
			out = append(out, a.Unmap())
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, resolveTimeout)
		addrs, err := lookup(rctx, h)
		cancel()
		if err == nil && len(addrs) > 0 {
			c.last[h] = nil
			for _, a := range addrs {
				c.last[h] = append(c.last[h], a.Unmap())
			}
		}
		out = append(out, c.last[h]...)
	}
	return out
}

// brokerHost is the host (and port) of a broker URL.
func brokerHost(broker string) string {
	u, err := url.Parse(broker)
	if err != nil {
		return ""
	}
	return u.Host
}
