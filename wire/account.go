package wire

import "time"

// Account sessions: a person's login for account-level actions (listing the account's
// devices; administrators also remove them), apart from any device's identity. The client
// (weft-tray) starts a browser login, the person signs in on the broker's login page (the
// password goes from the browser to the broker only), and the client collects a bearer
// token, which it sends as "Authorization: Bearer TOKEN" on the account API.
const (
	// PathSessionStart begins a browser login for a session: POST with an empty body or
	// {}; answers a LoginStartResponse whose Token only collects the session.
	PathSessionStart = "/v1/session/start"
	// PathSessionWait waits for that login: POST LoginWaitRequest, answered like
	// PathLoginWait but with a SessionWaitResponse. The session is handed out once.
	PathSessionWait = "/v1/session/wait"
	// PathSessionLogout ends the session it is sent with (bearer): empty answer.
	PathSessionLogout = "/v1/session/logout"

	PathAccountMe      = "/v1/account/me"             // GET (bearer): AccountMe
	PathAccountDevices = "/v1/account/devices"        // GET (bearer): AccountDevices
	PathAccountRemove  = "/v1/account/devices/remove" // POST AccountRemoveRequest (bearer, administrators): Device
)

// SessionTTL is how long a session works after it is issued, unless logged out.
const SessionTTL = 30 * 24 * time.Hour

// SessionWaitResponse has Session set once the person signed in; empty means still
// pending (ask again).
type SessionWaitResponse struct {
	Session string     `json:"session,omitempty"` // the bearer token, handed out this once
	Me      *AccountMe `json:"me,omitempty"`
}

// AccountMe is who a session acts as.
type AccountMe struct {
	Email   string    `json:"email"`
	Account string    `json:"account"`
	Admin   bool      `json:"admin"`   // may remove the account's devices
	Expires time.Time `json:"expires"` // when the session ends
}

// AccountDevices is every device of the session's account.
type AccountDevices struct {
	Devices []Device `json:"devices"`
}

// AccountRemoveRequest removes a device of the session's account, named by ID or name.
// The device's map stream gets Revoked and every peer's map drops it at once.
type AccountRemoveRequest struct {
	Device string `json:"device"`
}
