package mesh

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/weftmesh/weft/mesh/bind"
	"github.com/weftmesh/weft/mesh/relayclient"
	"github.com/weftmesh/weft/wire"
)

// Relay connection timing.
const (
	relayDialTimeout = 5 * time.Second // per relay and transport
	// tlsHeadStart is how long UDP may try alone before TLS is dialled beside it.
	tlsHeadStart    = 300 * time.Millisecond
	relayMaxBackoff = 30 * time.Second
)

// RelayConn is a connection to a relay as the engine uses it; *relayclient.Conn is one.
// It re-establishes itself after failures until Close. The bind reads what it delivers
// (bind.RelayReceiver: after Close RecvBatchUntil fails).
type RelayConn interface {
	Send(dst wire.Key, pkt []byte) error
	bind.RelayReceiver
	Status() relayclient.Status
	// Reconnect re-makes the connection from the current network.
	Reconnect()
	Close() error
}

// RelayDialer connects to relay r as the device with private key priv.
type RelayDialer func(ctx context.Context, r wire.RelayInfo, priv wire.Key) (RelayConn, error)

// relayRun is the running relay connection manager, guarded by Engine.relayMu.
type relayRun struct {
	list   []wire.RelayInfo
	cancel context.CancelFunc
	done   chan struct{} // closed when the manager returned
	conn   RelayConn     // the connection in use; nil while dialing
	info   wire.RelayInfo
}

// SetRelays sets the relays this device may use, best first (as the broker orders them:
// the account's private relays, then global ones). The engine connects to the first that
// answers, in the background, and sends there the packets of peers without a direct
// path; an empty list drops the relay. The same list again changes nothing.
func (e *Engine) SetRelays(relays []wire.RelayInfo) {
	e.relayOp.Lock()
	defer e.relayOp.Unlock()
	e.relayMu.Lock()
	same := slices.Equal(relays, e.relay.list) && (len(relays) == 0 || e.relay.cancel != nil)
	e.relayMu.Unlock()
	if same {
		return
	}
	e.stopRelayLocked()
	if len(relays) == 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	e.relayMu.Lock()
	e.relay = relayRun{list: slices.Clone(relays), cancel: cancel, done: done}
	e.relayMu.Unlock()
	go e.runRelays(ctx, slices.Clone(relays), done)
}

// stopRelay ends the relay connection for good (Close).
func (e *Engine) stopRelay() {
	e.relayOp.Lock()
	defer e.relayOp.Unlock()
	e.stopRelayLocked()
}

// stopRelayLocked ends the running manager, if any. The caller holds relayOp.
func (e *Engine) stopRelayLocked() {
	e.relayMu.Lock()
	run := e.relay
	e.relay = relayRun{}
	e.relayMu.Unlock()
	if run.cancel != nil {
		run.cancel()
		<-run.done
	}
}

// relayStatus says whether a relay is connected now, and its name.
func (e *Engine) relayStatus() (bool, string) {
	e.relayMu.Lock()
	defer e.relayMu.Unlock()
	if e.relay.conn == nil || !e.relay.conn.Status().Connected {
		return false, ""
	}
	return true, e.relay.info.Name
}

// reconnectRelay re-makes the relay connection after a network change.
func (e *Engine) reconnectRelay() {
	e.relayMu.Lock()
	defer e.relayMu.Unlock()
	if e.relay.conn != nil {
		e.relay.conn.Reconnect()
	}
}

// relayLost is the relay client's word that its session died unasked — it stopped
// answering while packets were sent through it, or its connection broke — and that it is
// making a new one. Like a lost direct path it hints that this device moved (after a roam
// the relay drops our frames from the new address, and the peers' go to the old one), and
// raises the same signal (PathLost), so the service checks its public mapping at once.
func (e *Engine) relayLost() {
	select {
	case e.lost <- struct{}{}:
	default:
	}
}

func (e *Engine) setRelayConn(c RelayConn, info wire.RelayInfo) {
	e.relayMu.Lock()
	e.relay.conn, e.relay.info = c, info
	e.relayMu.Unlock()
	if c == nil {
		e.bind.SetRelay(nil)
	} else {
		e.bind.SetRelay(c)
	}
	e.poke()
}

// runRelays keeps a connection to the first relay of list that answers until ctx ends.
func (e *Engine) runRelays(ctx context.Context, list []wire.RelayInfo, done chan struct{}) {
	defer close(done)
	backoff := time.Second
	for {
		c, info, err := e.dialFirst(ctx, list)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			e.log.Warn("no relay reachable; retrying", "in", backoff, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, relayMaxBackoff)
			continue
		}
		e.log.Info("relay connected", "relay", info.Name)
		// WireGuard's relay receive goroutine reads from c through the bind; c
		// reconnects by itself, so it is used until the manager stops.
		e.setRelayConn(c, info)
		<-ctx.Done()
		e.setRelayConn(nil, wire.RelayInfo{})
		c.Close()
		return
	}
}

func (e *Engine) dialFirst(ctx context.Context, list []wire.RelayInfo) (RelayConn, wire.RelayInfo, error) {
	var errs []error
	for _, r := range list {
		c, err := e.dial(ctx, r, e.priv)
		if err == nil {
			return c, r, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, wire.RelayInfo{}, errors.Join(errs...)
}

// dialRelayClient connects with relayclient over UDP and, for networks that block UDP,
// TLS. UDP gets a head start of tlsHeadStart; if it has not connected by then, TLS is
// dialled beside it and the first to connect wins (UDP still wins a tie it reaches first),
// so a network without UDP costs a fraction of a second, not a whole UDP timeout. Each
// attempt is bounded by relayDialTimeout.
func (e *Engine) dialRelayClient(ctx context.Context, r wire.RelayInfo, priv wire.Key) (RelayConn, error) {
	log := e.log.With("component", "relay", "relay", r.Name)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		c   RelayConn
		err error
	}
	results := make(chan result, 2)
	try := func(what string, cfg relayclient.Config) {
		dctx, dcancel := context.WithTimeout(ctx, relayDialTimeout)
		defer dcancel()
		cfg.RelayKey, cfg.PrivateKey, cfg.Logger, cfg.OnLost = r.PublicKey, priv, log, e.relayLost
		c, err := relayclient.Dial(dctx, cfg)
		if err != nil {
			err = fmt.Errorf("%s: %w", what, err)
		}
		results <- result{c, err}
	}
	pending := 0
	startTLS := func() {
		if r.TLS != "" {
			pending++
			go try("TLS "+r.TLS, relayclient.Config{URL: "https://" + r.TLS, Proxy: http.ProxyFromEnvironment})
		}
	}
	head := time.NewTimer(tlsHeadStart)
	defer head.Stop()
	if r.UDP != "" {
		pending++
		go try("UDP "+r.UDP, relayclient.Config{UDPAddr: r.UDP})
	} else {
		startTLS()
		head.Stop()
	}
	if pending == 0 {
		return nil, fmt.Errorf("relay %s: no UDP or TLS address", r.Name)
	}
	tlsStarted := r.UDP == ""
	var errs []error
	for pending > 0 {
		select {
		case <-head.C:
			if !tlsStarted {
				tlsStarted = true
				startTLS()
			}
		case res := <-results:
			pending--
			if res.err == nil {
				// The loser, if it connects later, is closed.
				go func(n int) {
					for range n {
						if late := <-results; late.err == nil {
							late.c.Close()
						}
					}
				}(pending)
				return res.c, nil
			}
			errs = append(errs, res.err)
			if !tlsStarted {
				tlsStarted = true
				startTLS()
			}
		}
	}
	return nil, fmt.Errorf("relay %s: %w", r.Name, errors.Join(errs...))
}
