package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/weftmesh/weft/broker"
)

// cmdSession lists and revokes people's account sessions:
// session list ACCOUNT [EMAIL] [--json], session revoke ACCOUNT SESSION-ID,
// session revoke ACCOUNT --user EMAIL.
func cmdSession(args []string, data string, e env) error {
	fs := newFlags("weft-broker session")
	asJSON := fs.Bool("json", false, "")
	user := fs.String("user", "", "")
	dir, verb, pos, err := adminCommand("session", args, data, fs)
	if err != nil {
		return err
	}
	var req broker.AdminRevokeSessionsRequest
	switch verb {
	case "list":
		if *user != "" {
			return usagef("session list takes the user's email as its second argument, not --user")
		}
		if len(pos) != 1 && len(pos) != 2 {
			return usagef("session list takes ACCOUNT [EMAIL]; got %d argument(s)", len(pos))
		}
	case "revoke":
		if *asJSON {
			return usagef("session revoke takes no --json")
		}
		switch {
		case *user != "":
			if err := wantArgs("session revoke --user EMAIL", pos, "ACCOUNT"); err != nil {
				return err
			}
			req = broker.AdminRevokeSessionsRequest{Account: pos[0], Email: *user}
		default:
			if err := wantArgs("session revoke", pos, "ACCOUNT", "SESSION-ID"); err != nil {
				return err
			}
			req = broker.AdminRevokeSessionsRequest{Account: pos[0], Session: pos[1]}
		}
	default:
		return usagef("unknown session subcommand %q", verb)
	}
	c, err := broker.NewAdminClient(dir)
	if err != nil {
		return err
	}
	ctx := context.Background()
	if verb == "revoke" {
		return sessionRevoke(ctx, c, req, e.stdout)
	}
	email := ""
	if len(pos) == 2 {
		email = pos[1]
	}
	ss, err := c.Sessions(ctx, pos[0], email)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(ss)
	}
	return printSessions(e.stdout, ss, time.Now())
}

func sessionRevoke(ctx context.Context, c *broker.AdminClient, req broker.AdminRevokeSessionsRequest, w io.Writer) error {
	ss, err := c.RevokeSessions(ctx, req)
	if err != nil {
		return err
	}
	if len(ss) == 0 {
		fmt.Fprintf(w, "%s has no live sessions in account %s; nothing revoked\n", req.Email, req.Account)
	}
	for _, s := range ss {
		fmt.Fprintf(w, "revoked session %s of %s in account %s\n", s.ID, s.Email, s.Account)
	}
	return nil
}

func printSessions(w io.Writer, ss []broker.AdminSession, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tUSER\tCREATED\tEXPIRES\tLAST-USED")
	for _, s := range ss {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.ID, s.Email, s.CreatedAt.UTC().Format(timeFormat),
			s.ExpiresAt.UTC().Format(timeFormat), ago(s.LastUsed, now))
	}
	return tw.Flush()
}

// timeFormat is how session times are listed: to the minute, in UTC.
const timeFormat = "2006-01-02 15:04Z"
