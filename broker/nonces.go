package broker

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/weftmesh/weft/wire"
)

const (
	nonceTTL       = 30 * time.Second
	nonceBytes     = 24
	maxNonces      = 10000 // outstanding challenges in all
	maxNoncesByKey = 8     // outstanding challenges per device key; older ones are dropped
)

var errNonce = errors.New("unknown, used or expired nonce: ask for a new challenge")

// nonceStore holds the challenges issued and not yet used, in memory: a restart only
// makes devices ask again.
type nonceStore struct {
	now func() time.Time

	mu sync.Mutex
	// byNonce and byKey index the outstanding nonces; guarded by mu. byKey keeps
	// each key's nonces oldest first.
	byNonce map[string]nonceEntry
	byKey   map[wire.Key][]string
}

type nonceEntry struct {
	key     wire.Key
	expires time.Time
}

func newNonceStore(now func() time.Time) *nonceStore {
	return &nonceStore{now: now, byNonce: make(map[string]nonceEntry), byKey: make(map[wire.Key][]string)}
}

// Issue makes a nonce that key may use once within nonceTTL.
func (s *nonceStore) Issue(key wire.Key) (string, time.Time, error) {
	b := make([]byte, nonceBytes)
	if _, err := rand.Read(b); err != nil {
		return "", time.Time{}, fmt.Errorf("generate nonce: %w", err)
	}
	nonce := base64.RawURLEncoding.EncodeToString(b)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if len(s.byNonce) >= maxNonces {
		s.sweepLocked(now)
		if len(s.byNonce) >= maxNonces {
			return "", time.Time{}, errors.New("too many outstanding challenges; try again shortly")
		}
	}
	if list := s.byKey[key]; len(list) >= maxNoncesByKey {
		delete(s.byNonce, list[0])
		s.byKey[key] = list[1:]
	}
	e := nonceEntry{key: key, expires: now.Add(nonceTTL)}
	s.byNonce[nonce] = e
	s.byKey[key] = append(s.byKey[key], nonce)
	return nonce, e.expires, nil
}

// Take consumes nonce, which must have been issued to key and not have expired. It
// is gone afterwards whatever the outcome, so a failed attempt cannot be retried.
func (s *nonceStore) Take(nonce string, key wire.Key) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.byNonce[nonce]
	if !ok {
		return errNonce
	}
	s.removeLocked(nonce, e.key)
	if e.key != key || !s.now().Before(e.expires) {
		return errNonce
	}
	return nil
}

func (s *nonceStore) removeLocked(nonce string, key wire.Key) {
	delete(s.byNonce, nonce)
	list := s.byKey[key]
	for i, n := range list {
		if n == nonce {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(s.byKey, key)
	} else {
		s.byKey[key] = list
	}
}

func (s *nonceStore) sweepLocked(now time.Time) {
	for n, e := range s.byNonce {
		if !now.Before(e.expires) {
			s.removeLocked(n, e.key)
		}
	}
}
