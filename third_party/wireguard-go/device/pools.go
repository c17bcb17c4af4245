/* SPDX-License-Identifier: MIT
 *
 * Copyright (C) 2017-2025 WireGuard LLC. All Rights Reserved.
 */

package device

import (
	"sync"
)

type WaitPool struct {
	pool  sync.Pool
	cond  sync.Cond
	lock  sync.Mutex
	count uint32 // Get calls not yet Put back
	max   uint32
}

func NewWaitPool(max uint32, new func() any) *WaitPool {
	p := &WaitPool{pool: sync.Pool{New: new}, max: max}
	p.cond = sync.Cond{L: &p.lock}
	return p
}

func (p *WaitPool) Get() any {
	if p.max != 0 {
		p.lock.Lock()
		for p.count >= p.max {
			p.cond.Wait()
		}
		p.count++
		p.lock.Unlock()
	}
	return p.pool.Get()
}

func (p *WaitPool) Put(x any) {
	p.pool.Put(x)
	if p.max == 0 {
		return
	}
	p.lock.Lock()
	defer p.lock.Unlock()
	p.count--
	p.cond.Signal()
}

// InboundBuffers and OutboundBuffers bound the two message buffer pools; 0 means
// PreallocatedBuffersPerPool, as for the other pools. Set them before NewDevice.
//
// weft patch: upstream draws every message buffer from one pool. Bounded, that let a flood
// of TUN packets for a peer without a session (staged until its handshake completes) take
// every buffer; the receive routines then blocked for a buffer before reading the
// handshake that would have freed them, and the device hung. Buffers for packets read
// from the network (receive routines, handshake queue, decryption) now come from the
// inbound pool and buffers for packets read from TUN or made here (staged, keepalives,
// encryption) from the outbound pool, so the send path can no longer starve the receive
// path. Each buffer goes back to the pool it came from.
var InboundBuffers, OutboundBuffers uint32

func bufferBound(n uint32) uint32 {
	if n == 0 {
		return PreallocatedBuffersPerPool
	}
	return n
}

func (device *Device) PopulatePools() {
	device.pool.inboundElementsContainer = NewWaitPool(PreallocatedBuffersPerPool, func() any {
		s := make([]*QueueInboundElement, 0, device.BatchSize())
		return &QueueInboundElementsContainer{elems: s}
	})
	device.pool.outboundElementsContainer = NewWaitPool(PreallocatedBuffersPerPool, func() any {
		s := make([]*QueueOutboundElement, 0, device.BatchSize())
		return &QueueOutboundElementsContainer{elems: s}
	})
	device.pool.inboundBuffers = NewWaitPool(bufferBound(InboundBuffers), func() any {
		return new([MaxMessageSize]byte)
	})
	device.pool.outboundBuffers = NewWaitPool(bufferBound(OutboundBuffers), func() any {
		return new([MaxMessageSize]byte)
	})
	device.pool.maxStaged = int32(bufferBound(OutboundBuffers) / 2)
	device.pool.inboundElements = NewWaitPool(PreallocatedBuffersPerPool, func() any {
		return new(QueueInboundElement)
	})
	device.pool.outboundElements = NewWaitPool(PreallocatedBuffersPerPool, func() any {
		return new(QueueOutboundElement)
	})
}

func (device *Device) GetInboundElementsContainer() *QueueInboundElementsContainer {
	c := device.pool.inboundElementsContainer.Get().(*QueueInboundElementsContainer)
	c.Mutex = sync.Mutex{}
	return c
}

func (device *Device) PutInboundElementsContainer(c *QueueInboundElementsContainer) {
	for i := range c.elems {
		c.elems[i] = nil
	}
	c.elems = c.elems[:0]
	device.pool.inboundElementsContainer.Put(c)
}

func (device *Device) GetOutboundElementsContainer() *QueueOutboundElementsContainer {
	c := device.pool.outboundElementsContainer.Get().(*QueueOutboundElementsContainer)
	c.Mutex = sync.Mutex{}
	return c
}

func (device *Device) PutOutboundElementsContainer(c *QueueOutboundElementsContainer) {
	for i := range c.elems {
		c.elems[i] = nil
	}
	c.elems = c.elems[:0]
	device.pool.outboundElementsContainer.Put(c)
}

func (device *Device) GetInboundBuffer() *[MaxMessageSize]byte {
	return device.pool.inboundBuffers.Get().(*[MaxMessageSize]byte)
}

func (device *Device) PutInboundBuffer(msg *[MaxMessageSize]byte) {
	device.pool.inboundBuffers.Put(msg)
}

func (device *Device) GetOutboundBuffer() *[MaxMessageSize]byte {
	return device.pool.outboundBuffers.Get().(*[MaxMessageSize]byte)
}

func (device *Device) PutOutboundBuffer(msg *[MaxMessageSize]byte) {
	device.pool.outboundBuffers.Put(msg)
}

func (device *Device) GetInboundElement() *QueueInboundElement {
	return device.pool.inboundElements.Get().(*QueueInboundElement)
}

func (device *Device) PutInboundElement(elem *QueueInboundElement) {
	elem.clearPointers()
	device.pool.inboundElements.Put(elem)
}

func (device *Device) GetOutboundElement() *QueueOutboundElement {
	return device.pool.outboundElements.Get().(*QueueOutboundElement)
}

func (device *Device) PutOutboundElement(elem *QueueOutboundElement) {
	elem.clearPointers()
	device.pool.outboundElements.Put(elem)
}
