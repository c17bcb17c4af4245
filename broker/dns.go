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

func (r dnsResolver) LookupDevice(ctx context.Context, account, device string) (netip.Addr, bool, error) {
	d, err := r.store.DeviceByName(ctx, account, device)
	if errors.Is(err, store.ErrNotFound) {
		return netip.Addr{}, false, nil
	}
	if err != nil {
		return netip.Addr{}, false, err
	}
	return d.Address, true, nil
}

func (r dnsResolver) AccountExists(ctx context.Context, account string) (bool, error) {
	_, err := r.store.AccountByName(ctx, account)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// startDNS binds the authoritative DNS server on cfg.DNSListen (UDP and TCP) and serves it
// until ctx ends. The NS glue is the DNS listen address when it is a specific IP, else the
// API's, else the addresses given in cfg.DNSAddrs.
func (b *Broker) startDNS(ctx context.Context) (func() error, error) {
	glue := b.cfg.DNSAddrs
	if len(glue) == 0 {
		for _, hp := range []string{b.cfg.DNSListen, b.cfg.Listen} {
			host, _, _ := net.SplitHostPort(hp)
			if a, err := netip.ParseAddr(host); err == nil && !a.IsUnspecified() {
				glue = []netip.Addr{a}
				break
			}
		}
	}
	if len(glue) == 0 {
		return nil, errors.New("DNS: cannot tell the broker's public address for the NS record: give --dns-addr")
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
