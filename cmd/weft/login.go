package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/weftmesh/weft/wire"
)

// errLoggedIn ends the event stream once the login is over.
var errLoggedIn = errors.New("logged in")

// awaitLogin shows the one-time login URL and follows weftd's events until someone signs
// in there (the device is then registered) or the login ends. Interrupting only stops
// waiting: weftd keeps the login open until it expires.
func awaitLogin(e *env, st wire.Status) (wire.Status, error) {
	fmt.Fprintf(e.stdout, "To log in, open: %s\n", st.LoginURL)
	fmt.Fprintf(e.stdout, "Waiting for you to sign in there (the link works once, for %d minutes)...\n", int(wire.LoginTTL/time.Minute))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, wire.LoginTTL+time.Minute)
	defer cancel()
	url := st.LoginURL
	var final wire.Status
	var loginErr error
	err := e.client().Events(ctx, func(ev wire.Event) error {
		s := ev.Status
		switch {
		case s == nil:
			return nil
		case s.LoginURL != "" && s.LoginURL != url:
			loginErr = errors.New("another login replaced this one (weft up ran again, or the tray started one)")
		case s.LoginURL != "":
			return nil // still waiting
		case s.LoginError != "":
			loginErr = fmt.Errorf("login failed: %s", s.LoginError)
		case s.Self == nil || s.State == wire.StateNeedsLogin || s.State == wire.StateRevoked:
			loginErr = errors.New("the login was cancelled")
		}
		final = *s
		return errLoggedIn
	})
	switch {
	case errors.Is(err, errLoggedIn):
		return final, loginErr
	case errors.Is(err, context.Canceled):
		return st, errors.New("stopped waiting; the login link stays valid until it expires, and weft status shows the outcome")
	case errors.Is(err, context.DeadlineExceeded):
		return st, errors.New("nobody signed in before the login link expired")
	}
	return st, fmt.Errorf("follow the login: %w", err)
}
