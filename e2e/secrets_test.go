//go:build linux

package e2e

import (
	"fmt"
	"maps"
	"sync"

	"github.com/godbus/dbus/v5"
)

// Secret Service names (freedesktop.org Secret Service API), as go-keyring uses them.
const (
	secretsName      = "org.freedesktop.secrets"
	secretsPath      = dbus.ObjectPath("/org/freedesktop/secrets")
	secretsDefault   = dbus.ObjectPath("/org/freedesktop/secrets/aliases/default")
	secretsItemsPath = "/org/freedesktop/secrets/collection/login/"
	secretsSession   = dbus.ObjectPath("/org/freedesktop/secrets/session/plain")
	ifaceService     = "org.freedesktop.Secret.Service"
	ifaceCollection  = "org.freedesktop.Secret.Collection"
	ifaceItem        = "org.freedesktop.Secret.Item"
	ifaceSession     = "org.freedesktop.Secret.Session"
)

// secretService is an in-memory Secret Service on a session bus: one always-unlocked
// collection at the default alias, plain (unencrypted) sessions, no prompts. It is what
// the OS keyring is to weft-tray on a desktop, for a headless session that has none.
type secretService struct {
	conn *dbus.Conn

	mu    sync.Mutex // guards the fields below
	items map[dbus.ObjectPath]*secretItem
	seq   int
}

type secretItem struct {
	ss     *secretService
	path   dbus.ObjectPath
	attrs  map[string]string
	secret []byte
}

// secretValue is the Secret struct (oayays) of the API.
type secretValue struct {
	Session     dbus.ObjectPath
	Parameters  []byte
	Value       []byte
	ContentType string
}

// serveSecrets takes the Secret Service's name on conn's bus and serves it.
func serveSecrets(conn *dbus.Conn) (*secretService, error) {
	ss := &secretService{conn: conn, items: map[dbus.ObjectPath]*secretItem{}}
	for path, obj := range map[dbus.ObjectPath]map[string]any{
		secretsPath:    {ifaceService: secretsServiceObj{ss}},
		secretsDefault: {ifaceCollection: secretsCollectionObj{ss}},
		secretsSession: {ifaceSession: secretsSessionObj{}},
	} {
		for iface, v := range obj {
			if err := conn.Export(v, path, iface); err != nil {
				return nil, fmt.Errorf("export %s %s: %w", path, iface, err)
			}
		}
	}
	reply, err := conn.RequestName(secretsName, dbus.NameFlagDoNotQueue)
	if err != nil {
		return nil, fmt.Errorf("own %s: %w", secretsName, err)
	}
	if reply != dbus.RequestNameReplyPrimaryOwner {
		return nil, fmt.Errorf("own %s: another process has it", secretsName)
	}
	return ss, nil
}

// put stores secret under attrs, replacing an item with the same attributes.
func (ss *secretService) put(attrs map[string]string, secret string) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	_, err := ss.putLocked(attrs, []byte(secret))
	return err
}

func (ss *secretService) putLocked(attrs map[string]string, secret []byte) (dbus.ObjectPath, error) {
	for _, it := range ss.items {
		if maps.Equal(it.attrs, attrs) {
			it.secret = secret
			return it.path, nil
		}
	}
	ss.seq++
	it := &secretItem{ss: ss, path: dbus.ObjectPath(fmt.Sprintf("%s%d", secretsItemsPath, ss.seq)), attrs: maps.Clone(attrs), secret: secret}
	if err := ss.conn.Export(secretsItemObj{it}, it.path, ifaceItem); err != nil {
		return "", err
	}
	ss.items[it.path] = it
	return it.path, nil
}

// get returns the secret stored under exactly attrs.
func (ss *secretService) get(attrs map[string]string) (string, bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for _, it := range ss.items {
		if maps.Equal(it.attrs, attrs) {
			return string(it.secret), true
		}
	}
	return "", false
}

// The exported objects: each method is one D-Bus method of its interface.
type (
	secretsServiceObj    struct{ ss *secretService }
	secretsCollectionObj struct{ ss *secretService }
	secretsSessionObj    struct{}
	secretsItemObj       struct{ it *secretItem }
)

func (secretsServiceObj) OpenSession(algorithm string, _ dbus.Variant) (dbus.Variant, dbus.ObjectPath, *dbus.Error) {
	if algorithm != "plain" {
		return dbus.MakeVariant(""), "/", dbus.MakeFailedError(fmt.Errorf("algorithm %q not supported", algorithm))
	}
	return dbus.MakeVariant(""), secretsSession, nil
}

// Unlock: everything is unlocked, with no prompt ("/").
func (secretsServiceObj) Unlock(objects []dbus.ObjectPath) ([]dbus.ObjectPath, dbus.ObjectPath, *dbus.Error) {
	return objects, "/", nil
}

func (secretsSessionObj) Close() *dbus.Error { return nil }

func (c secretsCollectionObj) CreateItem(props map[string]dbus.Variant, secret secretValue, replace bool) (dbus.ObjectPath, dbus.ObjectPath, *dbus.Error) {
	attrs, ok := props[ifaceItem+".Attributes"].Value().(map[string]string)
	if !ok {
		return "/", "/", dbus.MakeFailedError(fmt.Errorf("item attributes missing"))
	}
	c.ss.mu.Lock()
	defer c.ss.mu.Unlock()
	path, err := c.ss.putLocked(attrs, secret.Value)
	if err != nil {
		return "/", "/", dbus.MakeFailedError(err)
	}
	return path, "/", nil
}

func (c secretsCollectionObj) SearchItems(attrs map[string]string) ([]dbus.ObjectPath, *dbus.Error) {
	c.ss.mu.Lock()
	defer c.ss.mu.Unlock()
	out := []dbus.ObjectPath{}
	for _, it := range c.ss.items {
		match := true
		for k, v := range attrs {
			match = match && it.attrs[k] == v
		}
		if match {
			out = append(out, it.path)
		}
	}
	return out, nil
}

func (o secretsItemObj) GetSecret(session dbus.ObjectPath) (secretValue, *dbus.Error) {
	o.it.ss.mu.Lock()
	defer o.it.ss.mu.Unlock()
	return secretValue{Session: session, Parameters: []byte{}, Value: o.it.secret, ContentType: "text/plain"}, nil
}

func (o secretsItemObj) Delete() (dbus.ObjectPath, *dbus.Error) {
	ss := o.it.ss
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.items, o.it.path)
	ss.conn.Export(nil, o.it.path, ifaceItem)
	return "/", nil
}
