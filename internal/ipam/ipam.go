// Package ipam allocates host addresses from an IPv4 prefix.
package ipam

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
)

var (
	// ErrExhausted means every host address of the pool is in use.
	ErrExhausted = errors.New("address pool exhausted")
	// ErrInUse means the address is already allocated or reserved.
	ErrInUse = errors.New("address already in use")
	// ErrOutOfRange means the address is not a host address of the pool's prefix.
	ErrOutOfRange = errors.New("address outside the pool")
)

// Pool hands out the host addresses of one IPv4 prefix: every address except the
// network and broadcast addresses. It is safe for concurrent use.
type Pool struct {
	prefix netip.Prefix
	first  uint32 // the first host address
	size   uint32 // number of host addresses; 0 for a prefix with none

	mu sync.Mutex
	// used holds allocated and reserved addresses as offsets from first; guarded by mu.
	used map[uint32]struct{}
	// cursor is the offset where the next search starts, just past the last allocation,
	// so a just-released address is not handed out again at once; guarded by mu.
	cursor uint32
}

// NewPool returns an empty pool over the host addresses of prefix. Only IPv4 is
// supported: any other prefix, and a /31 or /32, gives a pool that is always exhausted.
func NewPool(prefix netip.Prefix) *Pool {
	p := &Pool{prefix: prefix.Masked(), used: make(map[uint32]struct{})}
	if !p.prefix.IsValid() || !p.prefix.Addr().Is4() || p.prefix.Bits() > 30 {
		return p
	}
	p.first = toUint(p.prefix.Addr()) + 1
	p.size = uint32(1)<<(32-p.prefix.Bits()) - 2
	return p
}

// Allocate returns the lowest free address at or after the cursor, wrapping around
// to the start of the pool, and marks it in use.
func (p *Pool) Allocate() (netip.Addr, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if uint64(len(p.used)) >= uint64(p.size) {
		return netip.Addr{}, fmt.Errorf("allocate from %s: %w", p.prefix, ErrExhausted)
	}
	// The pool is not full, so this loop finds a free offset.
	for i := uint32(0); i < p.size; i++ {
		off := (p.cursor + i) % p.size
		if _, taken := p.used[off]; taken {
			continue
		}
		p.used[off] = struct{}{}
		p.cursor = (off + 1) % p.size
		return toAddr(p.first + off), nil
	}
	return netip.Addr{}, fmt.Errorf("allocate from %s: %w", p.prefix, ErrExhausted)
}

// Reserve marks a specific address in use, for example one already stored.
func (p *Pool) Reserve(a netip.Addr) error {
	off, ok := p.offset(a)
	if !ok {
		return fmt.Errorf("reserve %s in %s: %w", a, p.prefix, ErrOutOfRange)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, taken := p.used[off]; taken {
		return fmt.Errorf("reserve %s: %w", a, ErrInUse)
	}
	p.used[off] = struct{}{}
	return nil
}

// Release returns an address to the pool. Releasing a free or foreign address does nothing.
func (p *Pool) Release(a netip.Addr) {
	off, ok := p.offset(a)
	if !ok {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.used, off)
}

// InUse returns how many addresses are allocated or reserved.
func (p *Pool) InUse() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.used)
}

// offset maps a host address of the pool to its offset from first.
func (p *Pool) offset(a netip.Addr) (uint32, bool) {
	a = a.Unmap()
	if p.size == 0 || !a.Is4() || !p.prefix.Contains(a) {
		return 0, false
	}
	v := toUint(a)
	if v < p.first || v-p.first >= p.size {
		return 0, false // the network or broadcast address
	}
	return v - p.first, true
}

func toUint(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

func toAddr(v uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}
