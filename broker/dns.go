package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/weftmesh/weft/broker/dnsserver"
	"github.com/weftmesh/weft/broker/store"
)

// dnsResolver answers the DNS server's questions from the store, live, so a new,
// renamed or removed device shows on the very next query.
type dnsResolver struct{ store *store.Store }

// LookupDevice finds devices and virtual devices alike: both have names in the account.
func (r dnsResolver) LookupDevice(ctx context.Context, account, device string) (netip.Addr, bool, error) {
	a, err := r.store.AddressByName(ctx, account, device)
	if errors.Is(err, store.ErrNotFound) {
		return netip.Addr{}, false, nil
	}
	if err != nil {
		return netip.Addr{}, false, err
	}
	return a, true, nil
}

func (r dnsResolver) AccountExists(ctx context.Context, account string) (bool, error) {
	_, err := r.store.AccountByName(ctx, account)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// startDNS binds the authoritative DNS server on cfg.DNSListen (UDP and TCP), if set, and
// serves it until ctx ends. The NS glue is cfg.DNSAddrs, else the addresses publicAddrs
// announces for the DNS listen address.
func (b *Broker) startDNS(ctx context.Context) (func() error, error) {
	if b.cfg.DNSListen == "" {
		return nil, nil
	}
	glue := b.cfg.DNSAddrs
	if len(glue) == 0 {
		glue = b.publicAddrs(b.cfg.DNSListen)
	}
	if len(glue) == 0 {
		return nil, errors.New("DNS: cannot tell the broker's public address for the NS record: give --dns-addr or --public-addr")
	}
	srv, err := dnsserver.New(dnsserver.Config{
		Zone:     b.cfg.Domain,
		NSAddrs:  glue,
		Resolver: dnsResolver{b.store},
		Logger:   b.log.With("component", "dns"),
	})
	if err != nil {
		return nil, fmt.Errorf("DNS: %w", err)
	}
	udp, tcp, err := dnsserver.Listen(b.cfg.DNSListen)
	if err != nil {
		return nil, fmt.Errorf("DNS: %w", err)
	}
	b.log.Info("DNS listening", "addr", udp.LocalAddr().String(), "zone", b.cfg.Domain)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, udp, tcp) }()
	return func() error { return <-done }, nil
}

// publicAddrs is how devices reach a service listening on listen (HOST:PORT): its IP when
// that is a specific one, else cfg.PublicAddrs, else the API's listen IP when that is a
// specific one. None means the broker cannot tell.
func (b *Broker) publicAddrs(listen string) []netip.Addr {
	if a, ok := specificIP(listen); ok {
		return []netip.Addr{a}
	}
	if len(b.cfg.PublicAddrs) > 0 {
		return b.cfg.PublicAddrs
	}
	if a, ok := specificIP(b.cfg.Listen); ok {
		return []netip.Addr{a}
	}
	return nil
}

// specificIP returns the host of hostport if it is an IP address and not a wildcard.
func specificIP(hostport string) (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(host)
	if err != nil || a.IsUnspecified() {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}
