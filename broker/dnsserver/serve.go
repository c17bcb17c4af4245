package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Socket timeouts. A TCP client gets readTimeout for its first query and idleTimeout
// between later ones (RFC 7766 §6.2.3 asks for seconds, not minutes).
const (
	readTimeout     = 2 * time.Second
	writeTimeout    = 2 * time.Second
	idleTimeout     = 10 * time.Second
	maxTCPQueries   = 100 // per connection, then it is closed
	shutdownTimeout = 5 * time.Second
)

// Listen binds UDP and TCP sockets on addr (HOST:PORT). With port 0 both get the same
// free port, so one address serves both transports, as DNS clients expect.
func Listen(addr string) (net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("dns listen address %q: %w", addr, err)
	}
	for attempt := 1; ; attempt++ {
		tcp, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("dns listen on tcp %s: %w", addr, err)
		}
		udpAddr := addr
		if port == "0" || port == "" {
			udpAddr = net.JoinHostPort(host, strconv.Itoa(tcp.Addr().(*net.TCPAddr).Port))
		}
		udp, err := net.ListenPacket("udp", udpAddr)
		if err == nil {
			return udp, tcp, nil
		}
		tcp.Close()
		// A free TCP port can be taken for UDP; try another few before giving up.
		if udpAddr == addr || attempt == 10 {
			return nil, nil, fmt.Errorf("dns listen on udp %s: %w", udpAddr, err)
		}
	}
}

// ListenAndServe binds addr (HOST:PORT) for UDP and TCP and serves until ctx is done
// (returning nil) or a socket fails. Bind errors are returned at once.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	udp, tcp, err := Listen(addr)
	if err != nil {
		return err
	}
	s.log.Info("dns server listening", "zone", s.zone, "udp", udp.LocalAddr(), "tcp", tcp.Addr())
	return s.Serve(ctx, udp, tcp)
}

// Serve answers queries on already bound sockets, either of which may be nil but not
// both, until ctx is done (returning nil) or a socket fails (returning its error). Queries
// that arrive before Serve starts wait in the socket, so a caller that bound them with
// Listen may send queries at once. Serve closes the sockets before it returns.
func (s *Server) Serve(ctx context.Context, udp net.PacketConn, tcp net.Listener) error {
	if udp == nil && tcp == nil {
		return errors.New("dns serve: no socket to serve on")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	handler := s.limited(ctx)

	var runs []*run
	if udp != nil {
		runs = append(runs, startRun("udp", &dns.Server{
			PacketConn:   udp,
			Handler:      handler,
			UDPSize:      ednsSize, // the largest query we accept, matching what we advertise
			ReadTimeout:  readTimeout,
			WriteTimeout: writeTimeout,
		}))
	}
	if tcp != nil {
		runs = append(runs, startRun("tcp", &dns.Server{
			Listener:      &limitListener{Listener: tcp, slots: make(chan struct{}, s.maxTCP)},
			Handler:       handler,
			ReadTimeout:   readTimeout,
			WriteTimeout:  writeTimeout,
			IdleTimeout:   func() time.Duration { return idleTimeout },
			MaxTCPQueries: maxTCPQueries,
		}))
	}

	ended := make(chan *run, len(runs))
	for _, r := range runs {
		go func() {
			<-r.done
			ended <- r
		}()
	}
	var err error
	select {
	case <-ctx.Done():
	case r := <-ended:
		// A server returns before ctx is done only when its socket failed.
		err = fmt.Errorf("dns serve on %s: %w", r.net, r.err)
		if r.err == nil {
			err = fmt.Errorf("dns serve on %s: stopped unexpectedly", r.net)
		}
	}

	sctx, scancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer scancel()
	for _, r := range runs {
		// ShutdownContext before the server has started would fail and leave it running.
		select {
		case <-r.started:
			if serr := r.srv.ShutdownContext(sctx); serr != nil {
				s.log.Warn("dns server shutdown", "net", r.net, "err", serr)
			}
		case <-r.done:
		}
		<-r.done
	}
	return err
}

// limited is the handler Serve uses: ServeDNS with lookups under ctx and at most
// MaxInFlight queries being answered at once.
func (s *Server) limited(ctx context.Context) dns.Handler {
	return dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		select {
		case s.inflight <- struct{}{}:
		default:
			// Over the limit: drop, as a flood deserves no answer and real clients retry.
			s.log.Debug("dns query dropped: too many in flight", "remote", w.RemoteAddr())
			return
		}
		defer func() { <-s.inflight }()
		s.serve(ctx, w, r)
	})
}

// run is one dns.Server in its goroutine.
type run struct {
	net     string
	srv     *dns.Server
	started chan struct{} // closed once srv is serving
	done    chan struct{} // closed when srv has returned; err is set then
	err     error
}

func startRun(network string, srv *dns.Server) *run {
	r := &run{net: network, srv: srv, started: make(chan struct{}), done: make(chan struct{})}
	srv.NotifyStartedFunc = func() { close(r.started) }
	go func() {
		defer close(r.done)
		r.err = srv.ActivateAndServe()
		// ActivateAndServe leaves the socket open when it fails before serving.
		if srv.PacketConn != nil {
			srv.PacketConn.Close()
		}
		if srv.Listener != nil {
			srv.Listener.Close()
		}
	}()
	return r
}

// limitListener caps open connections. One past the cap is closed at once rather than
// left waiting in the backlog behind slow clients, so a client learns quickly to retry.
type limitListener struct {
	net.Listener
	slots chan struct{} // a token per open connection
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			return &limitConn{Conn: c, slots: l.slots}, nil
		default:
			c.Close()
		}
	}
}

type limitConn struct {
	net.Conn
	slots chan struct{}
	once  sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { <-c.slots })
	return err
}
