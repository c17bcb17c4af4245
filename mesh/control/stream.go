package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/weftmesh/weft/wire"
)

const (
	// maxMapLine bounds one message of the map stream (a full map of a large account).
	maxMapLine = 16 << 20
	// minBackoff and maxBackoff bound the wait between reconnection attempts.
	minBackoff = 250 * time.Millisecond
	maxBackoff = 30 * time.Second
	// stableStream is how long a stream must have lasted for the next reconnection to
	// start again from minBackoff.
	stableStream = 2 * wire.MapKeepalive
)

var (
	errSilent    = errors.New("map stream went silent")
	errReconnect = errors.New("reconnecting after a network change")
)

// Stream opens the authenticated map stream and calls fn with each message, keepalives
// included, until the stream ends, fn fails, or ctx is done. A stream that stays silent
// for the client's StreamTimeout is dropped. A revoked message is not passed to fn: it
// ends the stream with a *RevokedError carrying the broker's reason. Stream always
// returns a non-nil error.
func (c *Client) Stream(ctx context.Context, fn func(wire.MapUpdate) error) error {
	select {
	case <-c.reconnect: // this stream is the fresh connection asked for
	default:
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	resp, err := c.authed(ctx, http.MethodGet, wire.PathMap, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()

	// Cancelling the request's context is what interrupts a blocked body read.
	silence := time.AfterFunc(c.streamTimeout, func() { cancel(errSilent) })
	defer silence.Stop()
	go func() {
		select {
		case <-c.reconnect:
			cancel(errReconnect)
		case <-ctx.Done():
		}
	}()

	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), maxMapLine)
	for sc.Scan() {
		silence.Reset(c.streamTimeout)
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var u wire.MapUpdate
		if err := json.Unmarshal(line, &u); err != nil {
			return fmt.Errorf("map stream: bad message: %w", err)
		}
		if u.Revoked != "" {
			return &RevokedError{Reason: u.Revoked}
		}
		if err := fn(u); err != nil {
			return err
		}
	}
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errSilent):
		return fmt.Errorf("map stream silent for %s", c.streamTimeout)
	case cause != nil:
		return cause
	case sc.Err() != nil:
		return fmt.Errorf("map stream: %w", sc.Err())
	}
	return errors.New("broker closed the map stream")
}

// State is the control loop's connection to the broker, as reported to Run's onState.
type State struct {
	Connected bool  // a map stream is open and has delivered its first message
	Err       error // why the broker is not connected now (nil while connected)
	// Revoked is set when the broker removed this device; Run returns right after.
	Revoked string
}

// Run keeps a map stream open, reconnecting with capped exponential backoff and jitter,
// until ctx is done or the broker says the device was removed. onUpdate gets every map
// message (an error from it drops the stream; the next one starts with a full map);
// onState hears every change of connection state. Both run on Run's goroutine. Run
// returns ctx's error, or a *RevokedError after reporting it through onState.
func (c *Client) Run(ctx context.Context, onUpdate func(wire.MapUpdate) error, onState func(State)) error {
	b := backoff{min: minBackoff, max: maxBackoff}
	for {
		start := time.Now()
		connected := false
		err := c.Stream(ctx, func(u wire.MapUpdate) error {
			if !connected {
				connected = true
				onState(State{Connected: true})
			}
			return onUpdate(u)
		})
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var rev *RevokedError
		if errors.As(err, &rev) {
			onState(State{Err: err, Revoked: rev.Reason})
			return err
		}
		if connected && time.Since(start) >= stableStream {
			b.reset()
		}
		onState(State{Err: err})
		if errors.Is(err, errReconnect) {
			b.reset() // asked for: dial again now
			continue
		}
		wait := b.next()
		c.log.Warn("broker connection lost", "err", err, "retry_in", wait.Round(time.Millisecond))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}
