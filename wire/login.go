package wire

import (
	"net/netip"
	"time"
)

// Browser login: a device without credentials asks the broker for a login; a person signs
// in on the broker's login page (the password goes from the browser to the broker only),
// and the broker then registers the waiting device exactly as POST /v1/register would.
const (
	PathLoginStart = "/v1/login/start" // POST LoginStartRequest: LoginStartResponse
	PathLoginWait  = "/v1/login/wait"  // POST LoginWaitRequest: LoginWaitResponse (long poll)
	// PathLoginPage prefixes the one-time login page, PathLoginPage + ID (GET form, POST sign-in).
	PathLoginPage = "/login/"
)

// LoginTTL is how long a login URL stays usable.
const LoginTTL = 10 * time.Minute

// LoginWaitTimeout is how long the broker holds a LoginWaitRequest open before answering
// "still pending"; the device then asks again.
const LoginWaitTimeout = 25 * time.Second

// LoginStartRequest describes the device to register once a person signs in. The fields
// mean what they mean in RegisterRequest.
type LoginStartRequest struct {
	Version    int              `json:"version"`
	PublicKey  Key              `json:"public_key"`
	Name       string           `json:"name"`
	ListenPort int              `json:"listen_port"`
	Endpoints  []netip.AddrPort `json:"endpoints,omitempty"`
}

// LoginStartResponse is the one-time URL to show the person, and the secret the device
// polls with. Only the device knows Token; the URL alone cannot collect the result.
type LoginStartResponse struct {
	LoginURL string    `json:"login_url"`
	Token    string    `json:"token"`
	Expires  time.Time `json:"expires"`
}

// LoginWaitRequest asks whether the login with Token has completed.
type LoginWaitRequest struct {
	Token string `json:"token"`
}

// LoginWaitResponse has Device set once the person signed in and the device is registered;
// nil means still pending (ask again). An expired, failed or unknown login is an error
// answer (410 or 404) instead.
type LoginWaitResponse struct {
	Device *Device `json:"device,omitempty"`
}
