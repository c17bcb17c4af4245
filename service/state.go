package service

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/weftmesh/weft/internal/atomicfile"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/weftmesh/weft/wire"
)

const (
	keyFile   = "private.key"
	stateFile = "state.json"
)

// State is what weftd remembers across restarts, in state.json.
type State struct {
	Broker string       `json:"broker,omitempty"`
	CAPEM  string       `json:"ca_pem,omitempty"`
	Device *wire.Device `json:"device,omitempty"` // this device as the broker registered it
	Map    SavedMap     `json:"map"`              // the last map, so tunnels come up without the broker
	// LoggedIn: registered with Broker as Device.
	LoggedIn bool `json:"logged_in"`
	// WantedUp: the user wants the tunnel up (cleared by `weft down`).
	WantedUp bool `json:"wanted_up"`
	// Revoked is the broker's reason, once it removed this device.
	Revoked string `json:"revoked,omitempty"`
	// GatewayRoutes are the routes the user chose to send through gateways (routes.go).
	GatewayRoutes []gatewayChoice `json:"gateway_routes,omitempty"`
}

// SavedMap is the last map from the broker.
type SavedMap struct {
	Complete bool          `json:"complete"` // a full map was received
	Peers    []wire.Device `json:"peers,omitempty"`
	// Filter is the last inbound packet filter the broker sent; it stays enforced while
	// the broker is unreachable and across restarts (fail closed).
	Filter *wire.PacketFilter `json:"filter,omitempty"`
	// Relays and STUN let a restarted device use the relays before the broker answers.
	Relays []wire.RelayInfo `json:"relays,omitempty"`
	STUN   []string         `json:"stun,omitempty"`
}

// validate catches a state file that parses but cannot be acted on.
func (s *State) validate() error {
	if !s.LoggedIn {
		return nil
	}
	switch {
	case s.Broker == "":
		return errors.New("logged in without a broker URL")
	case s.Device == nil:
		return errors.New("logged in without a device record")
	case !s.Device.Address.Is4():
		return errors.New("the device record has no IPv4 mesh address")
	}
	return nil
}

// Store keeps weftd's private key and state in a directory. Every write is atomic:
// a reader (or a crash) sees either the old file or the new one.
type Store struct {
	dir string
}

// OpenStore creates dir (0700) if needed.
func OpenStore(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	return &Store{dir: dir}, nil
}

func (s *Store) path(name string) string { return filepath.Join(s.dir, name) }

// LoadKey reads the private key. A missing file gives ok=false; an unreadable or
// corrupt one is an error naming the file.
func (s *Store) LoadKey() (key wire.Key, ok bool, err error) {
	p := s.path(keyFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return key, false, nil
	}
	if err != nil {
		return key, false, fmt.Errorf("read private key %s: %w", p, err)
	}
	key, err = wire.ParseKey(strings.TrimSpace(string(b)))
	if err != nil || key.IsZero() {
		return key, false, fmt.Errorf("private key file %s is corrupt (refusing to make a new identity; move it away to start over)", p)
	}
	return key, true, nil
}

// SaveKey writes the private key, readable by its owner only.
func (s *Store) SaveKey(k wire.Key) error {
	if err := atomicfile.Write(s.path(keyFile), []byte(k.String()+"\n"), 0o600); err != nil {
		return fmt.Errorf("save private key: %w", err)
	}
	return nil
}

// Load reads state.json. A missing file gives ok=false (a fresh install); an unreadable
// or corrupt one is an error naming the file.
func (s *Store) Load() (st State, ok bool, err error) {
	p := s.path(stateFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return st, false, nil
	}
	if err != nil {
		return st, false, fmt.Errorf("read state %s: %w", p, err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return State{}, false, fmt.Errorf("state file %s is corrupt: %w (move it away to start over)", p, err)
	}
	if err := st.validate(); err != nil {
		return State{}, false, fmt.Errorf("state file %s is inconsistent: %w (move it away to start over)", p, err)
	}
	return st, true, nil
}

// Save writes state.json atomically.
func (s *Store) Save(st State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	if err := atomicfile.Write(s.path(stateFile), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	return nil
}

// Clear deletes the identity: state and private key.
func (s *Store) Clear() error {
	for _, name := range []string{stateFile, keyFile} {
		if err := os.Remove(s.path(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete %s: %w", name, err)
		}
	}
	return atomicfile.SyncDir(s.dir)
}
