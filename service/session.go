package service

import (
	"context"
	"errors"
	"time"

	"github.com/weftmesh/weft/mesh/control"
	"github.com/weftmesh/weft/wire"
)

// saveEvery bounds how often map traffic rewrites state.json.
const saveEvery = time.Second

var errSessionOver = errors.New("tunnel session ended")

// onUpdate applies one map message from session s's control loop.
func (d *Daemon) onUpdate(s *session, u wire.MapUpdate) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.sess != s || d.engine == nil {
		return errSessionOver
	}
	save := false
	if u.Self != nil && (d.st.Device == nil || !equalDevice(*d.st.Device, *u.Self)) {
		self := *u.Self
		if d.st.Device != nil && self.Address != d.st.Device.Address {
			// The broker keeps a device's address for its lifetime; a change means a
			// broker bug, and the running tunnel keeps the address it has.
			d.log.Warn("broker changed this device's mesh address; restart weftd to use it",
				"old", d.st.Device.Address, "new", self.Address)
		}
		d.st.Device = &self
		save = true
	}
	// A new filter is in force before the peers it may concern are configured.
	if d.peers.ApplyFilter(u) || d.firewallStale {
		save = true
		if err := d.applyFilterLocked(); err != nil {
			return err
		}
	}
	if d.peers.ApplyTraversal(u) {
		save = true
		if tr, ok := d.engine.(traversal); ok {
			tr.SetRelays(d.peers.Relays())
		}
	}
	if d.peers.Apply(u) || d.enginePeersStale {
		save = true
		if err := d.pushPeersLocked(); err != nil {
			// Dropping the stream makes the next one start with a full map.
			return err
		}
		d.log.Debug("peers updated", "count", d.peers.Len())
	}
	if save {
		d.requestSave()
		d.changed()
		s.net.poke() // routes and gateway rules follow the map
	}
	return nil
}

// onState records session s's broker connection state, or revokes the device.
func (d *Daemon) onState(s *session, cs control.State) {
	if cs.Revoked != "" {
		d.revoke(s, cs.Revoked)
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.sess == s {
		d.broker = cs
		d.changed()
	}
}

// revoke handles the broker's removal of this device: every peer goes, the tunnel
// closes, and the reason is kept in state.json so status says why after a restart.
// It runs on the session's own control goroutine, so it must not wait for the session.
func (d *Daemon) revoke(s *session, reason string) {
	d.mu.Lock()
	if d.sess != s {
		d.mu.Unlock()
		return
	}
	eng, fw := d.engine, d.fw
	d.engine, d.fw = nil, nil
	d.peers.Clear()
	d.st.LoggedIn, d.st.WantedUp, d.st.Revoked = false, false, reason
	d.broker = control.State{}
	// d.sess stays: stopLocked waits for this session's goroutines to end.
	s.cancel()
	d.mu.Unlock()

	d.log.Error("the broker removed this device", "reason", reason)
	if eng != nil {
		if err := eng.SetPeers(nil); err != nil {
			d.log.Warn("drop peers", "err", err)
		}
	}
	s.net.close()
	closeTunnel(d.log, eng, fw)
	if err := d.persist(); err != nil {
		d.log.Error("save revoked state", "err", err)
	}
	d.changed()
}

// requestSave asks the saver to write state.json soon. It never blocks.
func (d *Daemon) requestSave() {
	select {
	case d.saveReq <- struct{}{}:
	default:
	}
}

// saver writes state.json on request, at most once per saveEvery, and once more at the
// end if a request is pending when ctx is done.
func (d *Daemon) saver(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			select {
			case <-d.saveReq:
				if err := d.persist(); err != nil {
					d.log.Error("save state", "err", err)
				}
			default:
			}
			return
		case <-d.saveReq:
		}
		if err := d.persist(); err != nil {
			d.log.Error("save state", "err", err)
		}
		t := time.NewTimer(saveEvery)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}

// persist writes the current state and map to state.json.
func (d *Daemon) persist() error {
	d.saveMu.Lock()
	defer d.saveMu.Unlock()
	d.mu.Lock()
	snap := d.st
	snap.Map = d.peers.Saved()
	d.mu.Unlock()
	return d.store.Save(snap)
}

// commit applies change to copies of the state and peer map, saves them, and adopts
// them only if the save succeeded: a failed write changes nothing.
func (d *Daemon) commit(change func(st *State, pm *PeerMap)) error {
	d.saveMu.Lock()
	defer d.saveMu.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	st, pm := d.st, d.peers.clone()
	change(&st, &pm)
	snap := st
	snap.Map = pm.Saved()
	if err := d.store.Save(snap); err != nil {
		return err
	}
	d.st, d.peers = st, pm
	return nil
}
