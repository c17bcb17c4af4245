package portmap

import "time"

// epochClock follows a gateway's epoch (seconds since it started or last lost its
// mappings) to tell when it lost them: RFC 6887 §8.5, which RFC 6886 §3.6 also follows
// in spirit. A server's clock may drift from ours by 1/16 and 2 seconds of rounding
// either way; more than that, or going backwards, means a new epoch.
type epochClock struct {
	set    bool
	server uint32
	at     time.Time
}

// observe records the server's epoch value at now and reports whether it shows the
// server lost its state since the last observation.
func (e *epochClock) observe(server uint32, now time.Time) (reset bool) {
	if e.set {
		if server < e.server {
			reset = true
		} else {
			c := int64(now.Sub(e.at) / time.Second)
			s := int64(server - e.server)
			reset = s+2 < c-c/16 || c+2 < s-s/16
		}
	}
	e.set, e.server, e.at = true, server, now
	return reset
}
