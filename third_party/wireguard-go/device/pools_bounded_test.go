/* SPDX-License-Identifier: MIT
 *
 * Copyright (C) 2017-2025 WireGuard LLC. All Rights Reserved.
 */

package device

// weft patch: tests for the split, bounded message buffer pools (see pools.go).

import (
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/tun/tuntest"
)

// TestFloodBeforeHandshake: packets read from TUN for a peer without a session are staged,
// each holding a buffer, until a handshake completes. A flood of them must not take the
// buffers the receive path needs for that handshake: when both paths shared one pool, the
// responder's receive routine waited for a buffer before handing on the initiator's first
// transport packet, which was what would have sent the staged packets and freed their
// buffers, and the device hung.
func TestFloodBeforeHandshake(t *testing.T) {
	// The receive routine and the TUN reader hold a batch of 4 buffers each; staged packets
	// may take 4 more (half the outbound pool), which exhausts it.
	pair := boundedPair(t, 4, 8, 8)
	dev0, dev1 := pair[0], pair[1]
	done := make(chan struct{})
	defer close(done)
	go discard(dev0.tun.Inbound, done)

	// dev0 knows no endpoint for dev1, so it cannot initiate: it stages what it reads until
	// its outbound pool is exhausted, and will be the responder.
	go func() {
		for {
			select {
			case dev0.tun.Outbound <- tuntest.Ping(dev1.ip, dev0.ip):
			case <-done:
				return
			}
		}
	}()
	waitFor(t, "dev0's outbound pool to be exhausted", func() bool {
		return dev0.dev.pool.outboundBuffers.outstanding() == 8
	})

	// dev1 learns dev0's endpoint and initiates to send a ping of its own; dev0 answers and
	// needs that ping, the first transport packet, to confirm the session.
	if err := dev1.dev.IpcSet(fmt.Sprintf("public_key=%s\nendpoint=127.0.0.1:1\n", dev1.peerKey)); err != nil {
		t.Fatal(err)
	}
	go func() {
		select {
		case dev1.tun.Outbound <- tuntest.Ping(dev0.ip, dev1.ip):
		case <-done:
		}
	}()
	if !receiveFrom(dev1.tun.Inbound, dev0.ip, 1) {
		t.Fatal("dev0's staged packets never reached dev1")
	}
}

// TestReceiveBatchBeyondSpare: a receive routine that reads more packets in one batch than
// the pool has spare buffers must still hand them on. Upstream replaced each buffer in
// mid-batch and waited there, holding the packets it had read, which were the only buffers
// that could come back.
func TestReceiveBatchBeyondSpare(t *testing.T) {
	const batch = 8
	pair := boundedPair(t, batch, batch+2, 2*batch) // receive routine holds batch, 2 spare
	dev0, dev1 := pair[0], pair[1]
	done := make(chan struct{})
	defer close(done)
	if err := dev1.dev.IpcSet(fmt.Sprintf("public_key=%s\nendpoint=127.0.0.1:1\n", dev1.peerKey)); err != nil {
		t.Fatal(err)
	}
	// A first ping sets up the session.
	dev1.tun.Outbound <- tuntest.Ping(dev0.ip, dev1.ip)
	if !receiveFrom(dev0.tun.Inbound, dev1.ip, 1) {
		t.Fatal("no session")
	}
	// Then dev0 reads a whole batch of transport packets at once.
	dev0.bind.(*chanBind).wholeBatches.Store(true)
	go func() {
		for range batch {
			select {
			case dev1.tun.Outbound <- tuntest.Ping(dev0.ip, dev1.ip):
			case <-done:
				return
			}
		}
	}()
	if !receiveFrom(dev0.tun.Inbound, dev1.ip, batch) {
		t.Fatal("the batch never reached dev0's TUN")
	}
}

// TestFloodToOfflinePeer: packets for a peer that never answers stay staged. However many
// come, they must leave the buffers that traffic to the other peers needs: without a limit,
// they took the whole outbound pool and the TUN reader waited for good.
func TestFloodToOfflinePeer(t *testing.T) {
	pair := boundedPair(t, 1, 8, 8)
	dev0, dev1 := pair[0], pair[1]
	done := make(chan struct{})
	defer close(done)
	offline, err := newPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	pk := offline.publicKey()
	if err := dev0.dev.IpcSet(fmt.Sprintf("public_key=%x\nallowed_ip=1.0.0.3/32\n", pk[:])); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			select {
			case dev0.tun.Outbound <- tuntest.Ping(netip.AddrFrom4([4]byte{1, 0, 0, 3}), dev0.ip):
			case <-done:
				return
			}
		}
	}()
	waitFor(t, "dev0's staged packets to reach the limit", func() bool {
		return dev0.dev.pool.staged.Load() >= dev0.dev.pool.maxStaged
	})
	// dev1 connects and pings; dev0 must answer (its TUN does not: the test does).
	if err := dev1.dev.IpcSet(fmt.Sprintf("public_key=%s\nendpoint=127.0.0.1:1\n", dev1.peerKey)); err != nil {
		t.Fatal(err)
	}
	dev1.tun.Outbound <- tuntest.Ping(dev0.ip, dev1.ip)
	if !receiveFrom(dev0.tun.Inbound, dev1.ip, 1) {
		t.Fatal("dev1's ping never reached dev0")
	}
	go func() {
		select {
		case dev0.tun.Outbound <- tuntest.Ping(dev1.ip, dev0.ip):
		case <-done:
		}
	}()
	if !receiveFrom(dev1.tun.Inbound, dev0.ip, 1) {
		t.Fatal("dev0's ping never reached dev1")
	}
}

type boundedPeer struct {
	testPeer
	bind    conn.Bind
	peerKey string // hex public key of the other device
}

// boundedPair makes two devices whose buffer pools are bounded, each with one peer (the
// other) and no endpoint, connected by a chanBind reading batches of up to batch packets.
func boundedPair(t *testing.T, batch int, inbound, outbound uint32) [2]boundedPeer {
	defer func(in, out uint32) { InboundBuffers, OutboundBuffers = in, out }(InboundBuffers, OutboundBuffers)
	InboundBuffers, OutboundBuffers = inbound, outbound
	var keys [2]NoisePrivateKey
	for i := range keys {
		var err error
		if keys[i], err = newPrivateKey(); err != nil {
			t.Fatal(err)
		}
	}
	a, b := make(chan []byte, 1024), make(chan []byte, 1024)
	binds := [2]*chanBind{{rx: a, tx: b, batch: batch}, {rx: b, tx: a, batch: batch}}
	var pair [2]boundedPeer
	for i := range pair {
		p := &pair[i]
		p.tun = tuntest.NewChannelTUN()
		p.ip = netip.AddrFrom4([4]byte{1, 0, 0, byte(i + 1)})
		p.bind = binds[i]
		p.dev = NewDevice(p.tun.TUN(), p.bind, NewLogger(LogLevelError, fmt.Sprintf("dev%d: ", i)))
		t.Cleanup(func() {
			if !t.Failed() { // a hung device would not close
				p.dev.Close()
			}
		})
		other := keys[i^1].publicKey()
		p.peerKey = fmt.Sprintf("%x", other[:])
		cfg := fmt.Sprintf("private_key=%x\npublic_key=%s\nallowed_ip=1.0.0.%d/32\n", keys[i][:], p.peerKey, 2-i)
		if err := p.dev.IpcSet(cfg); err != nil {
			t.Fatalf("configure device %d: %v", i, err)
		}
		if err := p.dev.Up(); err != nil {
			t.Fatalf("bring up device %d: %v", i, err)
		}
	}
	return pair
}

func (p *WaitPool) outstanding() uint32 {
	p.lock.Lock()
	defer p.lock.Unlock()
	return p.count
}

func discard(c <-chan []byte, done <-chan struct{}) {
	for {
		select {
		case <-c:
		case <-done:
			return
		}
	}
}

// receiveFrom reports whether n packets from src arrive on c within 15 s.
func receiveFrom(c <-chan []byte, src netip.Addr, n int) bool {
	timeout := time.After(15 * time.Second)
	for n > 0 {
		select {
		case msg := <-c:
			if len(msg) >= 20 && [4]byte(msg[12:16]) == src.As4() {
				n--
			}
		case <-timeout:
			return false
		}
	}
	return true
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: gave up", what)
		}
	}
}

// chanBind connects two devices through channels, like bindtest's, with one receive
// function that returns up to a batch of the packets queued; with wholeBatches, it waits
// for a whole batch.
type chanBind struct {
	rx, tx       chan []byte
	batch        int
	wholeBatches atomic.Bool
	closed       chan struct{}
}

type chanEndpoint struct{}

func (chanEndpoint) ClearSrc()           {}
func (chanEndpoint) SrcToString() string { return "" }
func (chanEndpoint) DstToString() string { return "127.0.0.1:1" }
func (chanEndpoint) DstToBytes() []byte  { return []byte{1} }
func (chanEndpoint) DstIP() netip.Addr   { return netip.AddrFrom4([4]byte{127, 0, 0, 1}) }
func (chanEndpoint) SrcIP() netip.Addr   { return netip.Addr{} }

func (b *chanBind) Open(uint16) ([]conn.ReceiveFunc, uint16, error) {
	b.closed = make(chan struct{})
	closed := b.closed
	recv := func(bufs [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
		n := 0
		for n < len(bufs) {
			var p []byte
			if n == 0 || b.wholeBatches.Load() {
				select {
				case p = <-b.rx:
				case <-closed:
					return 0, net.ErrClosed
				}
			} else {
				select {
				case p = <-b.rx:
				default:
					return n, nil
				}
			}
			sizes[n] = copy(bufs[n], p)
			eps[n] = chanEndpoint{}
			n++
		}
		return n, nil
	}
	return []conn.ReceiveFunc{recv}, 1, nil
}

func (b *chanBind) Close() error {
	if b.closed != nil {
		close(b.closed)
		b.closed = nil
	}
	return nil
}

func (b *chanBind) Send(bufs [][]byte, _ conn.Endpoint) error {
	for _, buf := range bufs {
		select {
		case b.tx <- append([]byte(nil), buf...):
		default: // full, as when the other device is closed: dropped, as UDP would
		}
	}
	return nil
}

func (b *chanBind) ParseEndpoint(string) (conn.Endpoint, error) { return chanEndpoint{}, nil }
func (b *chanBind) SetMark(uint32) error                        { return nil }
func (b *chanBind) BatchSize() int                              { return b.batch }
