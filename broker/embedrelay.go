package broker

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"

	"github.com/weftmesh/weft/relay"
	"github.com/weftmesh/weft/wire"
)

// EmbeddedRelayName is what devices call the relay a broker runs in-process.
const EmbeddedRelayName = "broker"

// embeddedRelay describes the relay this broker serves, if it serves one.
func (b *Broker) embeddedRelay() (wire.RelayInfo, bool) {
	if b.embedded == nil {
		return wire.RelayInfo{}, false
	}
	return *b.embedded, true
}

// startRelay runs a relay in-process on cfg.RelayUDP (and cfg.RelayTLS) until ctx ends:
// the single-box default, where one machine is broker and relay. Its key and, without
// the broker's own certificate, a self-signed TLS certificate live in the data directory.
func (b *Broker) startRelay(ctx context.Context) (func() error, error) {
	if b.cfg.RelayUDP == "" {
		return nil, nil
	}
	priv, err := relay.LoadOrCreateKey(b.cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("embedded relay: %w", err)
	}
	srv, err := relay.New(relay.Config{PrivateKey: priv, Logger: b.log.With("component", "relay")})
	if err != nil {
		return nil, fmt.Errorf("embedded relay: %w", err)
	}
	info := wire.RelayInfo{Name: EmbeddedRelayName, PublicKey: srv.PublicKey()}
	if info.UDP, err = b.announce(b.cfg.RelayUDP, "relay UDP"); err != nil {
		return nil, err
	}
	if b.cfg.RelayTLS != "" {
		if info.TLS, err = b.announce(b.cfg.RelayTLS, "relay TLS"); err != nil {
			return nil, err
		}
	}
	var serve []func(context.Context) error
	uc, err := relay.ListenUDP(ctx, b.cfg.RelayUDP)
	if err != nil {
		return nil, fmt.Errorf("embedded relay: %w", err)
	}
	info.UDP = b.announcePort(info.UDP, uc.LocalAddr())
	serve = append(serve, func(ctx context.Context) error { return srv.ServeUDP(ctx, uc) })
	if b.cfg.RelayTLS != "" {
		cert, err := relay.LoadOrCreateCert(b.cfg.DataDir, b.cfg.TLSCert, b.cfg.TLSKey)
		if err != nil {
			uc.Close()
			return nil, fmt.Errorf("embedded relay: %w", err)
		}
		ln, err := net.Listen("tcp", b.cfg.RelayTLS)
		if err != nil {
			uc.Close()
			return nil, fmt.Errorf("embedded relay: listen on %s: %w", b.cfg.RelayTLS, err)
		}
		info.TLS = b.announcePort(info.TLS, ln.Addr())
		serve = append(serve, func(ctx context.Context) error { return srv.ServeTLS(ctx, ln, cert) })
	}
	serve = append(serve, srv.Run)
	b.embedded = &info

	var wg sync.WaitGroup
	errs := make(chan error, len(serve))
	for _, f := range serve {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- f(ctx)
		}()
	}
	b.log.Info("embedded relay serving", "udp", info.UDP, "tls", info.TLS, "public_key", info.PublicKey.String())
	return func() error {
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				return fmt.Errorf("embedded relay: %w", err)
			}
		}
		return nil
	}, nil
}

// announce is the HOST:PORT devices reach a service listening on listen at: the first
// of publicAddrs with listen's port (which announcePort fixes up once bound, for port 0).
func (b *Broker) announce(listen, what string) (string, error) {
	addrs := b.publicAddrs(listen)
	if len(addrs) == 0 {
		return "", fmt.Errorf("%s: cannot tell the broker's public address to announce for %s: give --public-addr", what, listen)
	}
	_, port, _ := net.SplitHostPort(listen)
	return net.JoinHostPort(addrs[0].String(), port), nil
}

// announcePort replaces the port of hostport with the one bound is listening on.
func (b *Broker) announcePort(hostport string, bound net.Addr) string {
	host, _, _ := net.SplitHostPort(hostport)
	var port int
	switch a := bound.(type) {
	case *net.UDPAddr:
		port = a.Port
	case *net.TCPAddr:
		port = a.Port
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}
