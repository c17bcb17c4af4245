package ipc

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/weftmesh/weft/wire"
)

// ErrStreamEnded is returned by Events when weftd ends the stream (it is shutting down).
var ErrStreamEnded = errors.New("weftd ended the event stream")

// Events follows weftd's event stream, calling fn with each event in order: first the
// current status, then one event per change. It returns when ctx ends (with ctx's error),
// when fn returns an error (that error), or when the stream breaks (ErrStreamEnded, or
// why it could not be opened). fn runs on the caller's goroutine; a slow fn only delays
// events, which weftd coalesces meanwhile.
func (c *Client) Events(ctx context.Context, fn func(wire.Event) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://weftd"+wire.LocalPathEvents, nil)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	resp, err := c.send(ctx, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
		return apiError(resp, data)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), maxResponse)
	for sc.Scan() {
		var ev wire.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return fmt.Errorf("decode weftd's event: %w", err)
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read weftd's events: %w", err)
	}
	return ErrStreamEnded
}
