package tray

import (
	"errors"
	"fmt"

	"github.com/zalando/go-keyring"
)

// KeyringService is the service name weft's sessions are filed under in the OS keyring.
const KeyringService = "weft"

// SessionStore keeps the user's broker session (the token for account-level actions),
// one per broker URL.
type SessionStore interface {
	// Load returns the session for broker; ok is false when there is none.
	Load(broker string) (token string, ok bool, err error)
	Save(broker, token string) error
	// Delete forgets the session for broker; forgetting none is no error.
	Delete(broker string) error
}

// Keyring is a SessionStore in the OS keyring: the Secret Service on Linux, the Keychain
// on macOS, the Credential Manager on Windows. Sessions never touch a plain file.
type Keyring struct {
	Service string // "" means KeyringService
}

func (k Keyring) service() string {
	if k.Service == "" {
		return KeyringService
	}
	return k.Service
}

func (k Keyring) Load(broker string) (string, bool, error) {
	tok, err := keyring.Get(k.service(), broker)
	if errors.Is(err, keyring.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read the session for %s from the keyring: %w", broker, err)
	}
	return tok, true, nil
}

func (k Keyring) Save(broker, token string) error {
	if broker == "" || token == "" {
		return errors.New("save session: empty broker or token")
	}
	if err := keyring.Set(k.service(), broker, token); err != nil {
		return fmt.Errorf("save the session for %s in the keyring: %w", broker, err)
	}
	return nil
}

func (k Keyring) Delete(broker string) error {
	err := keyring.Delete(k.service(), broker)
	if err != nil && !errors.Is(err, keyring.ErrNotFound) {
		return fmt.Errorf("delete the session for %s from the keyring: %w", broker, err)
	}
	return nil
}
