package service

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/weftmesh/weft/wire"
)

const (
	// eventSample is how often a stream looks at the status for changes nobody announces:
	// peer paths come from the tunnel's own counters.
	eventSample = time.Second
	// eventGap is the least time between two events of one stream; changes within it are
	// coalesced into the next event.
	eventGap = 200 * time.Millisecond
)

// eventSource is a Backend that announces changes; the events endpoint needs one.
type eventSource interface {
	// watch returns a channel closed at the next change, and one closed when the
	// daemon stops serving (streams then end).
	watch() (changed, stopped <-chan struct{})
}

// notifier wakes event streams. The zero value is ready to use.
type notifier struct {
	mu      sync.Mutex
	changed chan struct{} // closed by notify; nil until someone watches
	stopped chan struct{} // closed by stop; nil until someone watches
	isDone  bool
}

func (n *notifier) watch() (changed, stopped <-chan struct{}) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.changed == nil {
		n.changed = make(chan struct{})
	}
	if n.stopped == nil {
		n.stopped = make(chan struct{})
		if n.isDone {
			close(n.stopped)
		}
	}
	return n.changed, n.stopped
}

// notify wakes every stream now waiting. It never blocks.
func (n *notifier) notify() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.changed != nil {
		close(n.changed)
		n.changed = nil
	}
}

// stop ends every stream, now and later.
func (n *notifier) stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.isDone {
		return
	}
	n.isDone = true
	if n.stopped != nil {
		close(n.stopped)
	}
}

// watch implements eventSource for the daemon.
func (d *Daemon) watch() (changed, stopped <-chan struct{}) { return d.events.watch() }

// changed tells event streams to look at the status again.
func (d *Daemon) changed() { d.events.notify() }

// eventView is the part of a Status whose change is worth an event, in three parts: byte
// counters and handshake times change all the time and are left out.
type eventView struct {
	status, peers, login string
}

func viewOf(st wire.Status) eventView {
	type peer struct {
		ID, Name, FQDN string
		Key            wire.Key
		Address        any
		Endpoints      any
		Online         bool
		Endpoint       any
		Connected      bool
		Routes         any // approved routes: the tray's gateway picker follows them
	}
	peers := make([]peer, len(st.Peers))
	for i, p := range st.Peers {
		peers[i] = peer{p.ID, p.Name, p.FQDN, p.PublicKey, p.Address, p.Endpoints, p.Online, p.Endpoint, p.Connected, p.Routes}
	}
	top := st
	top.Peers, top.LoginURL, top.LoginError = nil, "", ""
	return eventView{status: mustJSON(top), peers: mustJSON(peers), login: mustJSON([]string{st.LoginURL, st.LoginError})}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		// Only unsupported types fail, and the views hold none.
		panic(err)
	}
	return string(b)
}

// eventType names the most significant difference between two views: login, then
// status, then peers.
func eventType(prev, cur eventView) string {
	switch {
	case prev.login != cur.login:
		return wire.EventLogin
	case prev.status != cur.status:
		return wire.EventStatus
	case prev.peers != cur.peers:
		return wire.EventPeers
	}
	return ""
}

// serveEvents streams the status as NDJSON: the current one first, then one event per
// change, until the client goes away or the daemon stops.
func (h *handler) serveEvents(w http.ResponseWriter, r *http.Request) {
	src, ok := h.b.(eventSource)
	if !ok {
		writeError(w, errorf(http.StatusNotImplemented, "this weftd does not stream events"))
		return
	}
	if err := decode(w, r, &struct{}{}, true); err != nil {
		writeError(w, err)
		return
	}
	ctx := r.Context()
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	tick := time.NewTicker(eventSample)
	defer tick.Stop()

	var last eventView
	first := true
	for {
		// Watch before reading the status, so a change in between is not missed.
		changed, stopped := src.watch()
		st := h.b.Status(ctx)
		cur := viewOf(st)
		typ := eventType(last, cur)
		if first {
			typ = wire.EventStatus
		}
		if typ != "" {
			ev := wire.Event{Type: typ, Status: &st}
			if typ == wire.EventLogin {
				ev.LoginURL = st.LoginURL
			}
			if err := enc.Encode(ev); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
			last, first = cur, false
			// Let a burst of changes settle into the next event.
			select {
			case <-ctx.Done():
				return
			case <-stopped:
				return
			case <-time.After(eventGap):
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-stopped:
			return
		case <-changed:
		case <-tick.C:
		}
	}
}
