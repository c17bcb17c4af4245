package broker

import (
	"context"
	"errors"
	"fmt"
	"github.com/weftmesh/weft/ipc"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/weftmesh/weft/broker/store"
	"github.com/weftmesh/weft/wire"
)

// AdminSocket is the name of the admin socket in the data directory.
const AdminSocket = "admin.sock"

// Admin API paths, served on the admin socket only.
const (
	AdminPathAccounts     = "/admin/v1/accounts"       // POST AdminAccountRequest: AdminAccount
	AdminPathUsers        = "/admin/v1/users"          // POST AdminUserRequest: empty
	AdminPathAuthKeys     = "/admin/v1/authkeys"       // POST AdminAuthKeyRequest: AdminAuthKey
	AdminPathDevices      = "/admin/v1/devices"        // GET ?account=NAME: []AdminDevice
	AdminPathRemoveDevice = "/admin/v1/devices/remove" // POST AdminRemoveRequest: AdminDevice
)

// AdminAccountRequest creates an account.
type AdminAccountRequest struct {
	Name string `json:"name"`
}

// AdminAccount is a created account.
type AdminAccount struct {
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// AdminUserRequest adds a user who can register devices with a password.
type AdminUserRequest struct {
	Account  string `json:"account"`
	Email    string `json:"email"`
	Password string `json:"password"`
	Admin    bool   `json:"admin,omitempty"` // may remove the account's devices with an account session
}

// AdminAuthKeyRequest creates an auth key.
type AdminAuthKeyRequest struct {
	Account  string        `json:"account"`
	Reusable bool          `json:"reusable"`
	Expires  time.Duration `json:"expires"` // nanoseconds; 0 never expires
}

// AdminAuthKey is a created auth key, shown this once.
type AdminAuthKey struct {
	Key string `json:"key"`
}

// AdminRemoveRequest removes a device, named by name or ID.
type AdminRemoveRequest struct {
	Account string `json:"account"`
	Device  string `json:"device"`
}

// AdminDevice is a device as an administrator sees it.
type AdminDevice struct {
	wire.Device
	ListenPort int       `json:"listen_port"`
	CreatedAt  time.Time `json:"created_at"`
	LastSeen   time.Time `json:"last_seen"`
}

// listenAdmin opens the admin socket, refusing to take over one a running broker serves.
func listenAdmin(path string) (net.Listener, error) {
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("a broker is already running on this data directory: %s answers", path)
	}
	// Nothing answers: a stale socket from a crash.
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale admin socket: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on admin socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("restrict admin socket: %w", err)
	}
	return ln, nil
}

type peerKey struct{}

// peer is who is at the other end of an admin connection.
type peer struct {
	uid int
	err error // why the uid is unknown
}

// withPeer records the connecting process's uid in the connection's context.
func withPeer(ctx context.Context, c net.Conn) context.Context {
	uid, err := ipc.PeerUID(c)
	return context.WithValue(ctx, peerKey{}, peer{uid: uid, err: err})
}

func (b *Broker) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(AdminPathAccounts, route(http.MethodPost, b.adminCreateAccount))
	mux.Handle(AdminPathUsers, route(http.MethodPost, b.adminAddUser))
	mux.Handle(AdminPathUserRole, route(http.MethodPost, b.adminSetUserRole))
	mux.Handle(AdminPathAuthKeys, route(http.MethodPost, b.adminCreateAuthKey))
	mux.Handle(AdminPathDevices, route(http.MethodGet, b.adminListDevices))
	mux.Handle(AdminPathRemoveDevice, route(http.MethodPost, b.adminRemoveDevice))
	mux.HandleFunc(AdminPathPolicy, b.adminPolicy)
	mux.Handle(AdminPathRelays, route(http.MethodGet, b.adminListRelays))
	mux.Handle(AdminPathAddRelay, route(http.MethodPost, b.adminAddRelay))
	mux.Handle(AdminPathRemoveRelay, route(http.MethodPost, b.adminRemoveRelay))
	mux.Handle(AdminPathRoutes, route(http.MethodGet, b.adminListRoutes))
	mux.Handle(AdminPathApprove, route(http.MethodPost, b.adminApproval(true)))
	mux.Handle(AdminPathUnapprove, route(http.MethodPost, b.adminApproval(false)))
	mux.Handle(AdminPathVDevs, route(http.MethodGet, b.adminListVDevs))
	mux.Handle(AdminPathRemoveVDev, route(http.MethodPost, b.adminRemoveVDev))
	mux.Handle(AdminPathSessions, route(http.MethodGet, b.adminListSessions))
	mux.Handle(AdminPathRevokeSessions, route(http.MethodPost, b.adminRevokeSessions))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such admin endpoint %s", r.URL.Path))
	})
	return b.requireAdmin(mux)
}

// requireAdmin lets through only root and the broker's own user.
func (b *Broker) requireAdmin(h http.Handler) http.Handler {
	self := os.Getuid()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := r.Context().Value(peerKey{}).(peer)
		switch {
		case !ok:
			writeError(w, http.StatusForbidden, "admin socket: peer unknown")
		case p.err != nil:
			writeError(w, http.StatusForbidden, "admin socket: "+p.err.Error())
		case p.uid != 0 && p.uid != self:
			b.log.Warn("admin request refused", "uid", p.uid)
			writeError(w, http.StatusForbidden, fmt.Sprintf("permission denied: uid %d is neither root nor the broker's user", p.uid))
		default:
			h.ServeHTTP(w, r)
		}
	})
}

func (b *Broker) adminCreateAccount(w http.ResponseWriter, r *http.Request) {
	var req AdminAccountRequest
	if err := readJSON(w, r, &req); err != nil {
		b.fail(w, r, err)
		return
	}
	a, err := b.store.CreateAccount(r.Context(), req.Name)
	if err != nil {
		b.fail(w, r, err)
		return
	}
	b.log.Info("account created", "account", a.Name)
	writeJSON(w, http.StatusOK, AdminAccount{Name: a.Name, CreatedAt: a.CreatedAt.UTC()})
}

func (b *Broker) adminAddUser(w http.ResponseWriter, r *http.Request) {
	var req AdminUserRequest
	if err := readJSON(w, r, &req); err != nil {
		b.fail(w, r, err)
		return
	}
	if err := b.store.AddUserAs(r.Context(), req.Account, req.Email, req.Password, req.Admin); err != nil {
		b.fail(w, r, err)
		return
	}
	b.log.Info("user added", "account", req.Account, "email", req.Email, "admin", req.Admin)
	writeJSON(w, http.StatusOK, struct{}{})
}

func (b *Broker) adminCreateAuthKey(w http.ResponseWriter, r *http.Request) {
	var req AdminAuthKeyRequest
	if err := readJSON(w, r, &req); err != nil {
		b.fail(w, r, err)
		return
	}
	key, err := b.store.CreateAuthKey(r.Context(), req.Account,
		store.AuthKeyOptions{Reusable: req.Reusable, Expires: req.Expires})
	if err != nil {
		b.fail(w, r, err)
		return
	}
	b.log.Info("auth key created", "account", req.Account, "reusable", req.Reusable, "expires", req.Expires)
	writeJSON(w, http.StatusOK, AdminAuthKey{Key: key})
}

// accountParam reads the ?account= every admin listing needs, answering 400 when it is missing.
func (b *Broker) accountParam(w http.ResponseWriter, r *http.Request) (string, bool) {
	account := r.URL.Query().Get("account")
	if account == "" {
		b.fail(w, r, errorf(http.StatusBadRequest, "account is missing"))
	}
	return account, account != ""
}

func (b *Broker) adminListDevices(w http.ResponseWriter, r *http.Request) {
	account, ok := b.accountParam(w, r)
	if !ok {
		return
	}
	devs, err := b.store.AccountDevices(r.Context(), account)
	if err != nil {
		b.fail(w, r, err)
		return
	}
	out := make([]AdminDevice, 0, len(devs))
	for _, d := range devs {
		out = append(out, b.adminDevice(d))
	}
	writeJSON(w, http.StatusOK, out)
}

func (b *Broker) adminRemoveDevice(w http.ResponseWriter, r *http.Request) {
	var req AdminRemoveRequest
	if err := readJSON(w, r, &req); err != nil {
		b.fail(w, r, err)
		return
	}
	if req.Account == "" || req.Device == "" {
		b.fail(w, r, errorf(http.StatusBadRequest, "account and device are both needed"))
		return
	}
	d, err := b.removeDevice(r, req.Account, req.Device, "removed by administrator")
	if err != nil {
		b.fail(w, r, err)
		return
	}
	b.log.Info("device removed", "account", d.Account, "device", d.Name, "id", d.ID)
	writeJSON(w, http.StatusOK, b.adminDevice(d))
}

func (b *Broker) adminDevice(d store.Device) AdminDevice {
	return AdminDevice{Device: b.wireDevice(d), ListenPort: d.ListenPort,
		CreatedAt: d.CreatedAt.UTC(), LastSeen: d.LastSeen.UTC()}
}
