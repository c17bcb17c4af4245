// Package relay is weft-relay: it forwards WireGuard packets, addressed by peer public
// key, between devices that cannot reach each other directly. It sees only ciphertext.
//
// # Keys
//
// The relay has a static X25519 key (DATA/relay.key, 0600) that the broker publishes
// with the relay's addresses. A client and the relay share the MAC key
// devauth.SharedKey(client private, relay public) = devauth.SharedKey(relay private,
// client public), which only the two holders of those private keys can compute.
//
// # Handshake (package relayproto has the byte layouts)
//
//	client → relay  Hello     client key, client nonce Nc, zero padding to 64 bytes
//	relay → client  Challenge Nc, relay nonce (a cookie)           50 bytes
//	client → relay  Auth      key, Nc, cookie, MAC_client          114 bytes
//	relay → client  Welcome   Nc, token, lease, observed address, MAC_relay   (or Refused)
//
// Both MACs cover the same transcript — transport, TLS channel binding, both public
// keys, both nonces — under different labels, so the proof is mutual: the client proves
// its key before it may send or receive anything, and the relay proves its key before
// the client trusts the session. Secrets and MACs are compared in constant time.
//
// Over UDP the relay answers nobody but a well-formed Hello, and that only at a bounded
// rate per source (per /64 for IPv6), with a Challenge smaller than the Hello: it cannot
// be used to amplify. Everything else from an unauthenticated source — garbage, bad
// proofs, replays, frames with a wrong token — is dropped without a word, like
// WireGuard. The Challenge is a stateless cookie: issue time, random bytes and a MAC
// under a per-process secret over them and the client's address, key and Nc; so hellos,
// even from forged sources, cost the relay no memory. The answer must come from the
// same address within 10 s and spends the cookie: a replayed Auth is refused.
//
// Over TLS (default port 443), the client sends "GET /relay" with "Upgrade: weft-relay"
// and "Connection: Upgrade", gets "101 Switching Protocols", and both sides then send
// frames with a 2-byte big-endian length prefix; HTTP CONNECT proxies pass this. The
// challenge is a random nonce kept with the connection. The client does not verify the
// relay's certificate (it may be self-signed, DATA/relay-tls.crt): instead both MACs
// cover 32 bytes of TLS 1.3 exported keying material, which differs on each side of a
// TLS-terminating middlebox, so only the holder of the relay key at the far end of
// this very TLS session can complete the handshake.
//
// # Frames and sessions
//
//	client → relay  Data     [0xA6][token 8][destination key 32][payload]
//	relay → client  Forward  [0xA7][source key 32][payload]
//	client → relay  Ping     [0xA8][token 8][echo 8]  → Pong [0xA9][echo 8]
//
// The relay rewrites a Data frame into a Forward frame in place and sends it to the
// destination's session, whatever its transport; a frame for a key with no session is
// dropped and counted. The newest proof of a key wins: a client that re-authenticates
// (after moving, say) replaces its old session.
//
// A UDP session is bound to the address its Auth came from. The relay finds the session
// of a UDP frame by its source address, then checks the frame's 8-byte token against
// that session's in constant time; any authenticated frame refreshes the binding, which
// otherwise expires after the lease (60 s). So a frame needs both the bound address and
// the token: an off-path attacker who forges the address must still guess 64 bits, and
// one who learned the token (on path) cannot use it from anywhere else. A frame with a
// valid token from a new address — a NAT rebinding, or a spoofer — is dropped, not
// re-bound: only a new handshake from the new address moves the binding, so nobody can
// steal a session with a sniffed token. The client notices (its pings go unanswered)
// and re-handshakes from a fresh socket. An attacker on the path can do no more than it
// could to the same WireGuard packets sent directly: drop, delay or watch them.
//
// # Bounds
//
// Each client's forwarded bytes go through a token bucket (Config.Rate, Config.Burst);
// authenticated clients are capped (Config.MaxClients; beyond it a proven client gets a
// MACed Refused); a TLS client's outgoing frames wait in a queue bounded in frames and
// bytes, drained by its own goroutine, so a slow reader only loses its own frames; a TLS
// client that takes no data for 10 s or sends nothing for a lease is dropped; pending
// TLS handshakes, tracked sources and spent cookies are bounded; every buffer is sized
// at start. Memory is about 4 MiB per UDP socket, under 2 KiB per UDP client, and per
// TLS client about 200 KiB of buffers plus up to QueueBytes of queue.
//
// # Speed
//
// UDP is read and written in batches (recvmmsg/sendmmsg) with UDP GRO and GSO where the
// kernel has them, with 7 MB socket buffers (forced past the system limit when
// running as root). A GRO run of frames is forwarded without copying payloads: each
// frame is rewritten where it lies and consecutive frames to one destination are
// compacted into one GSO message.
package relay
