package relayproto

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
)

// On the TLS transport every message is a frame: a 2-byte big-endian length, then that
// many bytes. The functions below are the framing, shared by the relay and its client.

// ReadFrame reads one frame into dst and returns it; a frame that is empty or larger than
// dst is an error.
func ReadFrame(br *bufio.Reader, dst []byte) ([]byte, error) {
	var l [2]byte
	if _, err := io.ReadFull(br, l[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(l[:]))
	if n == 0 || n > len(dst) {
		return nil, fmt.Errorf("relay frame of %d bytes", n)
	}
	if _, err := io.ReadFull(br, dst[:n]); err != nil {
		return nil, err
	}
	return dst[:n:n], nil
}

// FrameBuffered reports whether a whole frame can be read from br without blocking.
func FrameBuffered(br *bufio.Reader) bool {
	n := br.Buffered()
	if n < 2 {
		return false
	}
	l, _ := br.Peek(2)
	return n >= 2+int(binary.BigEndian.Uint16(l))
}

// WriteFrame writes f with its length prefix in one write.
func WriteFrame(w io.Writer, f []byte) error {
	b := make([]byte, 2+len(f))
	binary.BigEndian.PutUint16(b, uint16(len(f)))
	copy(b[2:], f)
	_, err := w.Write(b)
	return err
}
